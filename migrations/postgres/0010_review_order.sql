-- The order Label Studio serves tasks in (issue 17): each waiting task
-- carries the product's order as its prediction score under one stable
-- prediction version, and the project samples by that score ("Uncertainty
-- sampling": lowest first). The score last sent is kept here so a sync
-- re-scores only the tasks whose place changed.
ALTER TABLE label_studio_tasks ADD COLUMN order_score DOUBLE PRECISION;

-- A review decision marks every conversation folded into the sample as
-- `reviewed` (and an undo puts them back): find them by sample_id.
CREATE INDEX conversation_logs_sample ON conversation_logs (sample_id);

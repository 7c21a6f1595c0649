-- The canary's latency and error signals (issue 18): how long the router
-- took to classify each conversation it answered (milliseconds, the model's
-- own time, not the HTTP request's), and why it could not (a panic in the
-- model, answered as a fallback). NULL for conversations logged by another
-- NLU service or before this migration. Adding nullable columns rewrites
-- nothing, however large the table.
ALTER TABLE conversation_logs ADD COLUMN classify_ms REAL;
ALTER TABLE conversation_logs ADD COLUMN classify_error TEXT;

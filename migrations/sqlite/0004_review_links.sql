-- The same schema as PostgreSQL's 0004 (where it lets daily capture update
-- conversations in place): no index on conversation_logs covers
-- review_status or sample_id, so marking a conversation touches its row
-- only. Reviews find their conversations through review_links instead.
DROP INDEX conversation_logs_pending;
DROP INDEX conversation_logs_sample;

CREATE TABLE review_links (
    conversation_id INTEGER PRIMARY KEY,
    sample_id       INTEGER NOT NULL
);
CREATE INDEX review_links_sample ON review_links (sample_id);
INSERT INTO review_links (conversation_id, sample_id)
SELECT c.id, c.sample_id
  FROM conversation_logs c
  JOIN training_samples s ON s.id = c.sample_id
 WHERE c.review_status IN ('needs-review', 'reviewed');

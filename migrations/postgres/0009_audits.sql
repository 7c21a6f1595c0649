-- Audits of live traffic (issue 16): a deterministic share of captured
-- conversations, drawn by a hash of their id whatever their confidence,
-- each waiting for a human label of its sample. What the conversation was
-- served and how it was processed are kept as they were when drawn (a
-- review later turns the conversation's status into `reviewed`), so an
-- audit answers "was the served answer right" and "was the auto-approval
-- right" without bias.
CREATE TABLE audits (
    conversation_id     BIGINT PRIMARY KEY,
    sample_id           BIGINT NOT NULL,
    model_version       TEXT,
    -- the answer served: the intent, or `oos` for a fallback
    served_intent       TEXT,
    -- what daily capture made of it: auto-approved or needs-review
    conversation_status TEXT NOT NULL,
    conversation_at     TIMESTAMPTZ NOT NULL,
    drawn_at            TIMESTAMPTZ NOT NULL
);
CREATE INDEX audits_sample ON audits (sample_id);
CREATE INDEX audits_version ON audits (model_version, conversation_at);
CREATE INDEX audits_conversation_at ON audits (conversation_at);

-- model_performance's production accuracy is what audits measured: the
-- served answer (fallback counts as `oos`) against a human label, over a
-- random share of all traffic. It was the agreement of reviews, which only
-- ever see the uncertain conversations (0.45 reported for a version that
-- was right 77 % of the time).
DROP VIEW model_performance;
CREATE VIEW model_performance AS
SELECT mv.version,
       mv.status,
       mv.traffic_percentage,
       mv.test_accuracy,
       COALESCE(c.conversations, 0) AS conversations,
       c.fallback_rate,
       COALESCE(r.reviewed, 0) AS reviewed,
       a.production_accuracy,
       COALESCE(a.audited, 0) AS audited
  FROM model_versions mv
  LEFT JOIN (
        SELECT model_version,
               COUNT(*) AS conversations,
               CAST(AVG(CASE WHEN fallback THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS fallback_rate
          FROM conversation_logs
         GROUP BY model_version
  ) c ON c.model_version = mv.version
  LEFT JOIN (
        SELECT predicted_by_version, COUNT(*) AS reviewed
          FROM training_samples
         WHERE source = 'human' AND review_status IN ('approved', 'rejected')
         GROUP BY predicted_by_version
  ) r ON r.predicted_by_version = mv.version
  LEFT JOIN (
        SELECT au.model_version,
               COUNT(*) AS audited,
               CAST(AVG(CASE WHEN au.served_intent = s.intent THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS production_accuracy
          FROM audits au
          JOIN training_samples s ON s.id = au.sample_id
         WHERE s.review_status = 'approved' AND s.source IN ('human', 'import')
         GROUP BY au.model_version
  ) a ON a.model_version = mv.version;

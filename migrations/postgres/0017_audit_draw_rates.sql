-- Audits drawn by stratum (issue 16): daily capture draws uncertain
-- conversations (needs-review) more often than auto-approved ones, at
-- rates it chooses per window so the overall share stays `audit.percent`
-- (src/audit.rs, DrawRates). Each audit keeps the rate it was drawn at,
-- per mille, and every estimate weights it by the inverse. Audits drawn
-- before this migration were drawn uniformly: one common rate for all of
-- them is all their weighting needs, and 50 (the default 5 %) is it.
ALTER TABLE audits ADD COLUMN draw_permille INTEGER NOT NULL DEFAULT 50;

-- model_performance's production accuracy weights each labelled audit by
-- the inverse of its draw rate, as `models list` does.
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
               CAST(SUM(CASE WHEN au.served_intent = s.intent THEN 1.0 / au.draw_permille ELSE 0.0 END)
                    / SUM(1.0 / au.draw_permille) AS DOUBLE PRECISION) AS production_accuracy
          FROM audits au
          JOIN training_samples s ON s.id = au.sample_id
         WHERE s.review_status = 'approved' AND s.source IN ('human', 'import')
         GROUP BY au.model_version
  ) a ON a.model_version = mv.version;

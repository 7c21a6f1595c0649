-- What waits for review (issue 17): needs-review samples queued here and
-- in-review ones waiting in Label Studio, counted per priority from this
-- index alone (it covers both columns), for `status`, `stats queue`, the
-- console and /metrics.
CREATE INDEX training_samples_waiting ON training_samples (review_status, priority)
    WHERE review_status IN ('needs-review', 'in-review');
-- Whether a sample has a Label Studio task, asked per waiting sample.
CREATE INDEX label_studio_tasks_sample ON label_studio_tasks (sample_id);

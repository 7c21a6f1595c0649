-- job_runs gains a heartbeat (a run that dies is ended at its last sign of
-- life, not when the next run notices) and the status `cancelled` (an
-- operator or a closed output stopped it).
ALTER TABLE job_runs ADD COLUMN heartbeat_at TIMESTAMPTZ;
ALTER TABLE job_runs DROP CONSTRAINT job_runs_status_check;
ALTER TABLE job_runs ADD CONSTRAINT job_runs_status_check
    CHECK (status IN ('running', 'succeeded', 'failed', 'crashed', 'cancelled'));

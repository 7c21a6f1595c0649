-- job_runs gains a heartbeat (a run that dies is ended at its last sign of
-- life, not when the next run notices) and the status `cancelled` (an
-- operator or a closed output stopped it). SQLite cannot alter a CHECK
-- constraint, so the table is rebuilt.
CREATE TABLE job_runs_new (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    stage        TEXT NOT NULL,
    trigger      TEXT NOT NULL CHECK (trigger IN ('cli', 'cron', 'tui')),
    status       TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'crashed', 'cancelled')),
    started_at   TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at  TEXT,
    counts       TEXT,
    error        TEXT,
    host         TEXT,
    pid          INTEGER,
    heartbeat_at TEXT
);
INSERT INTO job_runs_new (id, stage, trigger, status, started_at, finished_at, counts, error, host, pid)
SELECT id, stage, trigger, status, started_at, finished_at, counts, error, host, pid FROM job_runs;
DROP TABLE job_runs;
ALTER TABLE job_runs_new RENAME TO job_runs;
CREATE INDEX job_runs_stage_started ON job_runs (stage, started_at DESC);
CREATE INDEX job_runs_started ON job_runs (started_at);

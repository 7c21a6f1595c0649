-- Flywheel schema, SQLite (timestamps are UTC ISO-8601 text with
-- milliseconds, so they sort as text and compare with CURRENT_DATE). Names and value spellings follow DESIGN §2:
-- operators run the quoted queries against these tables by hand.

CREATE TABLE conversation_logs (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    session_id       TEXT,
    -- HMAC-SHA256 of the phone number; the raw number is never stored.
    user_hash        TEXT,
    user_message     TEXT NOT NULL,
    language         TEXT,
    nlu_intent       TEXT,
    nlu_confidence   REAL CHECK (nlu_confidence BETWEEN 0 AND 1),
    nlu_provider     TEXT,
    model_version    TEXT,
    fallback         INTEGER NOT NULL DEFAULT 0,
    routing_decision TEXT,
    feedback         TEXT CHECK (feedback IN ('positive', 'negative')),
    correct_intent   TEXT,
    feedback_at      TEXT,
    review_status    TEXT NOT NULL DEFAULT 'pending'
        CHECK (review_status IN ('pending', 'auto-approved', 'needs-review', 'reviewed', 'ignored')),
    sample_id        INTEGER,
    processed_at     TEXT
);
CREATE INDEX conversation_logs_created_at ON conversation_logs (created_at);
-- daily capture scans the pending rows of a window
CREATE INDEX conversation_logs_pending ON conversation_logs (created_at) WHERE review_status = 'pending';
CREATE INDEX conversation_logs_version_time ON conversation_logs (model_version, created_at);

CREATE TABLE training_samples (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    text                 TEXT NOT NULL,
    -- case, whitespace and punctuation folded: one sample per utterance
    normalized_text      TEXT NOT NULL UNIQUE,
    intent               TEXT NOT NULL,
    language             TEXT,
    source               TEXT NOT NULL CHECK (source IN ('auto', 'human', 'synthetic', 'import')),
    confidence           REAL,
    review_status        TEXT NOT NULL
        CHECK (review_status IN ('needs-review', 'in-review', 'approved', 'rejected')),
    priority             INTEGER NOT NULL DEFAULT 5,
    occurrences          INTEGER NOT NULL DEFAULT 1,
    predicted_intent     TEXT,
    predicted_by_version TEXT,
    corrected_from       TEXT,
    annotator            TEXT,
    conversation_id      INTEGER REFERENCES conversation_logs (id) ON DELETE SET NULL,
    model_version_target TEXT,
    created_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at           TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    reviewed_at          TEXT
);
CREATE INDEX training_samples_queue ON training_samples (priority, occurrences DESC, id)
    WHERE review_status = 'needs-review';
CREATE INDEX training_samples_unused ON training_samples (id)
    WHERE review_status = 'approved' AND model_version_target IS NULL;
CREATE INDEX training_samples_status ON training_samples (review_status);
CREATE INDEX training_samples_reviewed_at ON training_samples (reviewed_at);
CREATE INDEX training_samples_conversation ON training_samples (conversation_id);

CREATE TABLE model_versions (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    version             TEXT NOT NULL UNIQUE,
    status              TEXT NOT NULL
        CHECK (status IN ('training', 'testing', 'canary', 'production', 'archived', 'failed', 'rejected')),
    artifact_path       TEXT,
    train_samples       INTEGER,
    test_samples        INTEGER,
    test_accuracy       REAL,
    production_accuracy REAL,
    fallback_rate       REAL,
    traffic_percentage  INTEGER NOT NULL DEFAULT 0 CHECK (traffic_percentage BETWEEN 0 AND 100),
    metrics             TEXT,
    created_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    updated_at          TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    tested_at           TEXT,
    canary_at           TEXT,
    production_at       TEXT,
    archived_at         TEXT
);
-- At most one canary and one production, enforced by the database itself.
CREATE UNIQUE INDEX model_versions_one_live ON model_versions (status)
    WHERE status IN ('canary', 'production');

CREATE TABLE training_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    version     TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'cancelled')),
    parameters  TEXT,
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    epoch       INTEGER,
    epochs      INTEGER,
    loss        REAL,
    accuracy    REAL,
    report_path TEXT,
    error       TEXT
);
CREATE INDEX training_runs_started ON training_runs (started_at);

CREATE TABLE label_studio_tasks (
    id                         INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_id                  INTEGER NOT NULL REFERENCES training_samples (id) ON DELETE CASCADE,
    project_id                 INTEGER NOT NULL,
    -- NULL while a push is in flight: a crash then leaves a row to reconcile
    task_id                    INTEGER,
    pushed_at                  TEXT,
    last_annotation_id         INTEGER,
    last_annotation_updated_at TEXT,
    sync_state                 TEXT NOT NULL
        CHECK (sync_state IN ('pushing', 'pushed', 'annotated', 'error')),
    error                      TEXT,
    UNIQUE (project_id, sample_id)
);
CREATE INDEX label_studio_tasks_state ON label_studio_tasks (sync_state);

CREATE TABLE job_runs (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    stage       TEXT NOT NULL,
    trigger     TEXT NOT NULL CHECK (trigger IN ('cli', 'cron', 'tui')),
    status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'failed', 'crashed')),
    started_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    finished_at TEXT,
    counts      TEXT,
    error       TEXT,
    host        TEXT,
    pid         INTEGER
);
CREATE INDEX job_runs_stage_started ON job_runs (stage, started_at DESC);
CREATE INDEX job_runs_started ON job_runs (started_at);

CREATE VIEW training_queue AS
SELECT id, text, intent, language, confidence, priority, occurrences, source,
       review_status, predicted_by_version, conversation_id, created_at
  FROM training_samples
 WHERE review_status = 'needs-review'
 ORDER BY priority, occurrences DESC, id;

CREATE VIEW daily_training_stats AS
WITH captured AS (
    SELECT date(created_at) AS date,
           COUNT(*) AS captured,
           COUNT(*) FILTER (WHERE review_status = 'auto-approved') AS auto_approved,
           COUNT(*) FILTER (WHERE review_status = 'needs-review') AS needs_review,
           COUNT(*) FILTER (WHERE review_status = 'reviewed') AS reviewed
      FROM conversation_logs
     GROUP BY 1
), decided AS (
    SELECT date(reviewed_at) AS date,
           COUNT(*) FILTER (WHERE review_status = 'approved') AS approved,
           COUNT(*) FILTER (WHERE review_status = 'rejected') AS rejected
      FROM training_samples
     WHERE reviewed_at IS NOT NULL
     GROUP BY 1
)
SELECT COALESCE(c.date, d.date) AS date,
       COALESCE(c.captured, 0) AS captured,
       COALESCE(c.auto_approved, 0) AS auto_approved,
       COALESCE(c.needs_review, 0) AS needs_review,
       COALESCE(c.reviewed, 0) AS reviewed,
       COALESCE(d.approved, 0) AS approved,
       COALESCE(d.rejected, 0) AS rejected,
       CASE WHEN COALESCE(c.captured, 0) > 0
            THEN CAST(c.auto_approved * 100.0 / c.captured AS DOUBLE PRECISION) END AS auto_approval_rate
  FROM captured c
  FULL OUTER JOIN decided d ON c.date = d.date;

CREATE VIEW model_performance AS
SELECT mv.version,
       mv.status,
       mv.traffic_percentage,
       mv.test_accuracy,
       COALESCE(c.conversations, 0) AS conversations,
       c.fallback_rate,
       COALESCE(r.reviewed, 0) AS reviewed,
       r.production_accuracy
  FROM model_versions mv
  LEFT JOIN (
        SELECT model_version,
               COUNT(*) AS conversations,
               CAST(AVG(CASE WHEN fallback THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS fallback_rate
          FROM conversation_logs
         GROUP BY model_version
  ) c ON c.model_version = mv.version
  LEFT JOIN (
        SELECT predicted_by_version,
               COUNT(*) AS reviewed,
               CAST(AVG(CASE WHEN review_status = 'approved' AND corrected_from IS NULL
                             THEN 1.0 ELSE 0.0 END) AS DOUBLE PRECISION) AS production_accuracy
          FROM training_samples
         WHERE source = 'human' AND review_status IN ('approved', 'rejected')
         GROUP BY predicted_by_version
  ) r ON r.predicted_by_version = mv.version;

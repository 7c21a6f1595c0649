-- Running counts for the console (issue 20 item 7): what the Capture and
-- Review panes show is read from these small tables instead of counting
-- conversation_logs and training_samples on every refresh. Triggers keep
-- them in the same transaction as the write, whatever writes (serve,
-- ingest, daily capture, review, Label Studio, prune, the sqlite3 shell),
-- so a count is exact as of the reader's snapshot.
--
-- The tables are PostgreSQL's (see its 0014): there each writing backend
-- adds to rows of its own shard so concurrent writers never wait on one
-- counter row. SQLite has one writer at a time: every row is shard 0.

-- Captures per minute and value of provider, language and intent (NULL
-- stored as ''). Minute keys are UTC text, `2026-11-25T02:13`, as
-- capture_stats buckets them (hand-written `2026-11-25 02:13:…` rows too).
CREATE TABLE capture_counts (
    minute    TEXT NOT NULL,
    dimension TEXT NOT NULL CHECK (dimension IN ('provider', 'language', 'intent')),
    value     TEXT NOT NULL,
    shard     INTEGER NOT NULL,
    captures  INTEGER NOT NULL,
    PRIMARY KEY (minute, dimension, value, shard)
) WITHOUT ROWID;

-- Samples per review status and priority: the review queue here
-- (needs-review) and in Label Studio (in-review), by priority.
CREATE TABLE sample_counts (
    review_status TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    shard         INTEGER NOT NULL,
    samples       INTEGER NOT NULL,
    PRIMARY KEY (review_status, priority, shard)
) WITHOUT ROWID;

-- Every trigger below writes its +1 / -1 here; one trigger applies them
-- (rows that reach zero go, so the table only holds what exists).
CREATE VIEW capture_count_changes AS
    SELECT minute, dimension, value, captures FROM capture_counts;
CREATE TRIGGER capture_count_changes_apply INSTEAD OF INSERT ON capture_count_changes
BEGIN
    INSERT INTO capture_counts (minute, dimension, value, shard, captures)
    VALUES (NEW.minute, NEW.dimension, NEW.value, 0, NEW.captures)
    ON CONFLICT (minute, dimension, value, shard) DO UPDATE SET captures = captures + excluded.captures;
    DELETE FROM capture_counts WHERE minute = NEW.minute AND dimension = NEW.dimension
       AND value = NEW.value AND shard = 0 AND captures = 0;
END;

CREATE VIEW sample_count_changes AS
    SELECT review_status, priority, samples FROM sample_counts;
CREATE TRIGGER sample_count_changes_apply INSTEAD OF INSERT ON sample_count_changes
BEGIN
    INSERT INTO sample_counts (review_status, priority, shard, samples)
    VALUES (NEW.review_status, NEW.priority, 0, NEW.samples)
    ON CONFLICT (review_status, priority, shard) DO UPDATE SET samples = samples + excluded.samples;
END;

CREATE TRIGGER conversation_logs_counted_insert AFTER INSERT ON conversation_logs
BEGIN
    INSERT INTO capture_count_changes (minute, dimension, value, captures)
    SELECT replace(substr(NEW.created_at, 1, 16), ' ', 'T'), d, v, 1
      FROM (SELECT 'provider' AS d, COALESCE(NEW.nlu_provider, '') AS v
            UNION ALL SELECT 'language', COALESCE(NEW.language, '')
            UNION ALL SELECT 'intent', COALESCE(NEW.nlu_intent, ''));
END;

CREATE TRIGGER conversation_logs_counted_delete AFTER DELETE ON conversation_logs
BEGIN
    INSERT INTO capture_count_changes (minute, dimension, value, captures)
    SELECT replace(substr(OLD.created_at, 1, 16), ' ', 'T'), d, v, -1
      FROM (SELECT 'provider' AS d, COALESCE(OLD.nlu_provider, '') AS v
            UNION ALL SELECT 'language', COALESCE(OLD.language, '')
            UNION ALL SELECT 'intent', COALESCE(OLD.nlu_intent, ''));
END;

-- Flywheel writes capture fields once; a hand-made correction (or a test
-- moving a row in time) moves its count. Only on a change, so daily
-- capture's status updates never fire it.
CREATE TRIGGER conversation_logs_counted_update
AFTER UPDATE OF created_at, nlu_provider, language, nlu_intent ON conversation_logs
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.nlu_provider IS NOT NEW.nlu_provider
  OR OLD.language IS NOT NEW.language OR OLD.nlu_intent IS NOT NEW.nlu_intent
BEGIN
    INSERT INTO capture_count_changes (minute, dimension, value, captures)
    SELECT replace(substr(at, 1, 16), ' ', 'T'), d, v, n
      FROM (SELECT OLD.created_at AS at, 'provider' AS d, COALESCE(OLD.nlu_provider, '') AS v, -1 AS n
            UNION ALL SELECT OLD.created_at, 'language', COALESCE(OLD.language, ''), -1
            UNION ALL SELECT OLD.created_at, 'intent', COALESCE(OLD.nlu_intent, ''), -1
            UNION ALL SELECT NEW.created_at, 'provider', COALESCE(NEW.nlu_provider, ''), 1
            UNION ALL SELECT NEW.created_at, 'language', COALESCE(NEW.language, ''), 1
            UNION ALL SELECT NEW.created_at, 'intent', COALESCE(NEW.nlu_intent, ''), 1);
END;

CREATE TRIGGER training_samples_counted_insert AFTER INSERT ON training_samples
BEGIN
    INSERT INTO sample_count_changes VALUES (NEW.review_status, NEW.priority, 1);
END;

-- Only a change of status or priority moves a sample between counts (the
-- daily upsert sets priority on every sample it meets, mostly unchanged).
CREATE TRIGGER training_samples_counted_update AFTER UPDATE OF review_status, priority ON training_samples
WHEN OLD.review_status IS NOT NEW.review_status OR OLD.priority IS NOT NEW.priority
BEGIN
    INSERT INTO sample_count_changes VALUES (OLD.review_status, OLD.priority, -1),
                                            (NEW.review_status, NEW.priority, 1);
END;

CREATE TRIGGER training_samples_counted_delete AFTER DELETE ON training_samples
BEGIN
    INSERT INTO sample_count_changes VALUES (OLD.review_status, OLD.priority, -1);
END;

INSERT INTO capture_counts (minute, dimension, value, shard, captures)
SELECT replace(substr(created_at, 1, 16), ' ', 'T'), 'provider', COALESCE(nlu_provider, ''), 0, COUNT(*)
  FROM conversation_logs GROUP BY 1, 2, 3
UNION ALL
SELECT replace(substr(created_at, 1, 16), ' ', 'T'), 'language', COALESCE(language, ''), 0, COUNT(*)
  FROM conversation_logs GROUP BY 1, 2, 3
UNION ALL
SELECT replace(substr(created_at, 1, 16), ' ', 'T'), 'intent', COALESCE(nlu_intent, ''), 0, COUNT(*)
  FROM conversation_logs GROUP BY 1, 2, 3;
INSERT INTO sample_counts (review_status, priority, shard, samples)
SELECT review_status, priority, 0, COUNT(*) FROM training_samples GROUP BY 1, 2;

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

-- The statements are written out in each trigger, not routed through a
-- view's INSTEAD OF trigger: that made a 200 000-row insert 12x slower
-- (26.5 s against 2.2 s without counting; 4.8 s as here).
CREATE TRIGGER conversation_logs_counted_insert AFTER INSERT ON conversation_logs
BEGIN
    INSERT INTO capture_counts (minute, dimension, value, shard, captures)
    VALUES (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'provider', COALESCE(NEW.nlu_provider, ''), 0, 1),
           (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'language', COALESCE(NEW.language, ''), 0, 1),
           (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'intent', COALESCE(NEW.nlu_intent, ''), 0, 1)
    ON CONFLICT (minute, dimension, value, shard) DO UPDATE SET captures = captures + 1;
END;

CREATE TRIGGER conversation_logs_counted_delete AFTER DELETE ON conversation_logs
BEGIN
    UPDATE capture_counts SET captures = captures - 1
     WHERE minute = replace(substr(OLD.created_at, 1, 16), ' ', 'T') AND shard = 0
       AND ((dimension = 'provider' AND value = COALESCE(OLD.nlu_provider, ''))
         OR (dimension = 'language' AND value = COALESCE(OLD.language, ''))
         OR (dimension = 'intent' AND value = COALESCE(OLD.nlu_intent, '')));
    DELETE FROM capture_counts
     WHERE minute = replace(substr(OLD.created_at, 1, 16), ' ', 'T') AND captures = 0;
END;

-- Flywheel writes capture fields once; a hand-made correction (or a test
-- moving a row in time) moves its count. Only on a change, so daily
-- capture's status updates never fire it.
CREATE TRIGGER conversation_logs_counted_update
AFTER UPDATE OF created_at, nlu_provider, language, nlu_intent ON conversation_logs
WHEN OLD.created_at IS NOT NEW.created_at OR OLD.nlu_provider IS NOT NEW.nlu_provider
  OR OLD.language IS NOT NEW.language OR OLD.nlu_intent IS NOT NEW.nlu_intent
BEGIN
    UPDATE capture_counts SET captures = captures - 1
     WHERE minute = replace(substr(OLD.created_at, 1, 16), ' ', 'T') AND shard = 0
       AND ((dimension = 'provider' AND value = COALESCE(OLD.nlu_provider, ''))
         OR (dimension = 'language' AND value = COALESCE(OLD.language, ''))
         OR (dimension = 'intent' AND value = COALESCE(OLD.nlu_intent, '')));
    DELETE FROM capture_counts
     WHERE minute = replace(substr(OLD.created_at, 1, 16), ' ', 'T') AND captures = 0;
    INSERT INTO capture_counts (minute, dimension, value, shard, captures)
    VALUES (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'provider', COALESCE(NEW.nlu_provider, ''), 0, 1),
           (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'language', COALESCE(NEW.language, ''), 0, 1),
           (replace(substr(NEW.created_at, 1, 16), ' ', 'T'), 'intent', COALESCE(NEW.nlu_intent, ''), 0, 1)
    ON CONFLICT (minute, dimension, value, shard) DO UPDATE SET captures = captures + 1;
END;

CREATE TRIGGER training_samples_counted_insert AFTER INSERT ON training_samples
BEGIN
    INSERT INTO sample_counts (review_status, priority, shard, samples)
    VALUES (NEW.review_status, NEW.priority, 0, 1)
    ON CONFLICT (review_status, priority, shard) DO UPDATE SET samples = samples + 1;
END;

-- Only a change of status or priority moves a sample between counts (the
-- daily upsert sets priority on every sample it meets, mostly unchanged).
CREATE TRIGGER training_samples_counted_update AFTER UPDATE OF review_status, priority ON training_samples
WHEN OLD.review_status IS NOT NEW.review_status OR OLD.priority IS NOT NEW.priority
BEGIN
    UPDATE sample_counts SET samples = samples - 1
     WHERE review_status = OLD.review_status AND priority = OLD.priority AND shard = 0;
    INSERT INTO sample_counts (review_status, priority, shard, samples)
    VALUES (NEW.review_status, NEW.priority, 0, 1)
    ON CONFLICT (review_status, priority, shard) DO UPDATE SET samples = samples + 1;
END;

CREATE TRIGGER training_samples_counted_delete AFTER DELETE ON training_samples
BEGIN
    UPDATE sample_counts SET samples = samples - 1
     WHERE review_status = OLD.review_status AND priority = OLD.priority AND shard = 0;
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

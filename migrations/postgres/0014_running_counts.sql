-- Running counts for the console (issue 20 item 7): what the Capture and
-- Review panes show is read from these small tables instead of counting
-- conversation_logs and training_samples on every refresh. Triggers keep
-- them in the same transaction as the write, whatever writes (serve,
-- ingest, daily capture, review, Label Studio, prune, psql), so a count
-- is exact as of the reader's snapshot.
--
-- Hot rows: every writer would update the same current-minute and
-- needs-review rows, serialising concurrent captures on a row lock and
-- deadlocking two transactions that take two such rows in opposite
-- orders. So each writer adds to rows of its own shard, the backend's pid
-- (one transaction at a time per backend: no two transactions ever share
-- a row), and readers sum the shards. Shard 0 holds the backfill and
-- whatever `fold_counter_shards` (prune and daily capture call it) moved
-- there from backends that are gone.
--
-- The triggers are statement-level with transition tables: one aggregate
-- per statement, not one counter update per row (daily capture changes a
-- million rows in a few statements).

-- Captures per minute and value of provider, language and intent (NULL
-- stored as ''): the per-minute bars and gap detection sum one dimension,
-- the mix sums each over the last hour. Minute keys are UTC text,
-- `2026-11-25T02:13`, as capture_stats buckets them on both backends.
CREATE TABLE capture_counts (
    minute    TEXT NOT NULL,
    dimension TEXT NOT NULL CHECK (dimension IN ('provider', 'language', 'intent')),
    value     TEXT NOT NULL,
    shard     BIGINT NOT NULL,
    captures  BIGINT NOT NULL,
    PRIMARY KEY (minute, dimension, value, shard)
);

-- Samples per review status and priority: the review queue here
-- (needs-review) and in Label Studio (in-review), by priority.
CREATE TABLE sample_counts (
    review_status TEXT NOT NULL,
    priority      INTEGER NOT NULL,
    shard         BIGINT NOT NULL,
    samples       BIGINT NOT NULL,
    PRIMARY KEY (review_status, priority, shard)
);

CREATE FUNCTION capture_count_key(created_at TIMESTAMPTZ) RETURNS TEXT
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT to_char(created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI') $$;

-- Inserted rows count +1, deleted rows -1: one statement over the
-- statement's transition table (named in the trigger: new_rows or old_rows).
CREATE FUNCTION count_captures() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    -- Rows grouped first by minute and all three values (a statement's rows
    -- share most of them), then spread over the three dimensions.
    EXECUTE format(
        'INSERT INTO capture_counts (minute, dimension, value, shard, captures)
         SELECT c.minute, d.dimension, d.value, pg_backend_pid(), $1 * SUM(c.n)
           FROM (SELECT capture_count_key(created_at) AS minute, COALESCE(nlu_provider, '''') AS p,
                        COALESCE(language, '''') AS l, COALESCE(nlu_intent, '''') AS i, COUNT(*) AS n
                   FROM %I GROUP BY 1, 2, 3, 4) c
          CROSS JOIN LATERAL (VALUES (''provider'', c.p), (''language'', c.l), (''intent'', c.i))
                AS d(dimension, value)
          GROUP BY 1, 2, 3 ORDER BY 1, 2, 3
         ON CONFLICT (minute, dimension, value, shard)
             DO UPDATE SET captures = capture_counts.captures + excluded.captures',
        CASE TG_OP WHEN 'INSERT' THEN 'new_rows' ELSE 'old_rows' END)
    USING CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    RETURN NULL;
END $$;

CREATE TRIGGER conversation_logs_counted_insert AFTER INSERT ON conversation_logs
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_captures();
CREATE TRIGGER conversation_logs_counted_delete AFTER DELETE ON conversation_logs
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_captures();

-- Flywheel writes capture fields once; a hand-made correction (or a test
-- moving a row in time) moves its count. Per row and only on a change, so
-- daily capture's status updates never fire it.
CREATE FUNCTION recount_capture() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO capture_counts (minute, dimension, value, shard, captures)
    SELECT minute, dimension, value, pg_backend_pid(), SUM(n)
      FROM (VALUES (capture_count_key(OLD.created_at), 'provider', COALESCE(OLD.nlu_provider, ''), -1),
                   (capture_count_key(OLD.created_at), 'language', COALESCE(OLD.language, ''), -1),
                   (capture_count_key(OLD.created_at), 'intent', COALESCE(OLD.nlu_intent, ''), -1),
                   (capture_count_key(NEW.created_at), 'provider', COALESCE(NEW.nlu_provider, ''), 1),
                   (capture_count_key(NEW.created_at), 'language', COALESCE(NEW.language, ''), 1),
                   (capture_count_key(NEW.created_at), 'intent', COALESCE(NEW.nlu_intent, ''), 1))
           AS moved(minute, dimension, value, n)
     GROUP BY 1, 2, 3 HAVING SUM(n) <> 0 ORDER BY 1, 2, 3
    ON CONFLICT (minute, dimension, value, shard)
        DO UPDATE SET captures = capture_counts.captures + excluded.captures;
    RETURN NULL;
END $$;
CREATE TRIGGER conversation_logs_counted_update
    AFTER UPDATE OF created_at, nlu_provider, language, nlu_intent ON conversation_logs
    FOR EACH ROW
    WHEN (OLD.created_at IS DISTINCT FROM NEW.created_at
          OR OLD.nlu_provider IS DISTINCT FROM NEW.nlu_provider
          OR OLD.language IS DISTINCT FROM NEW.language
          OR OLD.nlu_intent IS DISTINCT FROM NEW.nlu_intent)
    EXECUTE FUNCTION recount_capture();

CREATE FUNCTION count_samples() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    EXECUTE format(
        'INSERT INTO sample_counts (review_status, priority, shard, samples)
         SELECT review_status, priority, pg_backend_pid(), $1 * COUNT(*) FROM %I
          GROUP BY 1, 2 ORDER BY 1, 2
         ON CONFLICT (review_status, priority, shard)
             DO UPDATE SET samples = sample_counts.samples + excluded.samples',
        CASE TG_OP WHEN 'INSERT' THEN 'new_rows' ELSE 'old_rows' END)
    USING CASE TG_OP WHEN 'INSERT' THEN 1 ELSE -1 END;
    RETURN NULL;
END $$;

CREATE FUNCTION count_samples_changed() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO sample_counts (review_status, priority, shard, samples)
    SELECT review_status, priority, pg_backend_pid(), SUM(n)
      FROM (SELECT review_status, priority, COUNT(*) AS n FROM new_rows GROUP BY 1, 2
            UNION ALL
            SELECT review_status, priority, -COUNT(*) FROM old_rows GROUP BY 1, 2) moved
     GROUP BY 1, 2 HAVING SUM(n) <> 0 ORDER BY 1, 2
    ON CONFLICT (review_status, priority, shard)
        DO UPDATE SET samples = sample_counts.samples + excluded.samples;
    RETURN NULL;
END $$;

CREATE TRIGGER training_samples_counted_insert AFTER INSERT ON training_samples
    REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION count_samples();
CREATE TRIGGER training_samples_counted_update AFTER UPDATE ON training_samples
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION count_samples_changed();
CREATE TRIGGER training_samples_counted_delete AFTER DELETE ON training_samples
    REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION count_samples();

-- Backfill after the triggers exist: creating them waited for writers in
-- flight and holds theirs off until this migration commits, so every row
-- is counted once, here or by a trigger.
INSERT INTO capture_counts (minute, dimension, value, shard, captures)
SELECT c.minute, d.dimension, d.value, 0, SUM(c.n)
  FROM (SELECT capture_count_key(created_at) AS minute, COALESCE(nlu_provider, '') AS p,
               COALESCE(language, '') AS l, COALESCE(nlu_intent, '') AS i, COUNT(*) AS n
          FROM conversation_logs GROUP BY 1, 2, 3, 4) c
 CROSS JOIN LATERAL (VALUES ('provider', c.p), ('language', c.l), ('intent', c.i)) AS d(dimension, value)
 GROUP BY 1, 2, 3;
INSERT INTO sample_counts (review_status, priority, shard, samples)
SELECT review_status, priority, 0, COUNT(*) FROM training_samples GROUP BY 1, 2;

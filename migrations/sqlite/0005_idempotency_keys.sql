-- Safe retries of serve's writes (issue 13): the Idempotency-Key of a
-- classify or bulk request, or the request_id of a bulk record, with the
-- conversation ids stored under it. Written in the same transaction as those
-- rows, so a committed row always has its key; a repeat within 24 h is
-- answered from here. Rows older than that are pruned by serve.
CREATE TABLE idempotency_keys (
    scope            TEXT NOT NULL CHECK (scope IN ('classify', 'conversations', 'record')),
    idempotency_key  TEXT NOT NULL,
    -- HMAC of the request (the phone-number key): a reused key is told apart.
    fingerprint      TEXT NOT NULL,
    -- JSON array of conversation_logs ids, in request order.
    conversation_ids TEXT NOT NULL,
    created_at       TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now')),
    PRIMARY KEY (scope, idempotency_key)
);
CREATE INDEX idempotency_keys_created_at ON idempotency_keys (created_at);

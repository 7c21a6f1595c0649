-- Audit trail of the model lifecycle: who moved which version where, and when.
CREATE TABLE model_transitions (
    id                 INTEGER PRIMARY KEY AUTOINCREMENT,
    version            TEXT NOT NULL,
    from_status        TEXT,
    to_status          TEXT NOT NULL,
    traffic_percentage INTEGER NOT NULL,
    actor              TEXT NOT NULL,
    reason             TEXT,
    at                 TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX model_transitions_version ON model_transitions (version, at);
CREATE INDEX model_transitions_at ON model_transitions (at);

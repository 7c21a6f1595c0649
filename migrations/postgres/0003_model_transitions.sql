-- Audit trail of the model lifecycle: who moved which version where, and when.
CREATE TABLE model_transitions (
    id                 BIGSERIAL PRIMARY KEY,
    version            TEXT NOT NULL,
    from_status        TEXT,
    to_status          TEXT NOT NULL,
    traffic_percentage INTEGER NOT NULL,
    actor              TEXT NOT NULL,
    reason             TEXT,
    at                 TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX model_transitions_version ON model_transitions (version, at);
CREATE INDEX model_transitions_at ON model_transitions (at);

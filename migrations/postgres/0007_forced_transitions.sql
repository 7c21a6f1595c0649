-- An operator may override the promotion gate (`models promote --force` on a
-- rejected version); the audit trail says so in a column of its own.
ALTER TABLE model_transitions ADD COLUMN forced BOOLEAN NOT NULL DEFAULT FALSE;

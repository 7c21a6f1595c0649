-- Suspect labels (issue 17 item 3): approved labels the model confidently
-- disagrees with, flagged by confident learning over out-of-fold
-- predictions before each training run. Each run replaces the whole set.
-- A suspicion holds while its sample is approved with the label flagged
-- and no human has decided it: a human's confirmation or correction (or
-- an import's new label) ends it at once, without touching this table.
CREATE TABLE label_suspects (
    sample_id        INTEGER PRIMARY KEY,
    -- the label the model disagrees with
    flagged_intent   TEXT NOT NULL,
    -- the intent it prefers
    suggested_intent TEXT NOT NULL,
    -- p(suggested) - p(flagged label): higher is more suspicious
    score            REAL NOT NULL,
    -- the version whose training run flagged it
    model_version    TEXT NOT NULL,
    flagged_at       TEXT NOT NULL
);
CREATE INDEX label_suspects_score ON label_suspects (score DESC, sample_id);

-- What each committed daily-capture batch counted, written in the batch's
-- own transaction: the day's report adds up every run of the day, even one
-- killed before it could write the report file.
CREATE TABLE daily_capture_tallies (
    id          BIGSERIAL PRIMARY KEY,
    job_run_id  BIGINT NOT NULL,
    report_date TEXT NOT NULL,
    tally       TEXT NOT NULL,
    created_at  TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX daily_capture_tallies_date ON daily_capture_tallies (report_date);

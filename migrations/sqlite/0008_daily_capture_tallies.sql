-- What each committed daily-capture batch counted, written in the batch's
-- own transaction: the day's report adds up every run of the day, even one
-- killed before it could write the report file.
CREATE TABLE daily_capture_tallies (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    job_run_id  INTEGER NOT NULL,
    report_date TEXT NOT NULL,
    tally       TEXT NOT NULL,
    created_at  TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX daily_capture_tallies_date ON daily_capture_tallies (report_date);

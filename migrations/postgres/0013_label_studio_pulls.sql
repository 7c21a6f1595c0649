-- Incremental Label Studio pull (issue 17 item 5). One row per project:
-- the highest task `updated_at` (Label Studio's own clock) that a
-- completed pull has read. The next pull asks only for tasks updated after
-- it (less a short overlap), so a pull reads what changed, not the project.
-- The watermark is Label Studio's text with microseconds on both backends
-- (`2026-11-25T01:02:03.456789Z`, fixed width, so text order is time
-- order): a millisecond timestamp would re-read the last task every time.
CREATE TABLE label_studio_pulls (
    project_id     BIGINT PRIMARY KEY,
    task_watermark TEXT NOT NULL,
    pulled_at      TIMESTAMPTZ NOT NULL
);
-- A pull and a webhook find our record of a task by its Label Studio id,
-- and a deleted annotation by its id: without these each lookup scans the
-- project's rows.
CREATE INDEX label_studio_tasks_task ON label_studio_tasks (project_id, task_id);
CREATE INDEX label_studio_tasks_annotation ON label_studio_tasks (project_id, last_annotation_id);

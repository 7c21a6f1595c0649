-- Notifications (issue 19 item 4): the state of each health check as last
-- notified to the alert webhook, so a stage posts an event only when a
-- check turns bad or good again, and two stages ending together post it
-- once (the upsert that changes the row claims the event).
CREATE TABLE alert_states (
    check_name TEXT PRIMARY KEY,
    failing    BOOLEAN NOT NULL,
    changed_at TIMESTAMPTZ NOT NULL
);

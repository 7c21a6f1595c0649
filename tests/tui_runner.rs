//! The console's background work, driven headless through its runner and
//! event channel on both backends: stages started from the console are the
//! same recorded runs as the CLI's (trigger `tui`) and report progress; a
//! review in the console changes the sample exactly as a Label Studio pull
//! does, and undo puts it back; promotion goes through the lifecycle rules.

mod support;

use chrono::Duration;
use flywheel::domain::{ReviewStatus, ReviewVerdict};
use flywheel::progress::CancellationToken;
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::samples::Sample;
use flywheel::storage::{Store, Timestamp};
use flywheel::tui::event::UiEvent;
use flywheel::tui::job::Job;
use flywheel::tui::runner::Runner;
use support::fixtures::{model, register_model, router_answer, samples};
use support::{for_each_backend_with_config, scalar};
use tokio::sync::mpsc::{UnboundedReceiver, unbounded_channel};

/// Events until the job's end (with a deadline), and how it ended.
async fn until_finished(
    events: &mut UnboundedReceiver<UiEvent>,
) -> (Vec<UiEvent>, Result<String, String>) {
    let mut seen = Vec::new();
    loop {
        let event = tokio::time::timeout(std::time::Duration::from_secs(60), events.recv())
            .await
            .expect("the job finishes within 60 s")
            .expect("channel open");
        if let UiEvent::JobFinished { result, .. } = event {
            return (seen, result);
        }
        seen.push(event);
    }
}

async fn next_event(events: &mut UnboundedReceiver<UiEvent>) -> UiEvent {
    tokio::time::timeout(std::time::Duration::from_secs(30), events.recv())
        .await
        .expect("an event within 30 s")
        .expect("channel open")
}

fn conversation(text: &str, confidence: f64, minutes_ago: i64) -> NewConversation {
    let at = Timestamp(Timestamp::now().0 - Duration::minutes(minutes_ago));
    NewConversation {
        session_id: Some("s1".into()),
        ..router_answer(text, "refund", confidence, at)
    }
}

/// The samples queued here (`needs-review`).
async fn queue(store: &Store) -> Vec<Sample> {
    samples(store)
        .await
        .into_iter()
        .filter(|s| s.review_status == ReviewStatus::NeedsReview)
        .collect()
}

#[test]
fn stages_started_from_the_console_are_recorded_runs_with_progress() {
    for_each_backend_with_config(|store, config| async move {
        store
            .insert_conversations(&[
                conversation("i want a refund", 0.95, 30),
                conversation("money back now", 0.50, 20),
            ])
            .await
            .unwrap();
        let (tx, mut events) = unbounded_channel();
        let runner = Runner::new(store.clone(), config.clone(), tx);

        runner.start(Job::DailyCapture, CancellationToken::new());
        let (seen, result) = until_finished(&mut events).await;
        let text = result.expect("daily capture succeeds");
        assert!(
            text.contains("2 captured, 1 auto-approved, 1 need review"),
            "{text}"
        );
        assert!(
            seen.iter().any(|e| matches!(e, UiEvent::Progress(_))),
            "progress reached the console: {seen:?}"
        );

        runner.start(Job::Export, CancellationToken::new());
        let (_, result) = until_finished(&mut events).await;
        let text = result.expect("export succeeds");
        assert!(text.starts_with("exported 1 sample(s) to "), "{text}");
        let exports = std::fs::read_dir(config.data_dir.join("exports"))
            .unwrap()
            .count();
        assert_eq!(exports, 1);

        assert_eq!(
            scalar(
                &store,
                "SELECT COUNT(*) FROM job_runs WHERE trigger = 'tui' AND status = 'succeeded'"
            )
            .await,
            2
        );
        // Label Studio is not configured: the sync fails with what to set, recorded nowhere.
        runner.start(Job::LabelStudioSync, CancellationToken::new());
        let (_, result) = until_finished(&mut events).await;
        assert!(result.unwrap_err().contains("LABEL_STUDIO_URL"));
    });
}

/// An operator's cancel from the console is recorded `cancelled` (it was
/// recorded `failed`), and the stage stops before changing anything.
#[test]
fn a_stage_cancelled_from_the_console_is_recorded_cancelled() {
    for_each_backend_with_config(|store, config| async move {
        store
            .insert_conversations(&[conversation("i want a refund", 0.95, 30)])
            .await
            .unwrap();
        let (tx, mut events) = unbounded_channel();
        let runner = Runner::new(store.clone(), config.clone(), tx);
        // Cancelled before it starts: the outcome does not race the key press.
        let cancel = CancellationToken::new();
        cancel.cancel();
        runner.start(Job::DailyCapture, cancel);
        let (_, result) = until_finished(&mut events).await;
        let message = result.expect_err("a cancelled stage does not succeed");
        assert!(message.contains("cancelled by the operator"), "{message}");
        let runs = store.recent_job_runs(10).await.unwrap();
        assert_eq!(runs.len(), 1, "{runs:?}");
        assert_eq!(runs[0].stage, "daily-capture");
        assert_eq!(runs[0].trigger, "tui");
        assert_eq!(runs[0].status, "cancelled");
        assert_eq!(
            scalar(
                &store,
                "SELECT COUNT(*) FROM conversation_logs WHERE review_status = 'pending'"
            )
            .await,
            1
        );
    });
}

#[test]
fn console_review_writes_what_a_label_studio_pull_writes_and_undo_reverts_it() {
    for_each_backend_with_config(|store, config| async move {
        store
            .insert_conversations(&[conversation("money back now", 0.50, 20)])
            .await
            .unwrap();
        let (tx, mut events) = unbounded_channel();
        let runner = Runner::new(store.clone(), config.clone(), tx);
        runner.start(Job::DailyCapture, CancellationToken::new());
        until_finished(&mut events).await.1.unwrap();
        let sample = queue(&store).await.remove(0);

        runner.review(sample.id, ReviewVerdict::Choose("cancel_order".into()));
        let UiEvent::Reviewed { sample_id, result } = next_event(&mut events).await else {
            panic!("expected the review's result")
        };
        assert_eq!(sample_id, sample.id);
        assert!(result.unwrap().contains("approved"));
        let decided = store.sample(sample.id).await.unwrap().unwrap();
        assert_eq!(decided.review_status, "approved");
        assert_eq!(decided.intent, "cancel_order");
        assert_eq!(decided.corrected_from.as_deref(), Some("refund"));
        assert_eq!(decided.source, "human");
        assert_eq!(
            decided.annotator,
            Some(flywheel::lifecycle::current_actor())
        );
        assert_eq!(
            scalar(
                &store,
                "SELECT COUNT(*) FROM conversation_logs WHERE review_status = 'reviewed'"
            )
            .await,
            1
        );

        // Undo, immediately followed by a new decision: they apply in order.
        runner.undo(sample.id);
        runner.review(sample.id, ReviewVerdict::Reject);
        assert!(matches!(
            next_event(&mut events).await,
            UiEvent::Undone { result: Ok(_), .. }
        ));
        assert!(matches!(
            next_event(&mut events).await,
            UiEvent::Reviewed { result: Ok(_), .. }
        ));
        assert_eq!(
            store
                .sample(sample.id)
                .await
                .unwrap()
                .unwrap()
                .review_status,
            "rejected"
        );
        runner.undo(sample.id);
        next_event(&mut events).await;
        let back = store.sample(sample.id).await.unwrap().unwrap();
        assert_eq!(
            (back.review_status.as_str(), back.intent.as_str()),
            ("needs-review", "refund")
        );
        assert_eq!(queue(&store).await.len(), 1);
    });
}

#[test]
fn promote_and_roll_back_from_the_console_follow_the_lifecycle() {
    for_each_backend_with_config(|store, config| async move {
        for (version, status, traffic) in [
            ("router-v1.0.0", "production", 100),
            ("router-v1.1.0", "testing", 0),
        ] {
            register_model(&store, model(version, status, traffic)).await;
        }
        let (tx, mut events) = unbounded_channel();
        let runner = Runner::new(store.clone(), config.clone(), tx);
        runner.start(
            Job::Promote {
                version: "router-v1.1.0".into(),
                traffic: 25,
            },
            CancellationToken::new(),
        );
        let text = until_finished(&mut events).await.1.unwrap();
        assert!(
            text.contains("router-v1.1.0 testing → canary (25 %)"),
            "{text}"
        );
        runner.start(
            Job::Promote {
                version: "router-v1.1.0".into(),
                traffic: 100,
            },
            CancellationToken::new(),
        );
        until_finished(&mut events).await.1.unwrap();
        runner.start(Job::Rollback, CancellationToken::new());
        until_finished(&mut events).await.1.unwrap();
        let production = store.model_version("router-v1.0.0").await.unwrap().unwrap();
        assert_eq!(
            (production.status.as_str(), production.traffic_percentage),
            ("production", 100)
        );
        // A refused change is reported, not applied.
        runner.start(
            Job::Promote {
                version: "router-v9.9.9".into(),
                traffic: 10,
            },
            CancellationToken::new(),
        );
        assert!(
            until_finished(&mut events)
                .await
                .1
                .unwrap_err()
                .contains("no model version")
        );
    });
}

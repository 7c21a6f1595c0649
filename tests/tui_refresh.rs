//! The console's refresh path on both backends: the capture pane's data
//! follows new rows incrementally (feed tailed by id, counts re-read from
//! the newest minute), and the refresh task answers requests with loads or
//! with a failure the status line shows.

mod support;

use chrono::{DateTime, Duration, DurationRound, Utc};
use flywheel::storage::Timestamp;
use flywheel::storage::conversations::NewConversation;
use flywheel::tui::data::{Pane, PaneData};
use flywheel::tui::event::UiEvent;
use flywheel::tui::refresh::{self, Loader, RefreshRequest};
use support::{TestDb, for_each_backend_with_config};
use tokio::sync::{mpsc, watch};

fn conversation(text: &str, at: DateTime<Utc>) -> NewConversation {
    support::fixtures::router_answer(text, "greeting", 0.9, Timestamp(at))
}

#[test]
fn capture_data_follows_new_rows_between_refreshes() {
    for_each_backend_with_config(|store, config| async move {
        let now = Utc::now().duration_trunc(Duration::minutes(1)).unwrap() + Duration::seconds(30);
        store
            .insert_conversations(&[
                conversation("an hour ago", now - Duration::minutes(61)),
                conversation("two minutes ago", now - Duration::minutes(2)),
            ])
            .await
            .unwrap();
        let mut loader = Loader::new(store.clone(), config.clone());
        let PaneData::Capture(first) = loader.load(Pane::Capture, now).await.unwrap() else {
            panic!("capture data")
        };
        assert_eq!(first.feed.len(), 2);
        assert_eq!(
            first.per_minute.iter().sum::<u64>(),
            1,
            "only one in the last hour"
        );

        store
            .insert_conversations(&[
                conversation("same minute as the last", now - Duration::minutes(2)),
                conversation("just now", now),
            ])
            .await
            .unwrap();
        let PaneData::Capture(second) = loader.load(Pane::Capture, now).await.unwrap() else {
            panic!("capture data")
        };
        let texts: Vec<&str> = second
            .feed
            .iter()
            .map(|c| c.user_message.as_str())
            .collect();
        assert_eq!(
            texts,
            [
                "just now",
                "same minute as the last",
                "two minutes ago",
                "an hour ago"
            ]
        );
        assert_eq!(second.per_minute.iter().sum::<u64>(), 3);
        assert_eq!(
            second.per_minute[57], 2,
            "the newest cached minute was re-counted"
        );
        assert_eq!(*second.per_minute.last().unwrap(), 1);
        assert_eq!(second.per_hour.iter().map(|b| b.count).sum::<i64>(), 4);
    });
}

#[test]
fn refresh_task_answers_the_latest_request_and_reports_failures() {
    let db = TestDb::sqlite();
    let config = db.config();
    db.with_store(move |store| async move {
        let (events_tx, mut events) = mpsc::unbounded_channel();
        let (requests, requests_rx) = watch::channel(RefreshRequest::default());
        let task = refresh::spawn(
            Loader::new(store.clone(), config.clone()),
            requests_rx,
            events_tx,
        );
        requests.send_replace(RefreshRequest {
            pane: Pane::Jobs,
            seq: 1,
        });
        match events.recv().await.unwrap() {
            UiEvent::Loaded { data, .. } => assert_eq!(data.pane(), Pane::Jobs),
            other => panic!("expected a load, got {other:?}"),
        }
        store.close().await;
        requests.send_replace(RefreshRequest {
            pane: Pane::Review,
            seq: 2,
        });
        match events.recv().await.unwrap() {
            UiEvent::LoadFailed { pane, message } => {
                assert_eq!(pane, Pane::Review);
                assert!(message.contains("database unavailable"), "{message}");
            }
            other => panic!("expected a failure, got {other:?}"),
        }
        drop(requests);
        task.await.unwrap();
    });
}

/// A conversation's detail: the version that answered it scores its text
/// again (from its artifact under the data dir), best first, the same
/// ranking the model gives; its redacted text; the sample it waits in.
#[test]
fn a_conversation_in_full_has_its_versions_alternatives_and_sample() {
    use flywheel::router::{self as router_model, TrainParams};
    use flywheel::tui::data::Alternatives;
    for_each_backend_with_config(|store, config| async move {
        let mut samples = Vec::new();
        for (intent, phrases) in [
            ("greeting", ["hello there", "namaste ji", "good morning"]),
            (
                "order_food",
                ["order a pizza", "i want biryani", "burger please"],
            ),
            (
                "track_order",
                ["where is my parcel", "track my order", "status of my order"],
            ),
        ] {
            for round in 0..5 {
                for phrase in phrases {
                    samples.push(flywheel::dataset::Sample::new(
                        format!("{phrase} {round}"),
                        intent,
                    ));
                }
            }
        }
        let params = TrainParams {
            version: "router-v1.0.0".into(),
            epochs: 3,
            ..TrainParams::default()
        };
        let model = router_model::train(
            &samples,
            None,
            &params,
            &flywheel::progress::Reporter::silent(),
        )
        .unwrap();
        model
            .save(&config.data_dir.join("models/router-v1.0.0"))
            .unwrap();
        support::exec(
            &store,
            "INSERT INTO model_versions (version, status, artifact_path, traffic_percentage) \
             VALUES ('router-v1.0.0', 'production', 'models/router-v1.0.0', 100)",
        )
        .await;
        let text = "where is my parcel, call 98765 43210";
        let ids = store
            .insert_conversations(&[conversation(text, Utc::now())])
            .await
            .unwrap();
        let expected = model
            .model
            .classify(text, Some(flywheel::lang::Language::En));

        let detail = Loader::new(store.clone(), config.clone())
            .conversation_detail(ids[0])
            .await
            .unwrap();
        assert_eq!(
            detail.conversation.user_message,
            "where is my parcel, call <phone>"
        );
        let Alternatives::Scored { version, intents } = &detail.alternatives else {
            panic!("{:?}", detail.alternatives);
        };
        assert_eq!(version, "router-v1.0.0");
        let names: Vec<&str> = intents.iter().map(|(i, _)| i.as_str()).collect();
        let want: Vec<&str> = expected
            .alternatives
            .iter()
            .map(|a| a.intent.as_str())
            .collect();
        assert_eq!(names, want, "scored on the raw text, as served");
        assert!(intents.windows(2).all(|w| w[0].1 >= w[1].1), "{intents:?}");
        assert!(detail.sample.is_none(), "no daily capture yet");
    });
}

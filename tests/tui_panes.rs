//! Every console pane drawn with ratatui's TestBackend against a seeded
//! database, at 80×24 and 120×40, snapshot-tested; plus the empty and the
//! error states and the dialogs. Time is fixed (`NOW`), so the snapshots
//! are the same on every run and on both backends (one snapshot serves
//! SQLite and PostgreSQL: the panes must not differ between them).

mod support;

use chrono::{DateTime, Duration, TimeZone, Utc};
use flywheel::config::{Config, Secret};
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::models::NewModelVersion;
use flywheel::storage::samples::NewSample;
use flywheel::storage::{Store, Timestamp};
use flywheel::tui::app::{App, Confirm, ConversationView, EpochPoint, GapView, Overlay};
use flywheel::tui::data::{Connection, Pane};
use flywheel::tui::event::UiEvent;
use flywheel::tui::job::Job;
use flywheel::tui::refresh::Loader;
use flywheel::tui::ui::{self, theme::Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use support::fixtures::{model, register_model};
use support::{TestDb, block_on, exec, for_each_backend_with_config};

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 25, 12, 0, 0).unwrap()
}

const SIZES: [(u16, u16); 2] = [(80, 24), (120, 40)];

fn render(app: &App, width: u16, height: u16) -> String {
    let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
    terminal
        .draw(|frame| ui::draw(frame, app, &Theme { color: true }))
        .unwrap();
    terminal.backend().to_string()
}

fn ts(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// 48 h of traffic, one conversation every 2 minutes, except a 2-hour
/// silence 20 h ago and silence since 45 minutes ago.
async fn seed_conversations(store: &Store) {
    let start = now() - Duration::hours(48);
    let mut rows = Vec::new();
    let mut at = start;
    let mut i = 0u32;
    while at < now() - Duration::minutes(45) {
        let in_gap = at >= now() - Duration::hours(20) && at < now() - Duration::hours(18);
        if !in_gap {
            rows.push(NewConversation {
                created_at: Timestamp(at),
                session_id: Some(format!("s{}", i % 7)),
                user_hash: None,
                user_message: format!("where is my order {i}"),
                language: Some(["en", "hinglish", "hi"][i as usize % 3].into()),
                nlu_intent: Some(["order_status", "refund", "greeting"][i as usize % 3].into()),
                nlu_confidence: Some(0.5 + f64::from(i % 50) / 100.0),
                nlu_provider: Some(
                    if i.is_multiple_of(10) {
                        "legacy-nlu"
                    } else {
                        "flywheel-router"
                    }
                    .into(),
                ),
                model_version: Some("router-v1.0.0".into()),
                fallback: i % 10 == 3,
                routing_decision: None,
                classify_ms: None,
                classify_error: None,
            });
        }
        at += Duration::minutes(2);
        i += 1;
    }
    store.insert_conversations(&rows).await.unwrap();
}

fn sample(
    text: &str,
    predicted: &str,
    status: &'static str,
    priority: i32,
    occurrences: i32,
    confidence: f64,
) -> NewSample {
    NewSample {
        text: text.into(),
        normalized_text: flywheel::text::normalize_for_dedup(text),
        intent: predicted.into(),
        language: Some("en".into()),
        source: if status == "approved" {
            flywheel::domain::Provenance::Import
        } else {
            flywheel::domain::Provenance::Auto
        },
        confidence: Some(confidence),
        review_status: status.parse().unwrap(),
        priority,
        occurrences,
        predicted_intent: (status != "approved").then(|| predicted.to_string()),
        predicted_by_version: (status != "approved").then(|| "router-v1.0.0".to_string()),
        conversation_id: None,
    }
}

async fn seed_rest(store: &Store, config: &Config) {
    store
        .upsert_samples(&[
            sample(
                "cancel my subscription please",
                "refund",
                "needs-review",
                2,
                4,
                0.41,
            ),
            sample(
                "mera order kab aayega",
                "order_status",
                "needs-review",
                2,
                1,
                0.55,
            ),
            sample("hello there", "greeting", "needs-review", 5, 9, 0.78),
            sample(
                "is the shop open on sunday",
                "store_hours",
                "needs-review",
                5,
                1,
                0.72,
            ),
            sample("track package", "order_status", "approved", 5, 1, 0.99),
            sample("i want my money back", "refund", "approved", 5, 1, 0.99),
            sample(
                "what time do you close",
                "store_hours",
                "approved",
                5,
                1,
                0.99,
            ),
        ])
        .await
        .unwrap();
    let fixed = ts(now() - Duration::hours(3));
    exec(
        store,
        &format!("UPDATE training_samples SET created_at = '{fixed}', updated_at = '{fixed}'"),
    )
    .await;
    for (version, status, traffic, accuracy) in [
        ("router-v1.0.0", "production", 100, 0.912),
        ("router-v1.1.0", "testing", 0, 0.931),
    ] {
        register_model(
            store,
            NewModelVersion {
                artifact_path: Some(format!("/models/{version}")),
                train_samples: Some(900),
                test_samples: Some(150),
                test_accuracy: Some(accuracy),
                ..model(version, status, traffic)
            },
        )
        .await;
    }
    exec(
        store,
        &format!(
            "UPDATE model_versions SET created_at = '{}', updated_at = created_at",
            ts(now() - Duration::days(2))
        ),
    )
    .await;
    exec(store, &format!(
        "INSERT INTO training_runs (version, status, started_at, finished_at, epoch, epochs, loss, accuracy) VALUES \
         ('router-v1.1.0', 'succeeded', '{}', '{}', 30, 30, 0.1234, 0.931)",
        ts(now() - Duration::hours(30)),
        ts(now() - Duration::hours(30) + Duration::seconds(12)),
    ))
    .await;
    let job = |stage: &str,
               trigger: &str,
               status: &str,
               started: DateTime<Utc>,
               secs: Option<i64>,
               counts: &str,
               error: &str| {
        let finished = secs.map_or("NULL".to_string(), |s| {
            format!("'{}'", ts(started + Duration::seconds(s)))
        });
        let counts = if counts.is_empty() {
            "NULL".to_string()
        } else {
            format!("'{counts}'")
        };
        let error = if error.is_empty() {
            "NULL".to_string()
        } else {
            format!("'{error}'")
        };
        format!(
            "INSERT INTO job_runs (stage, trigger, status, started_at, finished_at, counts, error) VALUES \
             ('{stage}', '{trigger}', '{status}', '{}', {finished}, {counts}, {error})",
            ts(started)
        )
    };
    for sql in [
        job(
            "daily-capture",
            "cron",
            "succeeded",
            now() - Duration::hours(19),
            Some(4),
            r#"{"captured":1380,"auto_approved":900}"#,
            "",
        ),
        job(
            "label-studio-sync",
            "cron",
            "failed",
            now() - Duration::hours(6),
            Some(61),
            "",
            "Label Studio at http://ls:8080 is unreachable",
        ),
        job(
            "label-studio-sync",
            "tui",
            "succeeded",
            now() - Duration::hours(2),
            Some(3),
            r#"{"pushed":4,"pulled":2,"errors":[]}"#,
            "",
        ),
        job(
            "export",
            "cli",
            "running",
            now() - Duration::minutes(3),
            None,
            "",
            "",
        ),
    ] {
        exec(store, &sql).await;
    }
    let first_sample: i64 = support::scalar(store, "SELECT MIN(id) FROM training_samples").await;
    exec(store, &format!(
        "INSERT INTO label_studio_tasks (sample_id, project_id, task_id, pushed_at, sync_state) VALUES \
         ({first_sample}, 7, 101, '{}', 'pushed'), ({}, 7, 102, '{}', 'annotated')",
        ts(now() - Duration::hours(2)),
        first_sample + 1,
        ts(now() - Duration::hours(2)),
    ))
    .await;
    let logs = config.logs_dir();
    std::fs::create_dir_all(&logs).unwrap();
    std::fs::write(
        logs.join("flywheel.2026-11-25.log"),
        "2026-11-25T09:58:00.000Z  INFO flywheel::jobs: stage started stage=label-studio-sync run=3 trigger=tui\n\
         2026-11-25T09:58:03.000Z  INFO flywheel::jobs: stage succeeded stage=label-studio-sync run=3\n\
         2026-11-25T11:57:00.000Z  WARN flywheel::capture: no capture for 40 min\n",
    )
    .unwrap();
}

/// An app with every pane loaded from `store` as of `NOW`.
/// The console over the whole seed (traffic and the rest), every pane loaded.
async fn seeded_app(store: &Store, config: &Config) -> App {
    seed_conversations(store).await;
    seed_rest(store, config).await;
    loaded_app(store, config).await
}

async fn loaded_app(store: &Store, config: &Config) -> App {
    // The free disk of the machine running the tests is not the screen's
    // business: its health line must not come and go with it.
    let mut config = config.clone();
    config.health.min_free_disk_mb = 0;
    let mut loader = Loader::new(store.clone(), config);
    let mut app = App::new(now(), 10);
    for pane in Pane::ALL {
        let data = loader.load(pane, now()).await.unwrap();
        app.apply(UiEvent::Loaded { data, at: now() });
    }
    app
}

fn pane_name(pane: Pane) -> &'static str {
    match pane {
        Pane::Capture => "capture",
        Pane::Review => "review",
        Pane::LabelStudio => "label_studio",
        Pane::Training => "training",
        Pane::Jobs => "jobs",
    }
}

#[test]
fn seeded_panes_at_80x24_and_120x40() {
    for_each_backend_with_config(|store, config| async move {
        let mut app = seeded_app(&store, &config).await;
        for pane in Pane::ALL {
            app.pane = pane;
            for (w, h) in SIZES {
                insta::assert_snapshot!(
                    format!("seeded_{}_{w}x{h}", pane_name(pane)),
                    render(&app, w, h)
                );
            }
        }
        // What the seeded data must show, beyond "it looks the same".
        app.pane = Pane::Capture;
        let capture = render(&app, 120, 40);
        assert!(
            capture.contains("NO CAPTURE for 46 min (limit 30 min)"),
            "{capture}"
        );
        assert_eq!(app.capture.as_ref().unwrap().gaps.len(), 2);
        app.pane = Pane::Review;
        let review = render(&app, 80, 24);
        assert!(review.contains("4 waiting, 2 urgent"), "{review}");
    });
}

#[test]
fn review_pane_shows_a_suspect_label_at_the_head_of_its_share() {
    for_each_backend_with_config(|store, config| async move {
        seed_rest(&store, &config).await;
        let id = store
            .sample_by_normalized_text("track package")
            .await
            .unwrap()
            .unwrap()
            .id;
        store
            .replace_suspects(
                "router-v1.1.0",
                &[flywheel::storage::suspects::NewSuspect {
                    sample_id: id,
                    flagged_intent: "order_status".into(),
                    suggested_intent: "refund".into(),
                    score: 0.87,
                }],
            )
            .await
            .unwrap();
        let mut app = loaded_app(&store, &config).await;
        app.pane = Pane::Review;
        // No audit waits: the suspect comes first, and is the one selected.
        assert_eq!(app.visible_queue()[0].sample.id, id);
        let review = render(&app, 80, 24);
        assert!(review.contains("1 suspect label"), "{review}");
        assert!(review.contains("suspect: model says refund"), "{review}");
        insta::assert_snapshot!("review_suspect_80x24", review);
        // Wide: the phrase is its reason, in the why column.
        let wide = render(&app, 120, 40);
        assert!(
            wide.contains("suspect: model says refund") && wide.contains("1 of 5: suspect"),
            "{wide}"
        );
    });
}

#[test]
fn empty_database_panes_say_what_to_do() {
    for_each_backend_with_config(|store, config| async move {
        let mut app = loaded_app(&store, &config).await;
        for pane in Pane::ALL {
            app.pane = pane;
            for (w, h) in SIZES {
                insta::assert_snapshot!(
                    format!("empty_{}_{w}x{h}", pane_name(pane)),
                    render(&app, w, h)
                );
            }
        }
        app.pane = Pane::LabelStudio;
        assert!(render(&app, 120, 40).contains("LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY"));
    });
}

#[test]
fn label_studio_configured_shows_connection_project_and_counts() {
    let db = TestDb::sqlite();
    let mut config = db.config();
    config.label_studio.url = Some("http://ls.example:8080".into());
    config.label_studio.api_key = Some(Secret::new("secret-key-never-shown"));
    config.label_studio.project_id = Some(7);
    block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        seed_rest(&store, &config).await;
        let mut app = loaded_app(&store, &config).await;
        app.pane = Pane::LabelStudio;
        app.apply(UiEvent::Connection(Connection::Ok {
            user: "ops@example.com".into(),
        }));
        for (w, h) in SIZES {
            let screen = render(&app, w, h);
            assert!(
                !screen.contains("secret-key"),
                "the key must never be shown"
            );
            insta::assert_snapshot!(format!("label_studio_configured_{w}x{h}"), screen);
        }
        app.apply(UiEvent::Connection(Connection::KeyRefused(
            "401: invalid token".into(),
        )));
        insta::assert_snapshot!("label_studio_key_refused_80x24", render(&app, 80, 24));
        store.close().await;
    });
}

#[test]
fn unreachable_database_shows_a_status_line_and_keeps_the_last_data() {
    let db = TestDb::sqlite();
    let config = db.config();
    db.with_store(move |store| async move {
        seed_rest(&store, &config).await;
        let mut app = loaded_app(&store, &config).await;
        let mut loader = Loader::new(store.clone(), config.clone());
        store.close().await;
        let error = loader.load(Pane::Review, now()).await.unwrap_err();
        app.pane = Pane::Review;
        app.apply(UiEvent::LoadFailed {
            pane: Pane::Review,
            message: error.message().to_string(),
        });
        let screen = render(&app, 80, 24);
        assert!(screen.contains("database: "), "{screen}");
        assert!(
            screen.contains("cancel my subscription"),
            "the last data stays: {screen}"
        );
        insta::assert_snapshot!("error_review_keeps_data_80x24", screen);

        // Before any data arrived, the pane itself says what failed.
        let mut fresh = App::new(now(), 10);
        fresh.pane = Pane::Training;
        fresh.apply(UiEvent::LoadFailed {
            pane: Pane::Training,
            message: "the database did not answer within 3 s; showing the last data".into(),
        });
        insta::assert_snapshot!("error_training_never_loaded_80x24", render(&fresh, 80, 24));
    });
}

#[test]
fn dialogs_and_live_training_chart() {
    let db = TestDb::sqlite();
    let config = db.config();
    db.with_store(move |store| async move {
        let mut app = seeded_app(&store, &config).await;

        app.overlay = Overlay::Help;
        insta::assert_snapshot!("dialog_help_80x24", render(&app, 80, 24));
        // Each pane's keys fit 80×24 whole, the last row included.
        for pane in Pane::ALL {
            app.pane = pane;
            let help = render(&app, 80, 24);
            assert!(help.contains("confirm / cancel"), "{help}");
        }
        app.pane = Pane::Capture;

        app.pane = Pane::Review;
        app.overlay = Overlay::ChooseIntent {
            filter: "re".into(),
            selected: 0,
        };
        insta::assert_snapshot!("dialog_choose_intent_80x24", render(&app, 80, 24));

        app.pane = Pane::Training;
        app.overlay = Overlay::Traffic {
            version: "router-v1.1.0".into(),
            input: "10".into(),
        };
        insta::assert_snapshot!("dialog_traffic_80x24", render(&app, 80, 24));
        app.overlay = Overlay::Confirm(Confirm::Start(Job::Rollback));
        insta::assert_snapshot!("dialog_confirm_rollback_80x24", render(&app, 80, 24));

        app.overlay = Overlay::None;
        app.apply(UiEvent::Loaded {
            data: Loader::new(store.clone(), config.clone())
                .load(Pane::Training, now())
                .await
                .unwrap(),
            at: now(),
        });
        app.job = Some(flywheel::tui::app::JobView {
            job: Job::TrainNow,
            phase: Some("train".into()),
            total: Some(30),
            done: 12,
            note: None,
            cancelling: false,
        });
        for epoch in 1..=12u32 {
            app.epochs.push(EpochPoint {
                epoch,
                epochs: 30,
                loss: 2.0 / epoch as f32,
                accuracy: Some(0.5 + epoch as f32 * 0.03),
            });
        }
        for (w, h) in SIZES {
            insta::assert_snapshot!(format!("training_live_chart_{w}x{h}"), render(&app, w, h));
        }

        app.job = None;
        app.pane = Pane::Capture;
        let gap = app.capture.as_ref().unwrap().gaps[0].clone();
        let detail = Loader::new(store.clone(), config.clone())
            .gap_detail(gap)
            .await
            .unwrap();
        assert_eq!(detail.conversations.len(), 20);
        assert_eq!(
            detail.job_runs.len(),
            1,
            "the daily capture that ran during the gap"
        );
        app.overlay = Overlay::Gap(GapView::Loaded(detail));
        insta::assert_snapshot!("dialog_gap_detail_120x40", render(&app, 120, 40));
    });
}

#[test]
fn no_color_draws_every_pane_without_colours() {
    let db = TestDb::sqlite();
    let config = db.config();
    db.with_store(move |store| async move {
        let mut app = seeded_app(&store, &config).await;
        for pane in Pane::ALL {
            app.pane = pane;
            for color in [true, false] {
                let mut terminal = Terminal::new(TestBackend::new(120, 40)).unwrap();
                terminal
                    .draw(|frame| ui::draw(frame, &app, &Theme { color }))
                    .unwrap();
                let coloured = terminal
                    .backend()
                    .buffer()
                    .content()
                    .iter()
                    .filter(|cell| {
                        cell.fg != ratatui::style::Color::Reset
                            || cell.bg != ratatui::style::Color::Reset
                    })
                    .count();
                if color {
                    assert!(coloured > 0, "{pane:?} uses colour when allowed");
                } else {
                    assert_eq!(coloured, 0, "{pane:?} drew colour under NO_COLOR");
                }
            }
        }
    });
}

#[test]
fn training_pane_compares_canary_and_production_since_the_canary_started() {
    for_each_backend_with_config(|store, config| async move {
        seed_conversations(&store).await;
        seed_rest(&store, &config).await;
        exec(&store, &format!(
            "UPDATE model_versions SET status = 'canary', traffic_percentage = 10, canary_at = '{}' \
             WHERE version = 'router-v1.1.0'",
            ts(now() - Duration::hours(12))
        ))
        .await;
        // A tenth of the last 12 h went to the canary; one of its answers got negative feedback.
        exec(
            &store,
            &format!(
                "UPDATE conversation_logs SET model_version = 'router-v1.1.0' \
             WHERE created_at >= '{}' AND id % 10 = 0",
                ts(now() - Duration::hours(12))
            ),
        )
        .await;
        exec(
            &store,
            "UPDATE conversation_logs SET feedback = 'negative' WHERE id = \
             (SELECT MAX(id) FROM conversation_logs WHERE model_version = 'router-v1.1.0')",
        )
        .await;
        let mut app = loaded_app(&store, &config).await;
        app.pane = Pane::Training;
        let watch = app.training.as_ref().unwrap().canary_watch.clone().unwrap();
        assert_eq!(watch.canary.negative_feedback, 1);
        assert_eq!(
            watch.canary.conversations + watch.production.conversations,
            support::scalar(
                &store,
                &format!(
                    "SELECT COUNT(*) FROM conversation_logs WHERE created_at >= '{}'",
                    ts(now() - Duration::hours(12))
                )
            )
            .await
        );
        for (w, h) in SIZES {
            insta::assert_snapshot!(format!("training_canary_watch_{w}x{h}"), render(&app, w, h));
        }
    });
}

/// Texts of combining scripts: a Devanagari conjunct with its vowel sign
/// (`म्हा`) covers three columns, Tamil and Thai stack marks on letters.
const COMBINING: [&str; 3] = ["तुम्हारा नाम क्या है", "உங்கள் பெயர் என்ன", "สวัสดีครับ ผมชื่อสมชาย"];

/// Every line of a rendered screen (TestBackend's quoted lines) is as wide
/// as the terminal: no cluster took more or fewer columns than it says.
fn assert_every_line_is(screen: &str, width: usize) {
    use unicode_width::UnicodeWidthStr;
    for line in screen.lines() {
        let quoted = line.split(" Hidden by multi-width symbols").next().unwrap();
        let inner = quoted.trim_start_matches('"').trim_end_matches('"');
        assert_eq!(inner.width(), width, "{line}\nin\n{screen}");
    }
}

/// Every one of `expected` is on `screen`.
fn assert_shows(screen: &str, expected: &[&str]) {
    for text in expected {
        assert!(screen.contains(text), "{text} in\n{screen}");
    }
}

/// A conversation `minutes_ago`, answered `refund` at 0.44 by the router's
/// production version and routed to the fallback.
fn answered(minutes_ago: i64, session: &str, text: &str) -> NewConversation {
    let at = Timestamp(now() - Duration::minutes(minutes_ago));
    NewConversation {
        session_id: Some(session.into()),
        fallback: true,
        ..support::fixtures::router_answer(text, "refund", 0.44, at)
    }
}

#[test]
fn combining_scripts_keep_their_columns_in_every_pane() {
    for_each_backend_with_config(|store, config| async move {
        seed_rest(&store, &config).await;
        let rows: Vec<NewConversation> = COMBINING
            .iter()
            .enumerate()
            .map(|(i, text)| NewConversation {
                language: Some(["hi", "other", "other"][i].into()),
                nlu_intent: Some("greeting".into()),
                nlu_confidence: Some(0.61),
                fallback: false,
                ..answered(10 - i as i64, "s-hi", text)
            })
            .collect();
        store.insert_conversations(&rows).await.unwrap();
        store
            .upsert_samples(&[sample(COMBINING[0], "greeting", "needs-review", 1, 3, 0.3)])
            .await
            .unwrap();
        exec(
            &store,
            &format!(
                "UPDATE training_samples SET created_at = '{0}', updated_at = '{0}'",
                ts(now() - Duration::hours(3))
            ),
        )
        .await;
        let mut app = loaded_app(&store, &config).await;
        for pane in [Pane::Capture, Pane::Review] {
            app.pane = pane;
            for (w, h) in SIZES {
                let screen = render(&app, w, h);
                assert!(screen.contains(COMBINING[0]), "{screen}");
                assert_every_line_is(&screen, w as usize);
                insta::assert_snapshot!(format!("combining_{}_{w}x{h}", pane_name(pane)), screen);
            }
        }
        // The newest conversation (Thai) heads the feed; the Hindi one in full.
        app.pane = Pane::Capture;
        let id = app.capture.as_ref().unwrap().feed[2].id;
        let detail = Loader::new(store.clone(), config.clone())
            .conversation_detail(id)
            .await
            .unwrap();
        assert_eq!(detail.conversation.user_message, COMBINING[0]);
        assert_eq!(detail.sample.as_ref().unwrap().text, COMBINING[0]);
        app.overlay = Overlay::Conversation(ConversationView::Loaded(Box::new(detail)));
        let screen = render(&app, 80, 24);
        assert_every_line_is(&screen, 80);
        insta::assert_snapshot!("combining_conversation_80x24", screen);
    });
}

#[test]
fn the_feed_shows_redacted_texts_newest_first_and_a_conversation_in_full() {
    for_each_backend_with_config(|store, config| async move {
        seed_conversations(&store).await;
        seed_rest(&store, &config).await;
        // Backfilled into the past (a higher id, an older time), and one
        // with a phone number and feedback.
        let row = |minutes: i64, text: &str| answered(minutes, "s-late", text);
        let ids = store
            .insert_conversations(&[
                row(30, "call me on 98765 43210 about my refund"),
                row(60 * 30, "backfilled from yesterday"),
            ])
            .await
            .unwrap();
        assert!(
            store
                .record_feedback(ids[0], "negative", None)
                .await
                .unwrap()
        );
        let mut app = loaded_app(&store, &config).await;
        let feed = &app.capture.as_ref().unwrap().feed;
        assert_eq!(feed[0].id, ids[0], "newest by time first");
        assert!(
            feed.windows(2).all(|w| w[0].created_at >= w[1].created_at),
            "ordered by time"
        );
        assert!(
            feed.iter().all(|c| c.id != ids[1]),
            "older than the 100 newest"
        );
        app.pane = Pane::Capture;
        let screen = render(&app, 120, 40);
        assert!(screen.contains("call me on <phone> about my"), "{screen}");
        assert!(!screen.contains("98765"), "{screen}");
        insta::assert_snapshot!("feed_with_text_120x40", screen);

        let detail = Loader::new(store.clone(), config.clone())
            .conversation_detail(ids[0])
            .await
            .unwrap();
        assert_eq!(
            detail.conversation.user_message,
            "call me on <phone> about my refund"
        );
        assert_eq!(detail.conversation.feedback.as_deref(), Some("negative"));
        // The seeded versions have no artifact on disk: said, not hidden.
        assert!(
            matches!(&detail.alternatives, flywheel::tui::data::Alternatives::Unavailable(why) if why.contains("router-v1.0.0")),
            "{:?}",
            detail.alternatives
        );
        app.overlay = Overlay::Conversation(ConversationView::Loaded(Box::new(detail)));
        let screen = render(&app, 100, 30);
        assert_shows(
            &screen,
            &[
                "conversation",
                "session s-late",
                "refund 0.44 · by router-v1.0.0 (flywheel-router)",
                "yes: routed to the fallback",
                "none yet: daily capture has not folded it",
                "negative",
            ],
        );
        let missing = Loader::new(store.clone(), config.clone())
            .conversation_detail(ids[1] + 1000)
            .await
            .unwrap_err();
        assert!(
            missing.message().contains("is not in the database"),
            "{missing}"
        );
    });
}

#[test]
fn a_job_run_in_words_its_error_in_full_and_the_read_only_header() {
    let db = TestDb::sqlite();
    let config = db.config();
    db.with_store(move |store| async move {
        seed_rest(&store, &config).await;
        exec(
            &store,
            &format!(
                "INSERT INTO job_runs (stage, trigger, status, started_at, finished_at, counts, error) VALUES \
                 ('daily-capture', 'cron', 'failed', '{}', '{}', \
                 '{{\"captured\":10370,\"auto_approved\":9991,\"needs_review\":223,\"folded_into_existing\":688}}', \
                 'writing samples failed\ncaused by: disk full\ncaused by: No space left on device (os error 28)')",
                ts(now() - Duration::minutes(5)),
                ts(now() - Duration::minutes(4)),
            ),
        )
        .await;
        let mut app = loaded_app(&store, &config).await;
        app.pane = Pane::Jobs;
        let screen = render(&app, 120, 40);
        assert!(screen.contains("writing samples failed"), "{screen}");
        assert!(!screen.contains("caused by: disk full"), "first line only:\n{screen}");
        insta::assert_snapshot!("jobs_error_first_line_120x40", screen);
        let run = app.jobs.as_ref().unwrap().runs.iter().find(|r| r.error.as_deref().is_some_and(|e| e.contains("disk full"))).unwrap().clone();
        app.overlay = Overlay::Run(Box::new(run));
        let screen = render(&app, 100, 30);
        assert_shows(
            &screen,
            &[
                "10 370 captured",
                "9 991 auto-approved",
                "223 to review",
                "688 folded into existing samples",
                "caused by: No space left on device (os error 28)",
            ],
        );
        insta::assert_snapshot!("dialog_job_run_100x30", screen);

        app.overlay = Overlay::None;
        app.read_only = true;
        let screen = render(&app, 80, 24);
        assert!(screen.lines().next().unwrap().contains("READ-ONLY"), "{screen}");
        insta::assert_snapshot!("read_only_header_80x24", screen);
    });
}

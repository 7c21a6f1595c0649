//! Audits of live traffic (issue 16 item 2) on both backends: daily
//! capture draws a deterministic share of all conversations whatever their
//! confidence, their samples wait for a human in the audit queue (newest
//! traffic first; auto-approved ones still train, uncertain ones do not
//! wait behind the review backlog), and the labels give production
//! accuracy and auto-approval precision per version — in `models list`,
//! `status`, the seed's query on `model_versions` and the warnings.

mod support;

use chrono::{Duration, Utc};
use flywheel::audit::{DrawRates, drawn};
use flywheel::config::Config;
use flywheel::domain::{ModelStatus, ReviewStatus, ReviewVerdict};
use flywheel::review::order::review_order;
use flywheel::review::value::Reason;
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::models::NewModelVersion;
use flywheel::storage::samples::{ReviewDecision, Sample};
use flywheel::storage::{Store, Timestamp};
use support::fixtures::{router_answer, spelled};
use support::processes::doctor_check;
use support::{Exits, TestDb, block_on, json_stdout, rows, value};

const VERSION: &str = "router-v1.0.0";
const PERCENT: u32 = 50;

/// 200 distinct conversations served by [`VERSION`] an hour ago and
/// earlier: confident ones (auto-approved) and uncertain ones.
fn traffic() -> Vec<NewConversation> {
    let now = Utc::now();
    (0..200)
        .map(|i| NewConversation {
            session_id: Some(format!("s{i}")),
            model_version: Some(VERSION.into()),
            ..router_answer(
                &format!("where is my order number {}", spelled(i as usize)),
                "track_order",
                if i % 4 == 0 { 0.6 } else { 0.95 },
                Timestamp(now - Duration::minutes(60 + i)),
            )
        })
        .collect()
}

async fn ids_drawn(store: &Store) -> Vec<(i64, i64, String)> {
    let sql = "SELECT conversation_id, sample_id, conversation_status FROM audits ORDER BY conversation_id";
    rows(store, sql).await
}

async fn seed_query(store: &Store) -> Option<f64> {
    // The seed's "Check Model Performance" query reads this column.
    let sql = "SELECT production_accuracy FROM model_versions WHERE version = 'router-v1.0.0'";
    value(store, sql).await
}

fn daily_capture(db: &TestDb) -> serde_json::Value {
    let out = db
        .cmd()
        .env("FLYWHEEL_AUDIT__PERCENT", PERCENT.to_string())
        .args(["daily-capture", "--json"])
        .succeeds();
    json_stdout(&out)
}

/// The audits' part of the review order, in its order, as samples.
async fn audit_queue(store: &Store, config: &Config) -> Vec<Sample> {
    let ids: Vec<i64> = review_order(store, config)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.reason == Reason::Audit)
        .map(|r| r.item.sample_id)
        .collect();
    store.samples_by_ids(&ids).await.unwrap()
}

#[test]
fn audits_measure_production_accuracy_and_auto_approval_precision() {
    for db in TestDb::all() {
        let config = db.config();
        let conversation_ids = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            store
                .insert_model_version(
                    &NewModelVersion {
                        version: VERSION.into(),
                        status: ModelStatus::Production,
                        traffic_percentage: 100,
                        artifact_path: None,
                        test_accuracy: Some(0.9),
                        metrics: None,
                        train_samples: None,
                        test_samples: None,
                    },
                    "test",
                )
                .await
                .unwrap();
            let ids = store.insert_conversations(&traffic()).await.unwrap();
            store.close().await;
            ids
        });

        daily_capture(&db);
        let config = db.config();
        // 150 confident and 50 uncertain conversations, half of them drawn:
        // the uncertain at twice the rate of the confident (400 and 800 per
        // mille, `audit.needs_review_multiplier` 2).
        let rates = DrawRates::for_window(PERCENT, 2, 150, 50);
        assert_eq!((rates.auto_approved, rates.needs_review), (400, 800));
        let expected: Vec<i64> = conversation_ids
            .iter()
            .enumerate()
            .filter(|(i, id)| {
                let rate = if i % 4 == 0 {
                    rates.needs_review
                } else {
                    rates.auto_approved
                };
                drawn(**id, rate)
            })
            .map(|(_, id)| *id)
            .collect();
        let (audits, queue) = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let audits = ids_drawn(&store).await;
            let queue = audit_queue(&store, &config).await;
            store.close().await;
            (audits, queue)
        });
        // The SQL draw is the documented hash, over all confidences.
        assert_eq!(
            audits.iter().map(|a| a.0).collect::<Vec<_>>(),
            expected,
            "SQL and audit::drawn agree"
        );
        assert!(audits.iter().any(|a| a.2 == "auto-approved"));
        assert!(audits.iter().any(|a| a.2 == "needs-review"));
        // Every audit waits for a human: auto-approved ones (they still
        // train as approved) and uncertain ones, which would otherwise wait
        // behind the review queue's backlog.
        let status_of = |sample: i64| audits.iter().find(|a| a.1 == sample).unwrap().2.clone();
        let approved = queue
            .iter()
            .filter(|s| s.review_status == ReviewStatus::Approved)
            .inspect(|s| assert_eq!(status_of(s.id), "auto-approved"))
            .count();
        let uncertain = queue
            .iter()
            .filter(|s| s.review_status == ReviewStatus::NeedsReview)
            .inspect(|s| assert_eq!(status_of(s.id), "needs-review"))
            .count();
        assert!(approved > 0 && uncertain > 0, "{queue:?}");
        assert_eq!(approved + uncertain, queue.len());
        let samples: std::collections::BTreeSet<i64> = audits.iter().map(|a| a.1).collect();
        assert_eq!(queue.len(), samples.len());
        // Newest traffic first: conversation i is i minutes older, so the
        // lowest conversation id comes first.
        assert_eq!(queue[0].id, audits[0].1, "{queue:?}");

        // A re-run draws nothing new.
        let again = daily_capture(&db);
        assert_eq!(again["audits_drawn"], 0, "{again}");

        // Humans label every drawn sample: auto-approved ones confirmed
        // except the first ten, the uncertain ones all corrected.
        let config = db.config();
        let labelled = audits.clone();
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let mut corrected_auto = 0;
            for (_, sample, status) in &labelled {
                let verdict = if status == "auto-approved" && corrected_auto >= 10 {
                    ReviewVerdict::Accept
                } else {
                    if status == "auto-approved" {
                        corrected_auto += 1;
                    }
                    ReviewVerdict::Choose("cancel_order".into())
                };
                store
                    .apply_review(
                        *sample,
                        &ReviewDecision {
                            verdict,
                            annotator: Some("auditor".into()),
                            decided_at: Timestamp::now(),
                        },
                    )
                    .await
                    .unwrap();
            }
            assert!(audit_queue(&store, &config).await.is_empty());
            store.close().await;
        });
        let n = audits.len();
        let uncertain = audits.iter().filter(|a| a.2 == "needs-review").count();
        let auto_n = n - uncertain;
        let right = auto_n - 10;

        let out = db
            .cmd()
            .args(["models", "list", "--json"])
            .output()
            .unwrap();
        let listed = json_stdout(&out);
        let model = &listed["models"][0];
        let accuracy = model["production_accuracy"].as_f64().unwrap();
        // Each uncertain audit stands for half as many conversations as a
        // confident one: right / (auto_n + uncertain / 2), where the
        // unweighted share would read right / n.
        let weighted = right as f64 / (auto_n as f64 + uncertain as f64 / 2.0);
        assert!((accuracy - weighted).abs() < 1e-9, "{model}");
        assert_eq!(model["production_accuracy_n"], n);
        let interval = &model["production_accuracy_interval"];
        assert!(
            interval[0].as_f64().unwrap() < accuracy && accuracy < interval[1].as_f64().unwrap()
        );
        let precision = &model["auto_approval_precision"];
        assert_eq!(precision["n"], auto_n, "{model}");
        assert!((precision["value"].as_f64().unwrap() - right as f64 / auto_n as f64).abs() < 1e-9);

        // Daily capture writes it where the seed's query reads it.
        daily_capture(&db);
        let config = db.config();
        let stored = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let stored = seed_query(&store).await;
            store.close().await;
            stored
        });
        assert!((stored.unwrap() - accuracy).abs() < 1e-9, "{stored:?}");
        // So does the model_performance view operators query by hand.
        let config = db.config();
        let viewed: Option<f64> = block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let sql =
                "SELECT production_accuracy FROM model_performance WHERE version = 'router-v1.0.0'";
            let viewed = value(&store, sql).await;
            store.close().await;
            viewed
        });
        assert!((viewed.unwrap() - accuracy).abs() < 1e-9, "{viewed:?}");

        // status reports both, and warns when the interval is below the
        // bar (about 0.63 against 0.82, and 0.83 against 0.97).
        let out = db.cmd().args(["status", "--json"]).output().unwrap();
        let status = json_stdout(&out);
        let production = &status["audits"]["production"];
        assert_eq!(production["version"], VERSION, "{status}");
        assert_eq!(production["production_accuracy"]["n"], n);
        assert_eq!(status["audits"]["auto_approval_precision"]["n"], auto_n);
        let codes = |status: &serde_json::Value| -> Vec<String> {
            status["warnings"]
                .as_array()
                .unwrap()
                .iter()
                .map(|w| w["code"].as_str().unwrap().to_string())
                .collect()
        };
        let warned = codes(&status);
        assert!(
            warned.contains(&"low-production-accuracy".into()),
            "{warned:?}"
        );
        assert!(
            warned.contains(&"low-auto-approval-precision".into()),
            "{warned:?}"
        );
        let out = db
            .cmd()
            .env("FLYWHEEL_HEALTH__MIN_PRODUCTION_ACCURACY", "0.5")
            .env("FLYWHEEL_AUTO_FILTER__MIN_PRECISION", "0.5")
            .args(["status", "--json"])
            .output()
            .unwrap();
        let calm = codes(&json_stdout(&out));
        assert!(!calm.iter().any(|c| c.starts_with("low-")), "{calm:?}");

        // doctor says the same (it may fail other checks on a test box).
        let out = db.cmd().args(["doctor", "--json"]).output().unwrap();
        let doctor = json_stdout(&out);
        let check = |name: &str| doctor_check(&doctor, name);
        assert_eq!(check("production-accuracy")["status"], "warn", "{doctor}");
        assert_eq!(
            check("auto-approval-precision")["status"],
            "warn",
            "{doctor}"
        );

        // And the console: the Training pane shows both figures under the
        // versions, in the warning colour.
        let config = db.config();
        block_on(async move {
            use flywheel::tui::{app::App, data::Pane, event::UiEvent, refresh::Loader};
            use ratatui::{Terminal, backend::TestBackend, style::Color};
            let store = flywheel::storage::open(&config).await.unwrap();
            let mut loader = Loader::new(store.clone(), config.clone());
            let data = loader.load(Pane::Training, Utc::now()).await.unwrap();
            let mut app = App::new(Utc::now(), 10);
            app.apply(UiEvent::Loaded {
                data,
                at: Utc::now(),
            });
            app.pane = Pane::Training;
            let training = app.training.as_ref().unwrap();
            let warned: Vec<&str> = training.audit_warnings.iter().map(|w| w.code).collect();
            assert_eq!(
                warned,
                ["low-production-accuracy", "low-auto-approval-precision"]
            );
            let mut terminal = Terminal::new(TestBackend::new(160, 30)).unwrap();
            terminal
                .draw(|frame| {
                    flywheel::tui::ui::draw(
                        frame,
                        &app,
                        &flywheel::tui::ui::theme::Theme { color: true },
                    )
                })
                .unwrap();
            let buffer = terminal.backend().buffer().clone();
            let screen = terminal.backend().to_string();
            // The figure starts after "VERSION right on ".
            let label = format!("{VERSION} right on ");
            let figure = format!("{label}{accuracy:.3}");
            let (row, line) = screen
                .lines()
                .enumerate()
                .find(|(_, l)| l.contains(&figure))
                .unwrap_or_else(|| panic!("no {figure:?} on screen:\n{screen}"));
            let start = line.find(&figure).unwrap() + label.len();
            let column = line[..start].chars().count() as u16;
            let warn = flywheel::tui::ui::theme::Theme { color: true }.warn().fg;
            assert_eq!(
                buffer[(column, row as u16)].fg,
                warn.unwrap_or(Color::Reset)
            );
            store.close().await;
        });
    }
}

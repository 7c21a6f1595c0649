//! The model lifecycle rules of DESIGN §1 on both backends, with the audit
//! trail, through the library and the real binary.

mod support;

use flywheel::lifecycle::{self, Target};
use flywheel::storage::Store;
use flywheel::storage::models::NewModelVersion;
use predicates::prelude::*;
use support::fixtures::{model, register_model};
use support::processes::succeeded;
use support::{TestDb, for_each_backend, json_stdout};

async fn register(store: &Store, version: &str, status: &str, traffic: i32) {
    register_model(
        store,
        NewModelVersion {
            artifact_path: Some(format!("/models/{version}")),
            test_accuracy: Some(0.9),
            ..model(version, status, traffic)
        },
    )
    .await;
}

async fn statuses(store: &Store) -> Vec<(String, String, i32)> {
    let mut v: Vec<_> = store
        .list_model_versions()
        .await
        .unwrap()
        .into_iter()
        .map(|m| (m.version, m.status.to_string(), m.traffic_percentage))
        .collect();
    v.sort();
    v
}

/// The versions registered after router-v1.0.0, oldest first.
const LATER: [&str; 4] = [
    "router-v1.1.0",
    "router-v1.2.0",
    "router-v1.3.0",
    "router-v1.4.0",
];

fn row(v: &str, s: &str, t: i32) -> (String, String, i32) {
    (v.into(), s.into(), t)
}

#[test]
fn promote_canary_then_production_then_rollback() {
    for_each_backend(|store| async move {
        register(&store, "router-v1.0.0", "production", 100).await;
        register(&store, "router-v1.1.0", "testing", 0).await;
        register(&store, "router-v1.2.0", "testing", 0).await;

        lifecycle::promote(
            &store,
            "router-v1.1.0",
            Target::Canary { traffic: 10 },
            "alice@ops",
        )
        .await
        .unwrap();
        assert_eq!(
            statuses(&store).await,
            [
                row("router-v1.0.0", "production", 90),
                row("router-v1.1.0", "canary", 10),
                row("router-v1.2.0", "testing", 0)
            ]
        );
        // Gradual rollout: the canary again with more traffic.
        lifecycle::promote(
            &store,
            "router-v1.1.0",
            Target::Canary { traffic: 25 },
            "alice@ops",
        )
        .await
        .unwrap();
        assert_eq!(
            statuses(&store).await[0],
            row("router-v1.0.0", "production", 75)
        );
        // One canary at a time.
        let err = lifecycle::promote(
            &store,
            "router-v1.2.0",
            Target::Canary { traffic: 10 },
            "bob@ops",
        )
        .await
        .unwrap_err();
        assert!(
            err.message()
                .contains("router-v1.1.0 is already the canary"),
            "{err}"
        );
        // Production can't be archived; rejected/archived can't become canary.
        let err = lifecycle::archive(&store, "router-v1.0.0", "bob@ops")
            .await
            .unwrap_err();
        assert!(err.message().contains("is in production"), "{err}");

        lifecycle::promote(&store, "router-v1.1.0", Target::Production, "alice@ops")
            .await
            .unwrap();
        assert_eq!(
            statuses(&store).await,
            [
                row("router-v1.0.0", "archived", 0),
                row("router-v1.1.0", "production", 100),
                row("router-v1.2.0", "testing", 0)
            ]
        );
        let err = lifecycle::promote(
            &store,
            "router-v1.0.0",
            Target::Canary { traffic: 10 },
            "bob@ops",
        )
        .await
        .unwrap_err();
        assert!(err.message().contains("only a testing version"), "{err}");

        lifecycle::rollback(&store, "carol@oncall").await.unwrap();
        assert_eq!(
            statuses(&store).await,
            [
                row("router-v1.0.0", "production", 100),
                row("router-v1.1.0", "archived", 0),
                row("router-v1.2.0", "testing", 0)
            ]
        );
        let v1 = store.model_version("router-v1.0.0").await.unwrap().unwrap();
        assert!(v1.production_at.is_some() && v1.archived_at.is_some());

        // The audit trail says who did what, newest first.
        let trail = store
            .model_transitions(Some("router-v1.1.0"), 10)
            .await
            .unwrap();
        let steps: Vec<_> = trail
            .iter()
            .map(|t| {
                (
                    t.from_status.map(|s| s.to_string()).unwrap_or_default(),
                    t.to_status.to_string(),
                    t.actor.clone(),
                )
            })
            .collect();
        assert_eq!(
            steps,
            [
                (
                    "production".into(),
                    "archived".into(),
                    "carol@oncall".into()
                ),
                ("canary".into(), "production".into(), "alice@ops".into()),
                ("canary".into(), "canary".into(), "alice@ops".into()),
                ("testing".into(), "canary".into(), "alice@ops".into()),
                ("".into(), "testing".into(), "test@host".into()),
            ]
        );
    });
}

#[test]
fn archive_canary_returns_traffic_and_rollback_needs_history() {
    for_each_backend(|store| async move {
        let err = lifecycle::rollback(&store, "x").await.unwrap_err();
        assert!(err.message().contains("no production model"), "{err}");
        register(&store, "router-v1.0.0", "production", 100).await;
        let err = lifecycle::rollback(&store, "x").await.unwrap_err();
        assert!(err.message().contains("nothing to roll back to"), "{err}");
        register(&store, "router-v1.1.0", "testing", 0).await;
        lifecycle::promote(&store, "router-v1.1.0", Target::Canary { traffic: 50 }, "x")
            .await
            .unwrap();
        lifecycle::archive(&store, "router-v1.1.0", "x")
            .await
            .unwrap();
        assert_eq!(
            statuses(&store).await,
            [
                row("router-v1.0.0", "production", 100),
                row("router-v1.1.0", "archived", 0)
            ]
        );
        let err = lifecycle::promote(&store, "router-v9", Target::Production, "x")
            .await
            .unwrap_err();
        assert!(
            err.message().contains("no model version router-v9"),
            "{err}"
        );
        let err = lifecycle::promote(
            &store,
            "router-v1.0.0",
            Target::Canary { traffic: 100 },
            "x",
        )
        .await
        .unwrap_err();
        assert_eq!(err.kind().exit_code(), 2);
    });
}

#[test]
fn concurrent_promotions_leave_exactly_one_production() {
    for_each_backend(|store| async move {
        register(&store, "router-v1.0.0", "production", 100).await;
        for v in LATER {
            register(&store, v, "testing", 0).await;
        }
        let tasks: Vec<_> = LATER
            .into_iter()
            .map(|v| {
                let store = store.clone();
                tokio::spawn(async move {
                    lifecycle::promote(&store, v, Target::Production, "race").await
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap().expect("each promotion applies in turn");
        }
        let all = statuses(&store).await;
        assert_eq!(
            all.iter().filter(|(_, s, _)| s == "production").count(),
            1,
            "{all:?}"
        );
        assert_eq!(
            all.iter().filter(|(_, s, _)| s == "archived").count(),
            4,
            "{all:?}"
        );
    });
}

#[test]
fn models_commands_through_the_binary() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            register(&store, "router-v1.0.0", "production", 100).await;
            register(&store, "router-v1.1.0", "testing", 0).await;
        });
        let promote = ["models", "promote", "router-v1.1.0", "--to"];
        let changes = json_stdout(&succeeded(
            db.cmd()
                .args(promote)
                .args(["canary", "--json"])
                .env("USER", "dana")
                .output()
                .unwrap(),
        ));
        assert_eq!(changes["changes"][1]["to_status"], "canary");
        assert_eq!(
            changes["changes"][1]["traffic_percentage"], 10,
            "default canary traffic"
        );
        db.cmd().args(["models", "list"]).assert().success().stdout(
            predicate::str::contains("router-v1.1.0").and(predicate::str::contains("canary")),
        );
        db.cmd()
            .args(["models", "history", "router-v1.1.0"])
            .assert()
            .success()
            .stdout(predicate::str::contains("by dana@"));
        db.cmd()
            .args(promote)
            .args(["production", "--traffic", "5"])
            .assert()
            .code(2);
        db.cmd()
            .args(["models", "archive", "router-v1.0.0"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("is in production"));
        db.cmd()
            .args(["models", "promote", "router-v1.1.0", "--to", "production"])
            .assert()
            .success();
        db.cmd()
            .args(["models", "rollback", "--json"])
            .assert()
            .success()
            .stdout(predicate::str::contains("rolled back to router-v1.0.0"));
    }
}

/// Five versions promoted one after another; each rollback goes one step
/// further back (never back to what the previous rollback removed), and a
/// version retired with `models archive` is passed over.
#[test]
fn rollback_walks_back_through_production_history() {
    for_each_backend(|store| async move {
        register(&store, "router-v1.0.0", "production", 100).await;
        for v in LATER {
            register(&store, v, "testing", 0).await;
            lifecycle::promote(&store, v, Target::Production, "ops")
                .await
                .unwrap();
        }
        let production = |store: Store| async move {
            store
                .list_model_versions()
                .await
                .unwrap()
                .into_iter()
                .find(|m| m.status == "production")
                .map(|m| m.version)
                .unwrap()
        };
        // router-v1.2.0 is retired by an operator: rollback skips it.
        lifecycle::archive(&store, "router-v1.2.0", "ops")
            .await
            .unwrap();
        let err = lifecycle::archive(&store, "router-v1.2.0", "ops")
            .await
            .unwrap_err();
        assert!(
            err.message().contains("already archived and retired"),
            "{err}"
        );

        let mut seen = Vec::new();
        for _ in 0..3 {
            lifecycle::rollback(&store, "oncall").await.unwrap();
            seen.push(production(store.clone()).await);
        }
        assert_eq!(seen, ["router-v1.3.0", "router-v1.1.0", "router-v1.0.0"]);
        let err = lifecycle::rollback(&store, "oncall").await.unwrap_err();
        assert!(err.message().contains("nothing to roll back to"), "{err}");

        // A new promotion starts a new history: rollback returns to the
        // version it replaced, not to anything rolled back earlier.
        register(&store, "router-v1.5.0", "testing", 0).await;
        lifecycle::promote(&store, "router-v1.5.0", Target::Production, "ops")
            .await
            .unwrap();
        lifecycle::rollback(&store, "oncall").await.unwrap();
        assert_eq!(production(store.clone()).await, "router-v1.0.0");
    });
}

/// `--force` promotes a rejected version on purpose, recorded as forced;
/// without it a rejected version is refused with a hint.
#[test]
fn forced_promotion_of_a_rejected_version_is_recorded() {
    for db in TestDb::all() {
        db.with_store(move |store| async move {
            register(&store, "router-v1.0.0", "production", 100).await;
            register(&store, "router-v1.1.0", "rejected", 0).await;
        });
        db.cmd()
            .args(["models", "promote", "router-v1.1.0", "--to", "canary"])
            .assert()
            .code(1)
            .stderr(
                predicate::str::contains("is rejected").and(predicate::str::contains("--force")),
            );
        let changes = db.json(&[
            "models",
            "promote",
            "router-v1.1.0",
            "--to",
            "canary",
            "--force",
            "--json",
        ]);
        let step = &changes["changes"][1];
        assert_eq!(step["version"], "router-v1.1.0");
        assert_eq!(step["from_status"], "rejected");
        assert_eq!(step["to_status"], "canary");
        assert_eq!(step["forced"], true);
        db.with_store(move |store| async move {
            let trail = store
                .model_transitions(Some("router-v1.1.0"), 10)
                .await
                .unwrap();
            assert!(
                trail[0].forced && trail[0].to_status == "canary",
                "{trail:?}"
            );
            assert!(!trail[1].forced, "registration is not forced: {trail:?}");
        });
        // The rollback through the binary names what it restored and retired.
        db.cmd()
            .args(["models", "promote", "router-v1.1.0", "--to", "production"])
            .assert()
            .success();
        let rollback = db.json(&["models", "rollback", "--json"]);
        assert_eq!(rollback["restored"], "router-v1.0.0");
        assert_eq!(rollback["retired"], "router-v1.1.0");
        db.cmd()
            .args(["models", "rollback"])
            .assert()
            .code(1)
            .stderr(predicate::str::contains("nothing to roll back to"));
    }
}

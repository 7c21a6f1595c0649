//! Two `serve` replicas writing to one PostgreSQL, each on its own port,
//! under synthetic load, while cron-like stages (daily capture, export)
//! run again and again on the same database (issue 8, scale): nothing
//! acknowledged is lost, nothing is stored twice, every conversation is
//! counted into exactly one sample once.

mod support;

use std::process::Output;

use support::fixtures::{count, install_rules_model};
use support::serve::Server;
use support::{Exits, TestDb, json_stdout, scalar};

fn simulate(db: &TestDb, target: &str) -> std::process::Child {
    db.command()
        .args([
            "simulate",
            "--rate",
            "250",
            "--duration",
            "4s",
            "--json",
            "--target",
            target,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn acknowledged(out: &Output) -> i64 {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report = json_stdout(out)["report"].clone();
    assert_eq!(
        report["ok"], report["sent"],
        "every request answered 200: {report}"
    );
    report["ok"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_replicas_and_cron_stages_on_one_database_lose_nothing() {
    let Some(db) = TestDb::postgres() else { return };
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    let a = Server::start(&db, &[], &[]);
    let b = Server::start(&db, &[], &[]);
    assert_ne!(a.base, b.base);

    let mut users = [simulate(&db, &a.base), simulate(&db, &b.base)];
    // Stages keep running while both replicas write.
    let mut stage_runs = 0;
    while users.iter_mut().any(|u| u.try_wait().unwrap().is_none()) {
        for args in [
            &["daily-capture", "--since", "1h"][..],
            &["export", "--output", "export.jsonl"],
        ] {
            db.command().args(args).succeeds();
            stage_runs += 1;
        }
    }
    let sent: i64 = users
        .into_iter()
        .map(|u| acknowledged(&u.wait_with_output().unwrap()))
        .sum();
    assert!(sent >= 1000, "both replicas took load: {sent}");
    assert!(stage_runs >= 4, "stages ran during the load: {stage_runs}");

    // One last capture after the load: everything acknowledged is there,
    // once, and counted into exactly one sample once.
    let out = db
        .command()
        .args(["daily-capture", "--since", "1h"])
        .output()
        .unwrap();
    assert!(out.status.success());
    assert_eq!(count(&store, "true").await, sent);
    assert_eq!(count(&store, "review_status = 'pending'").await, 0);
    let with_sample = count(&store, "sample_id IS NOT NULL").await;
    assert_eq!(
        scalar(
            &store,
            "SELECT CAST(SUM(occurrences) AS BIGINT) FROM training_samples"
        )
        .await,
        with_sample,
        "occurrences add up to the conversations folded into samples"
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM (SELECT normalized_text FROM training_samples \
             GROUP BY normalized_text HAVING COUNT(*) > 1) AS d"
        )
        .await,
        0
    );
    assert_eq!(
        scalar(
            &store,
            "SELECT COUNT(*) FROM job_runs WHERE status <> 'succeeded'"
        )
        .await,
        0
    );
}

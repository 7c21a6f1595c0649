//! `flywheel simulate` against a real `serve`: synthetic traffic is
//! classified and logged, in several languages, with the injected gap
//! visible in the stored timestamps.

mod support;

use flywheel::storage::Timestamp;
use support::backends::rows as rows_of;
use support::fixtures::install_rules_model;
use support::serve::Server;
use support::{Exits, TestDb, json_stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn simulated_users_are_captured_with_the_injected_gap() {
    let db = TestDb::sqlite();
    let store = db.store().await;
    install_rules_model(&db, &store).await;
    let server = Server::start(&db, &[], &[]);
    let out = db
        .command()
        .args([
            "simulate",
            "--rate",
            "100",
            "--duration",
            "3s",
            "--gap",
            "1s",
            "--json",
            "--target",
            &server.base,
        ])
        .succeeds();
    let report = json_stdout(&out)["report"].clone();
    let sent = report["sent"].as_u64().unwrap();
    assert!(sent >= 50, "{report}");
    assert_eq!(report["ok"].as_u64(), Some(sent), "{report}");
    assert_eq!(report["gap_seconds"].as_f64(), Some(1.0));

    let mut conversations = store.recent_conversations(i64::MAX).await.unwrap();
    conversations.reverse(); // oldest first
    let rows: Vec<(Timestamp, Option<String>)> = conversations
        .into_iter()
        .map(|c| (c.created_at, c.language))
        .collect();
    assert_eq!(rows.len() as u64, sent);
    let languages: std::collections::BTreeSet<_> =
        rows.iter().filter_map(|(_, l)| l.clone()).collect();
    assert!(languages.len() >= 2, "{languages:?}");
    // Every simulated user has a phone number: stored as an HMAC only, and
    // returning users (the traffic's heavy users) share one.
    let [(hashed, users, raw)]: [(i64, i64, i64); 1] = rows_of(
        &store,
        "SELECT COUNT(user_hash), COUNT(DISTINCT user_hash), \
                SUM(CASE WHEN user_hash LIKE '%+91%' OR session_id LIKE '%+91%' THEN 1 ELSE 0 END) \
         FROM conversation_logs",
    )
    .await
    .try_into()
    .unwrap();
    assert_eq!(hashed as u64, sent, "conversations without a user hash");
    assert!(
        users > 1 && (users as u64) < sent,
        "{users} distinct users in {sent} turns"
    );
    assert_eq!(raw, 0, "a raw phone number was stored");
    let longest = rows.windows(2).map(|w| w[1].0.0 - w[0].0.0).max().unwrap();
    assert!(
        longest >= chrono::Duration::milliseconds(900),
        "longest silence {longest}"
    );

    // Nothing listening: a clear error, exit 69.
    db.command()
        .args([
            "simulate",
            "--rate",
            "50",
            "--duration",
            "1s",
            "--target",
            "http://127.0.0.1:9",
        ])
        .exits_with(69);
}

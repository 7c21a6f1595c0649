//! Zero acknowledged rows lost: load `serve` from this (second) process,
//! SIGKILL it mid-load, restart it, and check that every request that got a
//! 200 has its row with its text.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use support::TestDb;
use support::fixtures::{install_rules_model, stored_texts};
use support::processes::eventually;
use support::serve::{Server, client};

const CLIENTS: usize = 32;
/// Acknowledged requests before the kill: enough that many are in flight.
const ACKS_BEFORE_KILL: usize = 400;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_row_survives_sigkill() {
    for db in TestDb::all() {
        let store = db.store().await;
        install_rules_model(&db, &store).await;
        let server = Server::start(&db, &[], &[]);
        let http = client();
        let acked = Arc::new(AtomicUsize::new(0));
        let mut clients = Vec::new();
        for c in 0..CLIENTS {
            let (http, url, acked) = (http.clone(), server.url("/nlu/classify"), acked.clone());
            clients.push(tokio::spawn(async move {
                let mut mine: Vec<(i64, String)> = Vec::new();
                for i in 0.. {
                    let text = format!("pizza from client {c} number {i}");
                    let Ok(answer) = http
                        .post(&url)
                        .json(&json!({ "text": text, "sessionId": format!("c{c}") }))
                        .send()
                        .await
                    else {
                        break; // the server is gone
                    };
                    if answer.status() != StatusCode::OK {
                        continue;
                    }
                    // A 200 whose body did not fully arrive is not an acknowledgement.
                    let Ok(body) = answer.json::<Value>().await else {
                        break;
                    };
                    mine.push((body["conversation_id"].as_i64().unwrap(), text));
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                mine
            }));
        }
        eventually("load to build up", Duration::from_secs(60), || async {
            (acked.load(Ordering::Relaxed) >= ACKS_BEFORE_KILL).then_some(())
        })
        .await;
        server.signal("KILL");
        let mut acknowledged = Vec::new();
        for client in clients {
            acknowledged.extend(client.await.unwrap());
        }
        drop(server);
        assert!(acknowledged.len() >= ACKS_BEFORE_KILL);

        // Restart on the same database: it comes up and serves.
        let restarted = Server::start(&db, &[], &[]);
        let after = http
            .post(restarted.url("/nlu/classify"))
            .json(&json!({"text": "pizza after restart"}))
            .send()
            .await
            .unwrap();
        assert_eq!(after.status(), StatusCode::OK);

        let stored = stored_texts(&store).await;
        let lost: Vec<_> = acknowledged
            .iter()
            .filter(|(id, text)| stored.get(id) != Some(text))
            .collect();
        assert!(
            lost.is_empty(),
            "{:?}: {} of {} acknowledged rows lost, e.g. {:?}",
            db.backend,
            lost.len(),
            acknowledged.len(),
            &lost[..lost.len().min(5)]
        );
        eprintln!(
            "{:?}: {} acknowledged, {} stored, none lost",
            db.backend,
            acknowledged.len(),
            stored.len()
        );
    }
}

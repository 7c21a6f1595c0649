//! The schema of DESIGN §2 exists with its exact names on both backends,
//! and the operators' hand-written queries run verbatim.

mod support;

use flywheel::storage;
use support::backends::try_row_count;
use support::{Backend, TestDb, block_on, exec, rows, scalar, value};

const TABLES: [&str; 6] = [
    "conversation_logs",
    "training_samples",
    "model_versions",
    "training_runs",
    "label_studio_tasks",
    "job_runs",
];
const VIEWS: [&str; 3] = [
    "training_queue",
    "daily_training_stats",
    "model_performance",
];

/// DESIGN §2, verbatim.
const OPERATOR_QUERIES: [&str; 7] = [
    "SELECT * FROM training_queue WHERE review_status='needs-review' LIMIT 20;",
    "SELECT * FROM daily_training_stats ORDER BY date DESC LIMIT 7;",
    "SELECT version, status, test_accuracy, traffic_percentage FROM model_versions;",
    "SELECT user_message, nlu_intent, nlu_confidence, nlu_provider, review_status, created_at
  FROM conversation_logs ORDER BY created_at DESC LIMIT 20;",
    "SELECT COUNT(*) FILTER (WHERE review_status = 'auto-approved') * 100.0 / COUNT(*) AS auto_approval_rate
  FROM conversation_logs WHERE created_at >= CURRENT_DATE;",
    "SELECT version, test_accuracy, production_accuracy, fallback_rate, traffic_percentage
  FROM model_versions WHERE status = 'production';",
    "SELECT COUNT(*) FROM training_samples WHERE review_status='approved' AND model_version_target IS NULL;",
];

/// A few rows so the views and queries have something to chew on.
const SEED: [&str; 4] = [
    "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider, review_status, model_version) \
     VALUES ('pizza chahiye', 'order_food', 0.93, 'flywheel-router', 'auto-approved', 'router-v1.0.0')",
    "INSERT INTO conversation_logs (user_message, nlu_intent, nlu_confidence, nlu_provider) \
     VALUES ('where is my parcel', 'track_order', 0.61, 'flywheel-router')",
    "INSERT INTO training_samples (text, normalized_text, intent, source, review_status, priority) \
     VALUES ('refund please', 'refund please', 'refund_request', 'auto', 'needs-review', 2)",
    "INSERT INTO model_versions (version, status, test_accuracy, traffic_percentage) \
     VALUES ('router-v1.0.0', 'production', 0.91, 100)",
];

#[test]
fn tables_views_and_operator_queries_on_both_backends() {
    for db in TestDb::all() {
        let backend = db.backend;
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.expect("open and migrate");
            // Migrating again is a no-op.
            let again = store.migrate().await.expect("second migrate");
            assert!(again.pending().is_empty());
            // Each backend's catalog.
            let catalog = match backend {
                Backend::Sqlite => {
                    "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view')"
                }
                Backend::Postgres => {
                    "SELECT table_name::text, CASE table_type WHEN 'VIEW' THEN 'view' ELSE 'table' END \
                     FROM information_schema.tables WHERE table_schema = current_schema()"
                }
            };
            let names: Vec<(String, String)> = rows(&store, catalog).await;
            check_names(&names, backend);
            for sql in SEED {
                exec(&store, sql).await;
            }
            for sql in OPERATOR_QUERIES {
                try_row_count(&store, sql)
                    .await
                    .unwrap_or_else(|e| panic!("{backend:?}: {sql}: {e}"));
            }
            if backend == Backend::Postgres {
                // The values behind the queries are right, not just parseable.
                let wrapped = format!(
                    "SELECT CAST(auto_approval_rate AS DOUBLE PRECISION) FROM ({}) q",
                    OPERATOR_QUERIES[4].trim_end_matches(';')
                );
                let rate: f64 = value(&store, &wrapped).await;
                assert!((rate - 50.0).abs() < 1e-9, "auto-approval rate {rate}");
                assert_eq!(
                    scalar(&store, "SELECT COUNT(*) FROM training_queue").await,
                    1
                );
            }
            store.close().await;
        });
    }
}

fn check_names(found: &[(String, String)], backend: Backend) {
    for table in TABLES {
        assert!(
            found.iter().any(|(n, t)| n == table && t == "table"),
            "{backend:?}: table {table} missing (found {found:?})"
        );
    }
    for view in VIEWS {
        assert!(
            found.iter().any(|(n, t)| n == view && t == "view"),
            "{backend:?}: view {view} missing"
        );
    }
}

#[test]
fn status_snapshot_counts_what_is_there() {
    for db in TestDb::all() {
        let config = db.config();
        block_on(async move {
            let store = storage::open(&config).await.unwrap();
            let empty = store.status_snapshot(&config).await.unwrap();
            assert_eq!(empty.queue.total(), 0);
            assert!(empty.live_models.is_empty());
            assert!(empty.last_capture_at.is_none());
            for sql in SEED {
                exec(&store, sql).await;
            }
            exec(&store, "INSERT INTO training_samples (text, normalized_text, intent, source, review_status, priority) \
                  VALUES ('hi', 'hi', 'greeting', 'auto', 'approved', 5)")
                .await;
            let s = store.status_snapshot(&config).await.unwrap();
            assert_eq!(s.queue.needs_review(), 1);
            assert_eq!(s.queue.urgent(), 1);
            assert_eq!(s.approved_unused, 1);
            assert_eq!(s.today.captured, 2);
            assert_eq!(s.today.auto_approved, 1);
            assert_eq!(s.today.pending, 1);
            assert_eq!(s.auto_approval_rate, Some(100.0));
            assert_eq!(s.live_models.len(), 1);
            assert_eq!(s.live_models[0].version, "router-v1.0.0");
            assert!(s.last_capture_at.is_some());
            store.close().await;
        });
    }
}

//! Console benchmark (DESIGN §9): render time of each pane and pane data
//! refresh time against 1 000 000 conversations and 100 000 samples on
//! SQLite, and the process's memory. Prints figures; bars: render ≤ 2 ms,
//! refresh ≤ 20 ms, RSS ≤ 100 MB.
//!
//!   cargo bench --bench console                  # 1 000 000 / 100 000
//!   CONVERSATIONS=200000 SAMPLES=20000 cargo bench --bench console
//!   BENCH_DATABASE_URL=postgres://…/empty_db cargo bench --bench console
//!
//! Rows are generated inside the database (a recursive CTE on SQLite,
//! generate_series on PostgreSQL), so seeding takes seconds: conversations
//! spread evenly over the last 30 days, half the samples waiting for
//! review. With `BENCH_DATABASE_URL` the bench seeds that (empty, migrated
//! on open) PostgreSQL database and leaves it for `scripts/bench-scale.sh`;
//! a database that already holds conversations is measured as it is.

use std::time::{Duration, Instant};

use chrono::Utc;
use flywheel::config::Config;
use flywheel::storage::{Backend, Store};
use flywheel::tui::app::App;
use flywheel::tui::data::Pane;
use flywheel::tui::event::UiEvent;
use flywheel::tui::refresh::Loader;
use flywheel::tui::ui::{self, theme::Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn exec(store: &Store, sql: &str) {
    match store.backend() {
        Backend::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop),
        Backend::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop),
    }
    .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

/// [`seed_sqlite`]'s rows, written by PostgreSQL.
async fn seed_postgres(store: &Store, conversations: u64, samples: u64) {
    let span_secs = 30 * 24 * 3600;
    exec(
        store,
        &format!(
            "INSERT INTO conversation_logs (created_at, session_id, user_message, language, nlu_intent, \
               nlu_confidence, nlu_provider, model_version, fallback, review_status) \
             SELECT now() - make_interval(secs => ({conversations} - i) * {span_secs}.0 / {conversations}), \
               's' || (i % 5000), 'where is order ' || i, \
               CASE i % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'hinglish' ELSE 'hi' END, 'intent_' || (i % 40), \
               0.4 + (i % 60) / 100.0, CASE WHEN i % 10 = 0 THEN 'legacy-nlu' ELSE 'flywheel-router' END, \
               CASE WHEN i % 5 = 0 THEN 'router-v1.1.0' ELSE 'router-v1.0.0' END, i % 9 = 0, \
               CASE WHEN i % 2 = 0 THEN 'auto-approved' ELSE 'needs-review' END \
             FROM generate_series(1, {conversations}) AS s(i)"
        ),
    )
    .await;
    exec(
        store,
        &format!(
            "INSERT INTO training_samples (text, normalized_text, intent, language, source, confidence, \
               review_status, priority, occurrences, predicted_intent, predicted_by_version) \
             SELECT 'sample text ' || i, 'sample text ' || i, 'intent_' || (i % 40), 'en', 'auto', \
               0.3 + (i % 50) / 100.0, CASE WHEN i % 2 = 0 THEN 'approved' ELSE 'needs-review' END, \
               CASE WHEN i % 3 = 0 THEN 2 ELSE 5 END, 1 + i % 7, 'intent_' || (i % 40), 'router-v1.0.0' \
             FROM generate_series(1, {samples}) AS s(i)"
        ),
    )
    .await;
    exec(
        store,
        "INSERT INTO job_runs (stage, trigger, status, started_at, finished_at, counts) \
         SELECT CASE i % 3 WHEN 0 THEN 'daily-capture' WHEN 1 THEN 'label-studio-sync' ELSE 'export' END, \
           'cron', 'succeeded', now() - make_interval(mins => i * 20), \
           now() - make_interval(mins => i * 20 - 1), '{\"pushed\":10,\"pulled\":4}' \
         FROM generate_series(1, 2000) AS s(i)",
    )
    .await;
    exec(
        store,
        "INSERT INTO label_studio_tasks (sample_id, project_id, task_id, pushed_at, sync_state) \
         SELECT id, 1, id, updated_at, 'pushed' FROM training_samples WHERE review_status = 'needs-review' LIMIT 10000",
    )
    .await;
    exec(
        store,
        "INSERT INTO model_versions (version, status, traffic_percentage, test_accuracy) \
         VALUES ('router-v1.0.0', 'production', 100, 0.91), ('router-v1.1.0', 'testing', 0, 0.91)",
    )
    .await;
    // PostgreSQL in production runs autovacuum, which analyzes.
    exec(store, "ANALYZE").await;
}

async fn seed_sqlite(store: &Store, conversations: u64, samples: u64) {
    let span_secs = 30 * 24 * 3600;
    exec(
        store,
        &format!(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {conversations}) \
             INSERT INTO conversation_logs (created_at, session_id, user_message, language, nlu_intent, \
               nlu_confidence, nlu_provider, model_version, fallback, review_status) \
             SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%.3f seconds', ({conversations} - i) * {span_secs}.0 / {conversations})), \
               's' || (i % 5000), 'where is order ' || i, \
               CASE i % 3 WHEN 0 THEN 'en' WHEN 1 THEN 'hinglish' ELSE 'hi' END, 'intent_' || (i % 40), \
               0.4 + (i % 60) / 100.0, CASE WHEN i % 10 = 0 THEN 'legacy-nlu' ELSE 'flywheel-router' END, \
               CASE WHEN i % 5 = 0 THEN 'router-v1.1.0' ELSE 'router-v1.0.0' END, i % 9 = 0, \
               CASE WHEN i % 2 = 0 THEN 'auto-approved' ELSE 'needs-review' END \
             FROM seq"
        ),
    )
    .await;
    exec(
        store,
        &format!(
            "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < {samples}) \
             INSERT INTO training_samples (text, normalized_text, intent, language, source, confidence, \
               review_status, priority, occurrences, predicted_intent, predicted_by_version, created_at, updated_at) \
             SELECT 'sample text ' || i, 'sample text ' || i, 'intent_' || (i % 40), 'en', 'auto', \
               0.3 + (i % 50) / 100.0, CASE WHEN i % 2 = 0 THEN 'approved' ELSE 'needs-review' END, \
               CASE WHEN i % 3 = 0 THEN 2 ELSE 5 END, 1 + i % 7, 'intent_' || (i % 40), 'router-v1.0.0', \
               strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now') \
             FROM seq"
        ),
    )
    .await;
    exec(
        store,
        "WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < 2000) \
         INSERT INTO job_runs (stage, trigger, status, started_at, finished_at, counts) \
         SELECT CASE i % 3 WHEN 0 THEN 'daily-capture' WHEN 1 THEN 'label-studio-sync' ELSE 'export' END, \
           'cron', 'succeeded', strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', i * 20)), \
           strftime('%Y-%m-%dT%H:%M:%fZ', 'now', printf('-%d minutes', i * 20 - 1)), '{\"pushed\":10,\"pulled\":4}' \
         FROM seq",
    )
    .await;
    exec(
        store,
        "INSERT INTO label_studio_tasks (sample_id, project_id, task_id, pushed_at, sync_state) \
         SELECT id, 1, id, updated_at, 'pushed' FROM training_samples WHERE review_status = 'needs-review' LIMIT 10000",
    )
    .await;
    for (version, status, traffic) in [
        ("router-v1.0.0", "production", 100),
        ("router-v1.1.0", "testing", 0),
    ] {
        exec(
            store,
            &format!(
                "INSERT INTO model_versions (version, status, traffic_percentage, test_accuracy, created_at, updated_at) \
                 VALUES ('{version}', '{status}', {traffic}, 0.91, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))"
            ),
        )
        .await;
    }
    // No ANALYZE: an embedded database in the field has no statistics either.
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

fn max(samples: &[Duration]) -> Duration {
    samples.iter().copied().max().unwrap_or_default()
}

fn ms(d: Duration) -> String {
    format!("{:.3} ms", d.as_secs_f64() * 1000.0)
}

fn rss_mib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|kib| kib.parse::<u64>().ok())
            .map_or(0, |kib| kib / 1024)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --all-targets` runs this
    // binary without it, unoptimised: then a small smoke run keeps the
    // bench from rotting without measuring anything that matters.
    let measuring = std::env::args().any(|a| a == "--bench");
    let (conversations, samples) = if measuring {
        (
            env_or("CONVERSATIONS", 1_000_000),
            env_or("SAMPLES", 100_000),
        )
    } else {
        println!("console bench smoke run; measure with `cargo bench --bench console`");
        (10_000, 1_000)
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let dir = tempfile::tempdir().expect("tempdir");
    let database_url = std::env::var("BENCH_DATABASE_URL").ok();
    let config = Config {
        data_dir: dir.path().to_path_buf(),
        database_url: database_url.clone().map(flywheel::config::DatabaseUrl::new),
        ..Config::default()
    };
    runtime.block_on(async {
        let store = flywheel::storage::open(&config).await.expect("open");
        let started = Instant::now();
        let seeded = match store.backend() {
            Backend::Sqlite(_) => false,
            Backend::Postgres(pool) => {
                sqlx::query_scalar::<_, bool>("SELECT EXISTS (SELECT 1 FROM conversation_logs)")
                    .fetch_one(pool)
                    .await
                    .expect("looking for rows")
            }
        };
        if seeded {
            // Seeded before (by psql, or a previous run): measure it as it is.
            println!("measuring the rows already in BENCH_DATABASE_URL");
        } else {
            let backend = if database_url.is_some() {
                seed_postgres(&store, conversations, samples).await;
                "PostgreSQL"
            } else {
                seed_sqlite(&store, conversations, samples).await;
                "SQLite"
            };
            println!(
                "seeded {conversations} conversations, {samples} samples on {backend} in {:.1} s",
                started.elapsed().as_secs_f64()
            );
        }

        let mut loader = Loader::new(store.clone(), config.clone());
        let mut app = App::new(Utc::now(), 10);
        println!("\npane data refresh (bar ≤ 20 ms); first load fills the incremental caches");
        println!(
            "{:<14} {:>12} {:>14} {:>12}",
            "pane", "first load", "refresh p50", "refresh max"
        );
        for pane in Pane::ALL {
            let t = Instant::now();
            let data = loader.load(pane, Utc::now()).await.expect("load");
            let first = t.elapsed();
            app.apply(UiEvent::Loaded {
                data,
                at: Utc::now(),
            });
            let mut times = Vec::new();
            for _ in 0..30 {
                let t = Instant::now();
                let data = loader.load(pane, Utc::now()).await.expect("load");
                times.push(t.elapsed());
                app.apply(UiEvent::Loaded {
                    data,
                    at: Utc::now(),
                });
            }
            println!(
                "{:<14} {:>12} {:>14} {:>12}",
                pane.title(),
                ms(first),
                ms(median(times.clone())),
                ms(max(&times))
            );
        }

        println!("\nrender (bar ≤ 2 ms), p50 / max over 200 frames");
        println!("{:<14} {:>22} {:>22}", "pane", "80×24", "200×60");
        let theme = Theme { color: true };
        for pane in Pane::ALL {
            app.pane = pane;
            let mut cells = Vec::new();
            for (w, h) in [(80, 24), (200, 60)] {
                let mut terminal = Terminal::new(TestBackend::new(w, h)).expect("terminal");
                let mut times = Vec::new();
                for _ in 0..200 {
                    let t = Instant::now();
                    terminal
                        .draw(|frame| ui::draw(frame, &app, &theme))
                        .expect("draw");
                    times.push(t.elapsed());
                }
                cells.push(format!(
                    "{} / {}",
                    ms(median(times.clone())),
                    ms(max(&times))
                ));
            }
            println!("{:<14} {:>22} {:>22}", pane.title(), cells[0], cells[1]);
        }
        let (rss, peak) = rss_mib();
        println!("\nmemory: RSS {rss} MiB now, peak {peak} MiB (bar ≤ 100 MB; includes seeding)");
        store.close().await;
    });
}

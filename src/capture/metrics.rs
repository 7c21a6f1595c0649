//! `GET /metrics` in the Prometheus text format, hand-rolled: a dozen
//! counters and one histogram family do not justify a metrics crate and its
//! global registry, and keeping them in one struct lets tests read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::monitor::exposition::{escape, header};

/// Upper bounds (seconds) of the latency histogram buckets.
const LATENCY_BUCKETS: [f64; 12] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
];

#[derive(Default)]
struct Histogram {
    buckets: [u64; LATENCY_BUCKETS.len()],
    count: u64,
    sum: f64,
}

impl Histogram {
    fn observe(&mut self, seconds: f64) {
        for (bound, n) in LATENCY_BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *n += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
    }
}

#[derive(Default)]
struct Labelled {
    /// (route, status) → requests.
    requests: BTreeMap<(&'static str, u16), u64>,
    latency: BTreeMap<&'static str, Histogram>,
    /// model version → (classified, fallbacks).
    classified: BTreeMap<String, (u64, u64)>,
}

/// Everything `serve` counts.
#[derive(Default)]
pub struct Metrics {
    labelled: Mutex<Labelled>,
    captured_rows: AtomicU64,
    commits: AtomicU64,
    commit_micros: AtomicU64,
    db_errors: AtomicU64,
    queue_full: AtomicU64,
}

/// Gauges read at scrape time.
pub struct Gauges {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub database_up: bool,
    pub production_version: Option<String>,
    /// The loop's families ([`crate::monitor::loop_metrics`]), appended
    /// as they are (`None` when the database could not be read in time:
    /// then they are missing rather than false zeros).
    pub loop_text: Option<std::sync::Arc<str>>,
}

impl Metrics {
    pub fn record_request(&self, route: &'static str, status: u16, elapsed: Duration) {
        let mut l = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        *l.requests.entry((route, status)).or_default() += 1;
        l.latency
            .entry(route)
            .or_default()
            .observe(elapsed.as_secs_f64());
    }

    pub fn record_classification(&self, version: &str, fallback: bool) {
        let mut l = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        // Look up before inserting: the version string is allocated once, not per request.
        if !l.classified.contains_key(version) {
            l.classified.insert(version.to_string(), (0, 0));
        }
        if let Some(entry) = l.classified.get_mut(version) {
            entry.0 += 1;
            entry.1 += u64::from(fallback);
        }
    }

    /// A commit that stored `rows` new rows.
    pub fn record_commit(&self, rows: usize, elapsed: Duration) {
        self.captured_rows.fetch_add(rows as u64, Ordering::Relaxed);
        self.commits.fetch_add(1, Ordering::Relaxed);
        self.commit_micros
            .fetch_add(elapsed.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn record_db_error(&self) {
        self.db_errors.fetch_add(1, Ordering::Relaxed);
    }

    pub fn record_queue_full(&self) {
        self.queue_full.fetch_add(1, Ordering::Relaxed);
    }

    pub fn captured_rows(&self) -> u64 {
        self.captured_rows.load(Ordering::Relaxed)
    }

    /// The exposition text.
    pub fn render(&self, gauges: &Gauges) -> String {
        let mut out = String::with_capacity(4096);
        let l = self.labelled.lock().unwrap_or_else(|e| e.into_inner());
        header(
            &mut out,
            "flywheel_http_requests_total",
            "counter",
            "HTTP requests by route and status.",
        );
        for ((route, status), n) in &l.requests {
            let _ = writeln!(
                out,
                "flywheel_http_requests_total{{route=\"{route}\",status=\"{status}\"}} {n}"
            );
        }
        header(
            &mut out,
            "flywheel_http_request_duration_seconds",
            "histogram",
            "Request latency by route.",
        );
        for (route, h) in &l.latency {
            for (bound, n) in LATENCY_BUCKETS.iter().zip(h.buckets) {
                let _ = writeln!(
                    out,
                    "flywheel_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {n}"
                );
            }
            let _ = writeln!(
                out,
                "flywheel_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "flywheel_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "flywheel_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        header(
            &mut out,
            "flywheel_classifications_total",
            "counter",
            "Classify requests answered, by model version.",
        );
        for (version, (n, _)) in &l.classified {
            let _ = writeln!(
                out,
                "flywheel_classifications_total{{model_version=\"{}\"}} {n}",
                escape(version)
            );
        }
        header(
            &mut out,
            "flywheel_fallbacks_total",
            "counter",
            "Classifications below the fallback threshold, by model version.",
        );
        for (version, (_, n)) in &l.classified {
            let _ = writeln!(
                out,
                "flywheel_fallbacks_total{{model_version=\"{}\"}} {n}",
                escape(version)
            );
        }
        drop(l);
        let simple = [
            (
                "flywheel_captured_rows_total",
                "counter",
                "Conversation rows committed.",
                self.captured_rows.load(Ordering::Relaxed) as f64,
            ),
            (
                "flywheel_write_commits_total",
                "counter",
                "Group-commit transactions.",
                self.commits.load(Ordering::Relaxed) as f64,
            ),
            (
                "flywheel_write_commit_seconds_total",
                "counter",
                "Time spent committing.",
                self.commit_micros.load(Ordering::Relaxed) as f64 / 1e6,
            ),
            (
                "flywheel_database_errors_total",
                "counter",
                "Failed commits.",
                self.db_errors.load(Ordering::Relaxed) as f64,
            ),
            (
                "flywheel_write_queue_full_total",
                "counter",
                "Requests refused with 503 because the write queue was full.",
                self.queue_full.load(Ordering::Relaxed) as f64,
            ),
            (
                "flywheel_write_queue_depth",
                "gauge",
                "Requests waiting for the writer.",
                gauges.queue_depth as f64,
            ),
            (
                "flywheel_write_queue_capacity",
                "gauge",
                "Size of the write queue.",
                gauges.queue_capacity as f64,
            ),
            (
                "flywheel_database_up",
                "gauge",
                "1 when the database accepts writes.",
                f64::from(u8::from(gauges.database_up)),
            ),
        ];
        for (name, kind, help, value) in simple {
            header(&mut out, name, kind, help);
            let _ = writeln!(out, "{name} {value}");
        }
        header(
            &mut out,
            "flywheel_model_info",
            "gauge",
            "The production model serving classify (absent: none).",
        );
        if let Some(version) = &gauges.production_version {
            let _ = writeln!(
                out,
                "flywheel_model_info{{role=\"production\",model_version=\"{}\"}} 1",
                escape(version)
            );
        }
        if let Some(text) = &gauges.loop_text {
            out.push_str(text);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_buckets_are_cumulative_and_text_is_well_formed() {
        let m = Metrics::default();
        m.record_request("/nlu/classify", 200, Duration::from_micros(700));
        m.record_request("/nlu/classify", 200, Duration::from_millis(30));
        m.record_classification("rules-v1", true);
        let text = m.render(&Gauges {
            queue_depth: 3,
            queue_capacity: 10,
            database_up: true,
            production_version: Some("rules-v1".into()),
            loop_text: Some("# TYPE flywheel_gold_samples gauge\nflywheel_gold_samples 4\n".into()),
        });
        assert!(
            text.ends_with("flywheel_gold_samples 4\n"),
            "the loop's families follow"
        );
        assert!(
            text.contains("flywheel_http_requests_total{route=\"/nlu/classify\",status=\"200\"} 2")
        );
        assert!(text.contains("le=\"0.0005\"} 0"));
        assert!(text.contains("le=\"0.001\"} 1"));
        assert!(text.contains("le=\"0.05\"} 2"));
        assert!(text.contains("flywheel_fallbacks_total{model_version=\"rules-v1\"} 1"));
        assert!(text.contains("flywheel_write_queue_depth 3"));
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            assert!(
                line.rsplit(' ').next().unwrap().parse::<f64>().is_ok(),
                "{line}"
            );
        }
    }
}

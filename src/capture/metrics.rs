//! `GET /metrics` in the Prometheus text format, hand-rolled: a dozen
//! counters and one histogram family do not justify a metrics crate and its
//! global registry, and keeping them in one struct lets tests read them.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use crate::audit::VersionEstimate;
use crate::domain::WaitingPlace;
use crate::storage::waiting::Waiting;

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

/// One audit figure of a version, when measured.
type AuditFigure = fn(&VersionEstimate) -> Option<f64>;

/// Gauges read at scrape time.
pub struct Gauges {
    pub queue_depth: usize,
    pub queue_capacity: usize,
    pub database_up: bool,
    pub production_version: Option<String>,
    /// What audits measured per version (empty when the database could
    /// not be read in time).
    pub audits: Vec<VersionEstimate>,
    /// What waits for review (`None` when the database could not be read
    /// in time: the family is then empty rather than a false zero).
    pub waiting: Option<Waiting>,
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
        let audited: [(&str, &str, AuditFigure); 5] = [
            (
                "flywheel_production_accuracy",
                "Served answers a human agreed with, over audited conversations of the version.",
                |e| e.production_accuracy.map(|a| a.value),
            ),
            (
                "flywheel_production_accuracy_lower",
                "Lower bound of production accuracy's 95 % interval.",
                |e| e.production_accuracy.map(|a| a.low),
            ),
            (
                "flywheel_production_accuracy_audits",
                "Audited conversations with a human label (n of production accuracy).",
                |e| e.production_accuracy.map(|a| a.n as f64),
            ),
            (
                "flywheel_auto_approval_precision",
                "Auto-approved labels a human agreed with, over audited conversations of the version.",
                |e| e.auto_approval_precision.map(|p| p.value),
            ),
            (
                "flywheel_audits_awaiting_label",
                "Audited conversations of the version still waiting for a human label.",
                |e| Some(e.awaiting_label as f64),
            ),
        ];
        header(
            &mut out,
            "flywheel_review_waiting",
            "gauge",
            "Samples waiting for a human label (the review queue, audits of approved samples, suspect labels), by where they wait (here or label-studio) and priority; as status and stats queue count them.",
        );
        if let Some(waiting) = &gauges.waiting {
            for p in waiting.by_priority() {
                for (place, n) in [
                    (WaitingPlace::Here, p.here),
                    (WaitingPlace::LabelStudio, p.label_studio),
                ] {
                    let _ = writeln!(
                        out,
                        "flywheel_review_waiting{{where=\"{place}\",priority=\"{}\"}} {n}",
                        p.priority
                    );
                }
            }
        }
        for (name, help, value) in audited {
            header(&mut out, name, "gauge", help);
            for estimate in &gauges.audits {
                if let Some(v) = value(estimate) {
                    let _ = writeln!(
                        out,
                        "{name}{{model_version=\"{}\"}} {v}",
                        escape(&estimate.version)
                    );
                }
            }
        }
        out
    }
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Label values are ours or an operator's version string; escape anyway.
fn escape(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
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
            audits: vec![crate::audit::VersionEstimate::from(
                &crate::audit::AuditTally {
                    version: Some("rules-v1".into()),
                    drawn: 110,
                    labelled: 100,
                    served_right: 91,
                    auto_approved: 50,
                    auto_approved_right: 49,
                    awaiting: 10,
                },
            )],
            waiting: Some(Waiting {
                buckets: vec![crate::storage::waiting::WaitingBucket {
                    place: WaitingPlace::LabelStudio,
                    priority: 2,
                    kind: crate::domain::WaitingKind::Review,
                    count: 1200,
                }],
                urgent_priority: 2,
            }),
        });
        assert!(
            text.contains("flywheel_review_waiting{where=\"label-studio\",priority=\"2\"} 1200")
        );
        assert!(text.contains("flywheel_review_waiting{where=\"here\",priority=\"2\"} 0"));
        assert!(text.contains("flywheel_production_accuracy{model_version=\"rules-v1\"} 0.91"));
        assert!(
            text.contains("flywheel_production_accuracy_audits{model_version=\"rules-v1\"} 100")
        );
        assert!(text.contains("flywheel_auto_approval_precision{model_version=\"rules-v1\"} 0.98"));
        assert!(text.contains("flywheel_audits_awaiting_label{model_version=\"rules-v1\"} 10"));
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

//! The allowed range of every numeric key, checked once all layers are
//! merged and before any command does anything: a threshold out of range
//! (`auto_approve_confidence = -3` auto-approves a fallback of confidence
//! 0) is refused naming the key, the value, the range and the layer that
//! set it.

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use super::layers::key_for_variable;
use super::{Config, Origin};

/// A key's value, as the check sees it.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd)]
enum Number {
    Float(f64),
    Int(i128),
}

impl fmt::Display for Number {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Number::Float(x) => write!(f, "{x}"),
            Number::Int(n) => write!(f, "{n}"),
        }
    }
}

/// Inclusive bounds; `None` above: no upper bound.
#[derive(Debug, Clone, Copy)]
struct Range {
    min: Number,
    max: Option<Number>,
}

impl Range {
    const fn float(min: f64, max: f64) -> Self {
        Self {
            min: Number::Float(min),
            max: Some(Number::Float(max)),
        }
    }

    const fn int(min: i128, max: i128) -> Self {
        Self {
            min: Number::Int(min),
            max: Some(Number::Int(max)),
        }
    }

    const fn at_least(min: i128) -> Self {
        Self {
            min: Number::Int(min),
            max: None,
        }
    }

    /// NaN is in no range: every comparison with it is false.
    fn contains(&self, value: Number) -> bool {
        value >= self.min && self.max.is_none_or(|max| value <= max)
    }
}

impl fmt::Display for Range {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.max {
            Some(max) => write!(f, "{} to {max}", self.min),
            None => write!(f, "at least {}", self.min),
        }
    }
}

/// A numeric key: its dotted name, how to read it, what it may be.
struct Rule {
    key: &'static str,
    value: fn(&Config) -> Option<Number>,
    range: Range,
}

/// Every numeric key of [`Config`] (`training.seed` takes any `u64`).
const RULES: &[Rule] = &[
    Rule {
        key: "auto_filter.auto_approve_confidence",
        value: |c| Some(Number::Float(c.auto_filter.auto_approve_confidence)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "auto_filter.review_confidence",
        value: |c| Some(Number::Float(c.auto_filter.review_confidence)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "auto_filter.medium_priority",
        value: |c| Some(Number::Int(c.auto_filter.medium_priority.into())),
        range: Range::int(0, 100),
    },
    Rule {
        key: "auto_filter.high_priority",
        value: |c| Some(Number::Int(c.auto_filter.high_priority.into())),
        range: Range::int(0, 100),
    },
    Rule {
        key: "auto_filter.ready_for_training",
        value: |c| Some(Number::Int(c.auto_filter.ready_for_training.into())),
        range: Range::at_least(1),
    },
    Rule {
        key: "label_studio.project_id",
        value: |c| c.label_studio.project_id.map(|id| Number::Int(id.into())),
        range: Range::at_least(1),
    },
    Rule {
        key: "label_studio.batch_size",
        value: |c| Some(Number::Int(c.label_studio.batch_size as i128)),
        range: Range::int(1, 10_000),
    },
    Rule {
        key: "label_studio.timeout_secs",
        value: |c| Some(Number::Int(c.label_studio.timeout_secs.into())),
        range: Range::int(1, 3600),
    },
    Rule {
        key: "label_studio.pull_overlap_secs",
        value: |c| Some(Number::Int(c.label_studio.pull_overlap_secs.into())),
        range: Range::int(0, 86_400),
    },
    // 0 would time every request out; a huge value overflows hyper's timer.
    Rule {
        key: "serve.header_read_timeout_secs",
        value: |c| Some(Number::Int(c.serve.header_read_timeout_secs.into())),
        range: Range::int(1, 3600),
    },
    Rule {
        key: "serve.body_read_timeout_secs",
        value: |c| Some(Number::Int(c.serve.body_read_timeout_secs.into())),
        range: Range::int(1, 3600),
    },
    Rule {
        key: "serve.drain_timeout_secs",
        value: |c| Some(Number::Int(c.serve.drain_timeout_secs.into())),
        range: Range::int(0, 3600),
    },
    Rule {
        key: "training.min_samples",
        value: |c| Some(Number::Int(c.training.min_samples.into())),
        range: Range::at_least(0),
    },
    Rule {
        key: "auto_filter.min_precision",
        value: |c| Some(Number::Float(c.auto_filter.min_precision)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "auto_filter.threshold_evidence",
        value: |c| Some(Number::Int(c.auto_filter.threshold_evidence.into())),
        range: Range::int(0, 100_000),
    },
    Rule {
        key: "health.min_production_accuracy",
        value: |c| Some(Number::Float(c.health.min_production_accuracy)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "audit.percent",
        value: |c| Some(Number::Int(c.audit.percent.into())),
        range: Range::int(0, 100),
    },
    Rule {
        // zero would never audit the uncertain traffic
        key: "audit.needs_review_multiplier",
        value: |c| Some(Number::Int(c.audit.needs_review_multiplier.into())),
        range: Range::int(1, 20),
    },
    Rule {
        key: "audit.share",
        value: |c| Some(Number::Int(c.audit.share.into())),
        range: Range::int(0, 100),
    },
    Rule {
        key: "suspects.share",
        value: |c| Some(Number::Int(c.suspects.share.into())),
        range: Range::int(0, 100),
    },
    Rule {
        // a share of accuracy a candidate may lose and still be "not worse"
        key: "training.gate_tolerance",
        value: |c| Some(Number::Float(c.training.gate_tolerance)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "training.oos_tolerance",
        value: |c| Some(Number::Float(c.training.oos_tolerance)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        // zero would let a gate judge on nothing
        key: "training.min_gold_test",
        value: |c| Some(Number::Int(c.training.min_gold_test.into())),
        range: Range::at_least(1),
    },
    Rule {
        // more than half would test on more than it trains on
        key: "training.test_split_percent",
        value: |c| Some(Number::Int(c.training.test_split_percent.into())),
        range: Range::int(1, 50),
    },
    Rule {
        key: "training.epochs",
        value: |c| c.training.epochs.map(|n| Number::Int(n.into())),
        range: Range::int(1, 1000),
    },
    Rule {
        // as `models promote --traffic`: 100 % is production, not a canary
        key: "training.canary_traffic",
        value: |c| Some(Number::Int(c.training.canary_traffic.into())),
        range: Range::int(1, 99),
    },
    Rule {
        key: "health.min_test_accuracy",
        value: |c| Some(Number::Float(c.health.min_test_accuracy)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "health.max_fallback_rate",
        value: |c| Some(Number::Float(c.health.max_fallback_rate)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        // percentages, unlike the rates above
        key: "health.min_auto_approval_rate",
        value: |c| Some(Number::Float(c.health.min_auto_approval_rate)),
        range: Range::float(0.0, 100.0),
    },
    Rule {
        key: "health.max_auto_approval_rate",
        value: |c| Some(Number::Float(c.health.max_auto_approval_rate)),
        range: Range::float(0.0, 100.0),
    },
    Rule {
        // a year; the quiet-period check turns it into a signed duration
        key: "health.quiet_period_minutes",
        value: |c| Some(Number::Int(c.health.quiet_period_minutes.into())),
        range: Range::int(1, 525_600),
    },
    Rule {
        // at least a second: each delivery gets one try
        key: "alerts.timeout_secs",
        value: |c| Some(Number::Int(c.alerts.timeout_secs.into())),
        range: Range::int(1, 300),
    },
    Rule {
        // a minute: nothing a router answers in takes longer
        key: "canary.slow_ms",
        value: |c| Some(Number::Float(c.canary.slow_ms)),
        range: Range::float(0.0, 60_000.0),
    },
    Rule {
        key: "canary.max_error_rate",
        value: |c| Some(Number::Float(c.canary.max_error_rate)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        key: "health.capture_drop_ratio",
        value: |c| Some(Number::Float(c.health.capture_drop_ratio)),
        range: Range::float(0.0, 1.0),
    },
    Rule {
        // zero weeks would be no baseline; a year of them is plenty
        key: "health.capture_baseline_weeks",
        value: |c| Some(Number::Int(c.health.capture_baseline_weeks.into())),
        range: Range::int(1, 52),
    },
    Rule {
        key: "health.max_review_age_days",
        value: |c| Some(Number::Int(c.health.max_review_age_days.into())),
        range: Range::int(1, 3650),
    },
    Rule {
        key: "health.min_free_disk_mb",
        value: |c| Some(Number::Int(c.health.min_free_disk_mb.into())),
        range: Range::at_least(0),
    },
    Rule {
        // a year
        key: "canary.min_step_minutes",
        value: |c| Some(Number::Int(c.canary.min_step_minutes.into())),
        range: Range::int(0, 525_600),
    },
    Rule {
        key: "canary.min_requests",
        value: |c| Some(Number::Int(c.canary.min_requests.into())),
        range: Range::int(1, 100_000_000),
    },
    Rule {
        key: "canary.min_audits",
        value: |c| Some(Number::Int(c.canary.min_audits.into())),
        range: Range::int(0, 1_000_000),
    },
    Rule {
        // 0 would never roll back, 0.5 would on a coin toss
        key: "canary.alpha",
        value: |c| Some(Number::Float(c.canary.alpha)),
        range: Range::float(0.0001, 0.2),
    },
    Rule {
        // fewer would eat times and quantities; no phone number has more than 15
        key: "privacy.min_digits",
        value: |c| Some(Number::Int(c.privacy.min_digits as i128)),
        range: Range::int(3, 15),
    },
];

/// Pairs of keys where the first must not be above the second.
const ORDERS: &[(&str, &str, &str)] = &[
    (
        "auto_filter.review_confidence",
        "auto_filter.auto_approve_confidence",
        "nothing could ever need review at medium priority",
    ),
    (
        "auto_filter.high_priority",
        "auto_filter.medium_priority",
        "a lower number is more urgent",
    ),
    (
        "health.min_auto_approval_rate",
        "health.max_auto_approval_rate",
        "every rate would warn",
    ),
];

/// The allowed range of a numeric key, for type errors ("0 to 1").
pub(super) fn allowed_range(key: &str) -> Option<String> {
    RULES
        .iter()
        .find(|r| r.key == key)
        .map(|r| r.range.to_string())
}

/// Every problem of `config`, each naming its layer; empty when valid.
pub(super) fn problems(config: &Config, origins: &BTreeMap<String, Origin>) -> Vec<String> {
    let layer = |key: &str| describe_layer(key, origins.get(key));
    let mut problems = Vec::new();
    for rule in RULES {
        if let Some(value) = (rule.value)(config)
            && !rule.range.contains(value)
        {
            problems.push(format!(
                "{}: `{}` = {value} is out of range (allowed: {})",
                layer(rule.key),
                rule.key,
                rule.range
            ));
        }
    }
    let value_of = |key: &str| {
        RULES
            .iter()
            .find(|r| r.key == key)
            .and_then(|r| (r.value)(config))
    };
    for (lower, upper, why) in ORDERS {
        let (Some(low), Some(high)) = (value_of(lower), value_of(upper)) else {
            continue;
        };
        if low > high {
            // Lead with the layer an operator set (the default did not move).
            let (first, second) = if origins.contains_key(*lower) {
                (lower, upper)
            } else {
                (upper, lower)
            };
            problems.push(format!(
                "{}: `{lower}` = {low} must not be above `{upper}` = {high} ({why}); `{second}` is from {}",
                layer(first),
                layer(second)
            ));
        }
    }
    if let Some(problem) = steps_problem(&config.canary.steps) {
        problems.push(format!(
            "{}: `canary.steps` = {:?} {problem}",
            layer("canary.steps"),
            config.canary.steps
        ));
    }
    problems
}

/// What is wrong with a rollout's steps: each a traffic percentage 1–100,
/// strictly increasing, the last 100 (production).
fn steps_problem(steps: &[u32]) -> Option<&'static str> {
    if steps.is_empty() {
        Some("is empty; give the traffic steps ending at 100, e.g. [10, 25, 50, 100]")
    } else if steps.iter().any(|s| !(1..=100).contains(s)) {
        Some("has a step outside 1 to 100 (percent of traffic)")
    } else if steps.windows(2).any(|w| w[0] >= w[1]) {
        Some("must be strictly increasing")
    } else if steps.last() != Some(&100) {
        Some("must end at 100 (the step that promotes to production)")
    } else {
        None
    }
}

/// "config file F, line L", ".env, line L", "environment variable X",
/// "flag --x" or "the default".
fn describe_layer(key: &str, origin: Option<&Origin>) -> String {
    let line = match origin {
        None => return "the default".into(),
        Some(Origin::File(path)) => line_in_file(path, |text| toml_line_of(text, key)),
        Some(Origin::DotEnv(path)) => line_in_file(path, |text| dotenv_line_of(text, key)),
        Some(Origin::Environment(_) | Origin::Flag(_)) => None,
    };
    let origin = origin.expect("matched above");
    match line {
        Some(line) => format!("{origin}, line {line}"),
        None => origin.to_string(),
    }
}

fn line_in_file(path: &Path, find: impl Fn(&str) -> Option<usize>) -> Option<usize> {
    find(&std::fs::read_to_string(path).ok()?)
}

/// The 1-based line of a TOML file that sets dotted `key`, however it is
/// written (`[table]` + `key = …`, a dotted assignment, an inline table):
/// parsed with spans rather than scanned, so a multi-line string holding
/// `[` or `=` cannot pass for a table header or an assignment.
fn toml_line_of(text: &str, key: &str) -> Option<usize> {
    let document = toml_edit::ImDocument::parse(text).ok()?;
    let mut table: &dyn toml_edit::TableLike = document.as_table();
    let mut parts = key.split('.').peekable();
    let mut span = None;
    while let Some(part) = parts.next() {
        let (found, item) = table.get_key_value(part)?;
        span = found.span().or(span);
        match item.as_table_like() {
            Some(inner) => table = inner,
            // A value that is not a table ends the path: it sets `key`
            // only if nothing is left of it.
            None if parts.peek().is_none() => break,
            None => return None,
        }
    }
    let start = span?.start;
    Some(text[..start].matches('\n').count() + 1)
}

/// The 1-based line of a `.env` file whose variable sets `key` (the last
/// one: a later line wins).
fn dotenv_line_of(text: &str, key: &str) -> Option<usize> {
    text.lines()
        .enumerate()
        .filter_map(|(index, line)| {
            let line = line.trim();
            let line = line.strip_prefix("export ").unwrap_or(line);
            let (name, _) = line.split_once('=')?;
            (key_for_variable(name.trim()).as_deref() == Some(key)).then_some(index + 1)
        })
        .last()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_defaults_are_valid() {
        assert_eq!(
            problems(&Config::default(), &BTreeMap::new()),
            Vec::<String>::new()
        );
    }

    #[test]
    fn canary_steps_must_rise_to_100() {
        assert_eq!(steps_problem(&[10, 25, 50, 100]), None);
        assert_eq!(steps_problem(&[100]), None);
        assert!(steps_problem(&[]).unwrap().contains("empty"));
        assert!(steps_problem(&[0, 100]).unwrap().contains("outside"));
        assert!(steps_problem(&[10, 150]).unwrap().contains("outside"));
        assert!(
            steps_problem(&[25, 10, 100])
                .unwrap()
                .contains("increasing")
        );
        assert!(
            steps_problem(&[10, 10, 100])
                .unwrap()
                .contains("increasing")
        );
        assert!(steps_problem(&[10, 50]).unwrap().contains("end at 100"));
        let mut config = Config::default();
        config.canary.steps = vec![10, 50];
        let found = problems(&config, &BTreeMap::new());
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(found[0].starts_with("the default: `canary.steps` = [10, 50] must end at 100"));
    }

    #[test]
    fn nan_and_bounds() {
        let range = Range::float(0.0, 1.0);
        assert!(range.contains(Number::Float(0.0)) && range.contains(Number::Float(1.0)));
        assert!(!range.contains(Number::Float(f64::NAN)));
        assert!(!range.contains(Number::Float(1.5)));
        assert!(Range::at_least(1).contains(Number::Int(i64::MAX.into())));
        assert_eq!(Range::at_least(1).to_string(), "at least 1");
        assert_eq!(Range::int(1, 99).to_string(), "1 to 99");
    }

    #[test]
    fn finds_the_line_of_a_key_however_it_is_written() {
        let text = "a = 1\n[auto_filter]\nreview_confidence = 0.5\n\n[ training ]\n\"seed\" = 3\n";
        assert_eq!(toml_line_of(text, "auto_filter.review_confidence"), Some(3));
        assert_eq!(toml_line_of(text, "training.seed"), Some(6));
        assert_eq!(
            toml_line_of("health.max_fallback_rate = 2\n", "health.max_fallback_rate"),
            Some(1)
        );
        assert_eq!(
            toml_line_of(
                "x = 1\nhealth = { max_fallback_rate = 2 }\n",
                "health.max_fallback_rate"
            ),
            Some(2)
        );
        assert_eq!(toml_line_of(text, "health.max_fallback_rate"), None);
        let tricky =
            "[label_studio]\napi_key = \"\"\"\n[x]\nproject_id = 1\n\"\"\"\nproject_id = -1\n";
        assert_eq!(toml_line_of(tricky, "label_studio.project_id"), Some(6));
        let env = "# x\nexport FLYWHEEL_TRAINING__SEED=1\nLABEL_STUDIO_PROJECT_ID=0\n";
        assert_eq!(dotenv_line_of(env, "training.seed"), Some(2));
        assert_eq!(dotenv_line_of(env, "label_studio.project_id"), Some(3));
    }
}

//! Capture-gap analysis: where capture stopped (no conversation for longer
//! than the quiet period) and which hours were far below the same hour's
//! usual volume. Pure functions over the per-minute and per-hour counts the
//! storage layer returns, so they are tested without a database.

use chrono::{DateTime, Duration, DurationRound, Timelike, Utc};
use serde::Serialize;

use crate::config::HealthConfig;
use crate::error::Result;
use crate::storage::capture_stats::{Bucket, BucketCount};
use crate::storage::{Store, Timestamp};

/// An interval with no capture at all.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Gap {
    /// First silent minute.
    pub start: Timestamp,
    /// The next capture, or now when `ongoing`.
    pub end: Timestamp,
    pub minutes: i64,
    pub ongoing: bool,
}

/// A complete hour far below the usual volume of that hour of day.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LowHour {
    pub hour: Timestamp,
    pub captured: i64,
    /// Median of the same hour of day on the window's other days.
    pub usual: f64,
}

/// Thresholds of the analysis.
#[derive(Debug, Clone, Copy)]
pub struct GapRules {
    /// Silence at least this long is a gap.
    pub quiet_period: Duration,
    /// An hour below `usual * low_ratio` is low…
    pub low_ratio: f64,
    /// …when its usual volume is at least this (quiet hours are noise).
    pub min_usual: f64,
}

/// Below this usual volume an hour is too quiet to call low: a handful of
/// conversations more or less is noise, not an outage.
pub const MIN_USUAL_PER_HOUR: f64 = 10.0;

impl GapRules {
    /// The rules of `health`: its quiet period and its capture-drop ratio,
    /// the one definition of "far below usual" (status warns on the last
    /// hour with the same ratio).
    pub fn from_health(health: &HealthConfig) -> Self {
        Self {
            quiet_period: Duration::minutes(health.quiet_period_minutes.max(1) as i64),
            low_ratio: health.capture_drop_ratio,
            min_usual: MIN_USUAL_PER_HOUR,
        }
    }
}

/// The last hour's capture far below the same hour of earlier weeks.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct CaptureDrop {
    pub captured: i64,
    /// Median of the same hour in the earlier weeks.
    pub usual: f64,
}

/// Whether `captured` in the last hour is below `ratio` times the median of
/// the same hour in earlier weeks (weeks before capture began left out by
/// the caller). Needs two earlier weeks: one alone may have been a holiday.
pub fn capture_drop(
    captured: i64,
    same_hour_earlier_weeks: &[i64],
    ratio: f64,
) -> Option<CaptureDrop> {
    if same_hour_earlier_weeks.len() < 2 {
        return None;
    }
    let usual = median(same_hour_earlier_weeks);
    (usual >= MIN_USUAL_PER_HOUR && (captured as f64) < usual * ratio)
        .then_some(CaptureDrop { captured, usual })
}

fn median(values: &[i64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    if sorted.len().is_multiple_of(2) {
        (sorted[mid - 1] + sorted[mid]) as f64 / 2.0
    } else {
        sorted[mid] as f64
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct GapReport {
    pub since: Timestamp,
    pub until: Timestamp,
    pub quiet_period_minutes: i64,
    pub captured: i64,
    pub last_capture_at: Option<Timestamp>,
    pub seconds_since_last_capture: Option<i64>,
    pub gaps: Vec<Gap>,
    pub low_hours: Vec<LowHour>,
    pub per_hour: Vec<BucketCount>,
}

/// Read the counts since `since` and analyse them.
pub async fn capture_gaps(store: &Store, since: Timestamp, rules: GapRules) -> Result<GapReport> {
    let now = Utc::now();
    let minutes = store.capture_counts(since, Bucket::Minute).await?;
    let hours = store.capture_counts(since, Bucket::Hour).await?;
    let last = store.last_capture_at().await?;
    Ok(analyse(since, now, last, &minutes, hours, rules))
}

pub fn analyse(
    since: Timestamp,
    now: DateTime<Utc>,
    last_capture_at: Option<Timestamp>,
    minutes: &[BucketCount],
    per_hour: Vec<BucketCount>,
    rules: GapRules,
) -> GapReport {
    let mut gaps = Vec::new();
    let one = Duration::minutes(1);
    for pair in minutes.windows(2) {
        let silent_from = pair[0].start.0 + one;
        let next = pair[1].start.0;
        if next - silent_from >= rules.quiet_period {
            gaps.push(Gap {
                start: Timestamp(silent_from),
                end: Timestamp(next),
                minutes: (next - silent_from).num_minutes(),
                ongoing: false,
            });
        }
    }
    if let Some(last) = last_capture_at
        && now - last.0 >= rules.quiet_period
    {
        let start = last.0.max(since.0);
        gaps.push(Gap {
            start: Timestamp(start),
            end: Timestamp(now),
            minutes: (now - start).num_minutes(),
            ongoing: true,
        });
    }
    GapReport {
        since,
        until: Timestamp(now),
        quiet_period_minutes: rules.quiet_period.num_minutes(),
        captured: per_hour.iter().map(|b| b.count).sum(),
        last_capture_at,
        seconds_since_last_capture: last_capture_at.map(|t| (now - t.0).num_seconds().max(0)),
        gaps,
        low_hours: low_hours(since.0, now, &per_hour, rules),
        per_hour,
    }
}

/// Complete hours of the window compared with the median of the same hour
/// of day on the window's other days (hours with no row count as zero).
fn low_hours(
    since: DateTime<Utc>,
    now: DateTime<Utc>,
    per_hour: &[BucketCount],
    rules: GapRules,
) -> Vec<LowHour> {
    let hour = Duration::hours(1);
    let Ok(first) = since.duration_trunc(hour) else {
        return Vec::new();
    };
    let first = if first < since { first + hour } else { first };
    let Ok(current) = now.duration_trunc(hour) else {
        return Vec::new();
    };
    let mut all: Vec<(DateTime<Utc>, i64)> = Vec::new();
    let mut at = first;
    let mut counts = per_hour.iter().peekable();
    while at < current {
        while counts.peek().is_some_and(|b| b.start.0 < at) {
            counts.next();
        }
        let n = counts
            .peek()
            .filter(|b| b.start.0 == at)
            .map_or(0, |b| b.count);
        all.push((at, n));
        at += hour;
    }
    let mut low = Vec::new();
    for (at, captured) in &all {
        let others: Vec<i64> = all
            .iter()
            .filter(|(other, _)| other.hour() == at.hour() && other != at)
            .map(|(_, n)| *n)
            .collect();
        if others.len() < 2 {
            continue;
        }
        let usual = median(&others);
        if usual >= rules.min_usual && (*captured as f64) < usual * rules.low_ratio {
            low.push(LowHour {
                hour: Timestamp(*at),
                captured: *captured,
                usual,
            });
        }
    }
    low
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(day: u32, h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, day, h, m, 0).unwrap()
    }

    fn bucket(t: DateTime<Utc>, count: i64) -> BucketCount {
        BucketCount {
            start: Timestamp(t),
            count,
        }
    }

    #[test]
    fn silences_longer_than_the_quiet_period_are_gaps() {
        let minutes = [
            bucket(at(20, 10, 0), 5),
            bucket(at(20, 10, 10), 3),
            bucket(at(20, 11, 0), 1),
        ];
        let rules = GapRules::from_health(&HealthConfig {
            capture_drop_ratio: 0.25,
            ..HealthConfig::default()
        });
        let now = at(20, 12, 0);
        let report = analyse(
            Timestamp(at(20, 0, 0)),
            now,
            Some(Timestamp(at(20, 11, 0))),
            &minutes,
            vec![],
            rules,
        );
        assert_eq!(report.gaps.len(), 2, "{:?}", report.gaps);
        assert_eq!(report.gaps[0].start, Timestamp(at(20, 10, 11)));
        assert_eq!(report.gaps[0].minutes, 49);
        assert!(!report.gaps[0].ongoing);
        assert!(report.gaps[1].ongoing);
        assert_eq!(report.gaps[1].minutes, 60);
        assert_eq!(report.seconds_since_last_capture, Some(3600));
        // A silence shorter than the quiet period is not a gap.
        let report = analyse(
            Timestamp(at(20, 0, 0)),
            at(20, 11, 5),
            Some(Timestamp(at(20, 11, 0))),
            &minutes[..2],
            vec![],
            rules,
        );
        assert!(report.gaps.is_empty());
    }

    #[test]
    fn an_hour_far_below_its_usual_volume_is_low() {
        let mut hours = Vec::new();
        for day in 18..=20 {
            for h in 0..24 {
                let n = if day == 20 && h == 14 {
                    3
                } else if h == 3 {
                    2
                } else {
                    100
                };
                if !(day == 20 && h == 15) {
                    hours.push(bucket(at(day, h, 0), n));
                }
            }
        }
        let report = analyse(
            Timestamp(at(18, 0, 0)),
            at(21, 0, 30),
            None,
            &[],
            hours,
            GapRules::from_health(&HealthConfig {
                capture_drop_ratio: 0.25,
                ..HealthConfig::default()
            }),
        );
        let low: Vec<_> = report
            .low_hours
            .iter()
            .map(|l| (l.hour.0, l.captured))
            .collect();
        // 14:00 with 3 instead of ~100, 15:00 with nothing; never the quiet 03:00s.
        assert_eq!(low, [(at(20, 14, 0), 3), (at(20, 15, 0), 0)]);
        assert_eq!(report.low_hours[0].usual, 100.0);
    }
}

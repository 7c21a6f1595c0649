//! When the scheduled stages should run: `[schedule]`'s cron expressions
//! (the same lines as `crontab.conf`), so "overdue" means "missed its
//! schedule" rather than "older than a fixed interval". Expressions are
//! the five fields of cron (minute, hour, day of month, month, day of
//! week) with `*`, lists, ranges, steps and three-letter names, or one of
//! `@hourly`, `@daily`, `@weekly`, `@monthly`; they are read in UTC (run
//! cron with `CRON_TZ=UTC`, or write the hours in UTC).

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Datelike, Duration, DurationRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::domain::Stage;

/// A parsed cron expression.
#[derive(Clone, PartialEq, Eq)]
pub struct CronSchedule {
    text: String,
    minutes: u64,
    hours: u32,
    days: u32,
    months: u16,
    weekdays: u8,
    /// Cron's rule: when both day fields are restricted, either may match.
    any_day_of_month: bool,
    any_weekday: bool,
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAYS: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl FromStr for CronSchedule {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let expanded = match text.trim() {
            "@hourly" => "0 * * * *",
            "@daily" | "@midnight" => "0 0 * * *",
            "@weekly" => "0 0 * * 0",
            "@monthly" => "0 0 1 * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, day, month, weekday] = fields[..] else {
            return Err(format!(
                "`{text}` is not a cron schedule: it needs five fields (minute hour day-of-month month day-of-week), e.g. `0 2 * * *`"
            ));
        };
        let bad = |field: &str, why: String| format!("`{text}`: {field} field {why}");
        let weekdays = field(weekday, 0, 7, &WEEKDAYS).map_err(|w| bad("day-of-week", w))?;
        Ok(Self {
            text: text.trim().to_string(),
            minutes: field(minute, 0, 59, &[]).map_err(|w| bad("minute", w))?,
            hours: field(hour, 0, 23, &[]).map_err(|w| bad("hour", w))? as u32,
            days: field(day, 1, 31, &[]).map_err(|w| bad("day-of-month", w))? as u32,
            months: field(month, 1, 12, &MONTHS).map_err(|w| bad("month", w))? as u16,
            // 7 is Sunday too.
            weekdays: ((weekdays | (weekdays >> 7)) & 0x7f) as u8,
            any_day_of_month: day == "*",
            any_weekday: weekday == "*",
        })
    }
}

/// One field as a bit set of the values it allows.
fn field(text: &str, min: u32, max: u32, names: &[&str]) -> Result<u64, String> {
    let value = |v: &str| -> Result<u32, String> {
        let offset = if min == 1 { 1 } else { 0 };
        let n = match names.iter().position(|n| n.eq_ignore_ascii_case(v)) {
            Some(i) => i as u32 + offset,
            None => v
                .parse()
                .map_err(|_| format!("`{v}` is not a number between {min} and {max}"))?,
        };
        if (min..=max).contains(&n) {
            Ok(n)
        } else {
            Err(format!("`{v}` is outside {min}–{max}"))
        }
    };
    let mut bits = 0u64;
    for part in text.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((range, step)) => (
                range,
                step.parse::<u32>()
                    .ok()
                    .filter(|s| *s > 0)
                    .ok_or_else(|| format!("step `{step}` is not a positive number"))?,
            ),
            None => (part, 1),
        };
        let (low, high) = match range {
            "*" => (min, max),
            _ => match range.split_once('-') {
                Some((low, high)) => (value(low)?, value(high)?),
                None if step > 1 => (value(range)?, max),
                None => {
                    let v = value(range)?;
                    (v, v)
                }
            },
        };
        if low > high {
            return Err(format!("range `{range}` runs backwards"));
        }
        for v in (low..=high).step_by(step as usize) {
            bits |= 1 << v;
        }
    }
    Ok(bits)
}

impl CronSchedule {
    fn day_matches(&self, t: DateTime<Utc>) -> bool {
        let month = self.months & (1 << t.month()) != 0;
        let day_of_month = self.days & (1 << t.day()) != 0;
        let weekday = self.weekdays & (1 << t.weekday().num_days_from_sunday()) != 0;
        let day = match (self.any_day_of_month, self.any_weekday) {
            (false, false) => day_of_month || weekday,
            _ => day_of_month && weekday,
        };
        month && day
    }

    /// The latest minute at or before `t` the schedule fires, within a
    /// year and a day (`None`: it never fires in that span, e.g. `0 0 31 2 *`).
    pub fn latest_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let mut at = t.duration_trunc(Duration::minutes(1)).ok()?;
        let limit = t - Duration::days(367);
        while at > limit {
            if !self.day_matches(at) {
                // Skip to the last minute of the day before.
                at = at.duration_trunc(Duration::days(1)).ok()? - Duration::minutes(1);
            } else if self.hours & (1 << at.hour()) == 0 {
                at = at.duration_trunc(Duration::hours(1)).ok()? - Duration::minutes(1);
            } else if self.minutes & (1 << at.minute()) == 0 {
                at -= Duration::minutes(1);
            } else {
                return Some(at);
            }
        }
        None
    }
}

impl fmt::Display for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl fmt::Debug for CronSchedule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CronSchedule({:?})", self.text)
    }
}

impl Serialize for CronSchedule {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl<'de> Deserialize<'de> for CronSchedule {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// `[schedule]`: when cron runs each scheduled stage (defaults: the lines
/// of `crontab.conf`). Change both together.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ScheduleConfig {
    pub daily_capture: CronSchedule,
    pub label_studio_sync: CronSchedule,
    pub weekly_training: CronSchedule,
    pub canary_check: CronSchedule,
}

impl Default for ScheduleConfig {
    fn default() -> Self {
        let parse = |text: &str| text.parse().expect("the default schedules parse");
        Self {
            daily_capture: parse("0 2 * * *"),
            label_studio_sync: parse("30 */6 * * *"),
            weekly_training: parse("0 3 * * 0"),
            canary_check: parse("15 * * * *"),
        }
    }
}

impl ScheduleConfig {
    /// The schedule of `stage`, when cron runs it.
    pub fn of(&self, stage: Stage) -> Option<&CronSchedule> {
        match stage {
            Stage::DailyCapture => Some(&self.daily_capture),
            Stage::LabelStudioSync => Some(&self.label_studio_sync),
            Stage::WeeklyTraining => Some(&self.weekly_training),
            Stage::CanaryCheck => Some(&self.canary_check),
            _ => None,
        }
    }
}

/// How long after a scheduled time a run may still be missing (cron's
/// start, a lock held by the previous run) before the stage is overdue.
pub const GRACE: Duration = Duration::hours(1);

/// When `stage`, last started at `last_started`, was due and has not run
/// since: the latest scheduled time older than [`GRACE`], when the last
/// run started before it (a few minutes' clock difference between hosts
/// forgiven).
pub fn overdue_since(
    schedule: &CronSchedule,
    last_started: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    let due = schedule.latest_at_or_before(now - GRACE)?;
    (last_started < due - Duration::minutes(5)).then_some(due)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, 0).unwrap()
    }

    #[test]
    fn crontab_conf_schedules_fire_when_cron_would() {
        let s = ScheduleConfig::default();
        // 2026-12-05 is a Saturday.
        let now = at(2026, 12, 5, 10, 17);
        assert_eq!(
            s.daily_capture.latest_at_or_before(now),
            Some(at(2026, 12, 5, 2, 0))
        );
        assert_eq!(
            s.label_studio_sync.latest_at_or_before(now),
            Some(at(2026, 12, 5, 6, 30))
        );
        assert_eq!(
            s.weekly_training.latest_at_or_before(now),
            Some(at(2026, 11, 29, 3, 0))
        );
        // At the minute itself.
        assert_eq!(
            s.daily_capture.latest_at_or_before(at(2026, 12, 5, 2, 0)),
            Some(at(2026, 12, 5, 2, 0))
        );
    }

    #[test]
    fn cron_syntax_lists_ranges_steps_names_and_either_day() {
        let office = "15,45 9-17/4 * jan-mar mon-fri";
        // Both day fields restricted: the 1st or any Sunday (7 = Sunday).
        let first_or_sunday = "0 0 1 * 7";
        for (expression, now, latest) in [
            // 2026-03-02 is a Monday: 17:45 matches hour 17 (9, 13, 17).
            (office, at(2026, 3, 2, 18, 0), Some(at(2026, 3, 2, 17, 45))),
            // From a Sunday in April: the last weekday of March, Tuesday the 31st.
            (office, at(2026, 4, 5, 12, 0), Some(at(2026, 3, 31, 17, 45))),
            (
                first_or_sunday,
                at(2026, 12, 5, 0, 0),
                Some(at(2026, 12, 1, 0, 0)),
            ),
            (
                first_or_sunday,
                at(2026, 12, 7, 0, 0),
                Some(at(2026, 12, 6, 0, 0)),
            ),
            (
                "@weekly",
                at(2026, 12, 5, 0, 0),
                Some(at(2026, 11, 29, 0, 0)),
            ),
            ("0 0 31 2 *", at(2026, 12, 5, 0, 0), None),
        ] {
            let schedule: CronSchedule = expression.parse().unwrap();
            assert_eq!(schedule.to_string(), expression);
            assert_eq!(
                schedule.latest_at_or_before(now),
                latest,
                "{expression} before {now}"
            );
        }
    }

    #[test]
    fn bad_expressions_say_which_field_and_why() {
        for (text, expected) in [
            ("0 2 * *", "needs five fields"),
            ("60 2 * * *", "minute field `60` is outside 0–59"),
            ("0 2 * * mon-", "day-of-week field"),
            ("*/0 * * * *", "step `0` is not a positive number"),
            ("0 5-2 * * *", "range `5-2` runs backwards"),
            ("0 2 * foo *", "month field `foo` is not a number"),
        ] {
            let err = text.parse::<CronSchedule>().unwrap_err();
            assert!(err.contains(expected), "{text}: {err}");
            assert!(
                err.contains(text.split_whitespace().next().unwrap()),
                "{err}"
            );
        }
    }

    /// The defaults are crontab.conf's lines, stage by stage.
    #[test]
    fn defaults_are_the_shipped_crontab() {
        let defaults = ScheduleConfig::default();
        let mut seen = 0;
        for line in include_str!("../crontab.conf").lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let Some(stage) = Stage::ALL
                .iter()
                .find(|s| line.contains(&format!("flywheel {} ", s.as_str())))
            else {
                continue;
            };
            if line.starts_with('#') {
                assert!(defaults.of(*stage).is_none(), "{stage} is not scheduled");
                continue;
            }
            assert_eq!(
                defaults.of(*stage).unwrap().to_string(),
                fields[..5].join(" ")
            );
            seen += 1;
        }
        assert_eq!(seen, 4);
    }

    #[test]
    fn a_stage_is_overdue_only_once_its_slot_and_the_grace_have_passed() {
        let daily = ScheduleConfig::default().daily_capture;
        let ran = at(2026, 12, 4, 2, 0) + Duration::seconds(3);
        // The next slot is 12-05 02:00; overdue from 03:00.
        assert_eq!(overdue_since(&daily, ran, at(2026, 12, 5, 2, 59)), None);
        assert_eq!(
            overdue_since(&daily, ran, at(2026, 12, 5, 3, 1)),
            Some(at(2026, 12, 5, 2, 0))
        );
        // Run by hand a minute early of its slot (clock skew): not overdue.
        let early = at(2026, 12, 5, 1, 58);
        assert_eq!(overdue_since(&daily, early, at(2026, 12, 5, 9, 0)), None);
    }
}

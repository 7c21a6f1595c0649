//! Argument value parsers shared by several commands.

use chrono::Duration;

/// `90s`, `30m`, `24h`, `7d`, `2w` → a duration (for `--since`, `--older-than`).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .ok_or_else(|| format!("`{text}` needs a unit: s, m, h, d or w (e.g. 24h, 7d)"))?;
    let (number, unit) = text.split_at(split);
    let n: i64 = number
        .parse()
        .map_err(|_| format!("`{text}` does not start with a whole number"))?;
    let duration = match unit {
        "s" => Duration::try_seconds(n),
        "m" | "min" => Duration::try_minutes(n),
        "h" => Duration::try_hours(n),
        "d" => Duration::try_days(n),
        "w" => Duration::try_weeks(n),
        _ => {
            return Err(format!(
                "unknown unit `{unit}` in `{text}`; use s, m, h, d or w"
            ));
        }
    };
    duration.ok_or_else(|| format!("`{text}` is too long"))
}

/// A span that must not be empty (`--since` of daily capture).
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let span = parse_duration(text)?;
    if span <= Duration::zero() {
        return Err(format!(
            "`{}` is an empty window; give a positive span like 24h",
            text.trim()
        ));
    }
    Ok(span)
}

/// Most rows a listing prints.
pub const MAX_ROWS: i64 = 10_000;

/// `--limit N` of a listing (`stats recent`, `stats queue`): 0 prints no
/// row, as SQL's `LIMIT 0`; a negative or larger number is a usage error.
pub fn row_limit() -> clap::builder::RangedI64ValueParser<i64> {
    clap::value_parser!(i64).range(0..=MAX_ROWS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units_and_refuse_nonsense() {
        assert_eq!(parse_duration("24h"), Ok(Duration::hours(24)));
        assert_eq!(parse_duration("7d"), Ok(Duration::days(7)));
        assert_eq!(parse_duration("90s"), Ok(Duration::seconds(90)));
        assert_eq!(parse_duration("5m"), Ok(Duration::minutes(5)));
        assert!(parse_duration("7").unwrap_err().contains("needs a unit"));
        assert!(parse_duration("7y").unwrap_err().contains("unknown unit"));
        assert!(parse_duration("d").is_err());
    }

    #[test]
    fn a_positive_span_refuses_an_empty_window() {
        assert_eq!(parse_positive_duration("2w"), Ok(Duration::weeks(2)));
        assert_eq!(parse_positive_duration(" 90m "), Ok(Duration::minutes(90)));
        assert!(
            parse_positive_duration("0h")
                .unwrap_err()
                .contains("empty window")
        );
        assert!(
            parse_positive_duration("24")
                .unwrap_err()
                .contains("needs a unit")
        );
    }
}

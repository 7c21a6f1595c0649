//! Capture pane: time since the last capture, per-minute sparkline for the
//! last hour, per-hour bars for 48 h with gaps and low hours marked, the
//! gaps to drill into, the mix and the live feed.

use chrono::{Duration, DurationRound};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Bar, BarChart, BarGroup, Block, Paragraph, Row, Sparkline, Table};

use super::theme::Theme;
use super::{ago, clock, cut, day_time};
use crate::tui::app::{App, CaptureList};
use crate::tui::data::{CaptureData, Pane};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.capture else {
        return super::loading(frame, area, app, Pane::Capture, theme);
    };
    let wide = area.width >= 110;
    let [head, rate, hours, rest] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Length(if wide { 5 } else { 4 }),
        Constraint::Length(if area.height >= 30 { 8 } else { 5 }),
        Constraint::Min(4),
    ])
    .areas(area);
    draw_head(frame, head, app, data, theme);
    if wide {
        let [spark, mix] =
            Layout::horizontal([Constraint::Min(40), Constraint::Length(50)]).areas(rate);
        draw_sparkline(frame, spark, data, theme);
        draw_mix(frame, mix, data, theme);
    } else {
        draw_sparkline(frame, rate, data, theme);
        // No room for the mix box: the leading value of each dimension.
        let leaders: Vec<String> = data
            .mix
            .iter()
            .filter_map(|(_, values)| values.first().map(|(v, n)| format!("{v} {n}")))
            .collect();
        if !leaders.is_empty() {
            let bottom = Rect {
                y: rate.y + rate.height - 1,
                height: 1,
                ..rate
            };
            let text = cut(
                &format!(" last hour mostly: {} ", leaders.join(" · ")),
                rate.width.saturating_sub(4) as usize,
            );
            frame.render_widget(
                Paragraph::new(Span::styled(text, theme.dim())),
                Rect {
                    x: bottom.x + 2,
                    width: bottom.width.saturating_sub(4),
                    ..bottom
                },
            );
        }
    }
    draw_hours(frame, hours, app, data, theme);
    if wide {
        let [feed, gaps] =
            Layout::horizontal([Constraint::Min(60), Constraint::Length(44)]).areas(rest);
        draw_feed(frame, feed, app, data, theme);
        draw_gaps(frame, gaps, app, data, theme);
    } else {
        let gap_rows = (data.gaps.len().min(3) as u16).max(1) + 2;
        let [gaps, feed] =
            Layout::vertical([Constraint::Length(gap_rows), Constraint::Min(3)]).areas(rest);
        draw_gaps(frame, gaps, app, data, theme);
        draw_feed(frame, feed, app, data, theme);
    }
}

fn draw_head(frame: &mut Frame, area: Rect, app: &App, data: &CaptureData, theme: &Theme) {
    let quiet = Duration::minutes(data.quiet_period_minutes);
    let last = match data.last_capture_at {
        Some(at) if app.now - at.0 >= quiet => Span::styled(
            format!(
                "NO CAPTURE for {} (limit {} min)",
                crate::health::human_duration(app.now - at.0),
                data.quiet_period_minutes
            ),
            theme.bad(),
        ),
        Some(at) => Span::styled(format!("last capture {}", ago(at, app.now)), theme.good()),
        None => Span::styled("nothing captured yet", theme.warn()),
    };
    let hour: u64 = data.per_minute.iter().sum();
    let day: i64 = data.per_hour.iter().map(|b| b.count).sum();
    let line = Line::from(vec![
        last,
        Span::styled(format!(" · {hour} in 1 h · {day} in 48 h"), theme.plain()),
    ]);
    frame.render_widget(Paragraph::new(line), area);
}

fn draw_sparkline(frame: &mut Frame, area: Rect, data: &CaptureData, theme: &Theme) {
    let max = data.per_minute.iter().copied().max().unwrap_or(0);
    let width = area.width.saturating_sub(2) as usize;
    // The newest minutes when the pane is narrower than an hour.
    let shown = &data.per_minute[data.per_minute.len().saturating_sub(width)..];
    frame.render_widget(
        Sparkline::default()
            .block(Block::bordered().title(format!("per minute, last hour (peak {max})")))
            .data(shown)
            .style(theme.accent()),
        area,
    );
}

fn draw_mix(frame: &mut Frame, area: Rect, data: &CaptureData, theme: &Theme) {
    let lines: Vec<Line> = data
        .mix
        .iter()
        .map(|(name, values)| {
            let text = if values.is_empty() {
                "–".to_string()
            } else {
                values
                    .iter()
                    .map(|(v, n)| format!("{v} {n}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            Line::from(vec![
                Span::styled(format!("{name:<9}"), theme.dim()),
                Span::raw(cut(&text, 38)),
            ])
        })
        .collect();
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title("mix, last hour")),
        area,
    );
}

fn draw_hours(frame: &mut Frame, area: Rect, app: &App, data: &CaptureData, theme: &Theme) {
    let hour = Duration::hours(1);
    let alert = |start: chrono::DateTime<chrono::Utc>| {
        data.low_hours.iter().any(|l| l.hour.0 == start)
            || data.gaps.iter().any(|g| {
                let gap_start = g.start.0.duration_trunc(hour).unwrap_or(g.start.0);
                gap_start <= start && start < g.end.0
            })
    };
    let bars: Vec<Bar> = data
        .per_hour
        .iter()
        .map(|b| {
            let style = if alert(b.start.0) {
                theme.bar_alert()
            } else {
                theme.bar()
            };
            Bar::default()
                .value(b.count.max(0) as u64)
                .text_value(String::new())
                .style(style)
        })
        .collect();
    let title = format!(
        "per hour, 48 h to {} UTC · {} gap(s) · {} low hour(s), highlighted",
        app.now.format("%H:%M"),
        data.gaps.len(),
        data.low_hours.len(),
    );
    let inner = area.width.saturating_sub(2);
    let bar_width = if inner >= 48 * 2 { 2 } else { 1 };
    frame.render_widget(
        BarChart::default()
            .block(Block::bordered().title(title))
            .data(BarGroup::default().bars(&bars))
            .bar_width(bar_width)
            .bar_gap(0),
        area,
    );
}

fn draw_gaps(frame: &mut Frame, area: Rect, app: &App, data: &CaptureData, theme: &Theme) {
    let focused = app.capture_focus == CaptureList::Gaps;
    let selected = app.gap_cursor;
    let rows: Vec<Row> = data
        .gaps
        .iter()
        .enumerate()
        .map(|(i, g)| {
            let text = format!(
                "{} → {}  {} min{}",
                day_time(g.start),
                if g.ongoing {
                    "now".to_string()
                } else {
                    clock(g.end)[..5].to_string()
                },
                g.minutes,
                if g.ongoing { " (ongoing)" } else { "" }
            );
            let style = if focused && i == selected {
                theme.selected()
            } else {
                theme.warn()
            };
            Row::new(vec![text]).style(style)
        })
        .collect();
    let title = if data.gaps.is_empty() {
        format!("no gap ≥ {} min in 48 h", data.quiet_period_minutes)
    } else {
        if focused {
            "gaps · Enter drills in · ← feed".to_string()
        } else {
            "gaps · → to select".to_string()
        }
    };
    // Keep the selection in view.
    let visible = area.height.saturating_sub(2) as usize;
    let skip = selected.saturating_sub(visible.saturating_sub(1));
    frame.render_widget(
        Table::new(rows.into_iter().skip(skip), [Constraint::Min(10)])
            .block(Block::bordered().title(title)),
        area,
    );
}

fn draw_feed(frame: &mut Frame, area: Rect, app: &App, data: &CaptureData, theme: &Theme) {
    let focused = app.capture_focus == CaptureList::Feed;
    let selected = app.cursor[Pane::Capture.index()];
    // Wide: who answered with which version; narrow: the text gets the room.
    let wide = area.width >= 110;
    let mut header = vec!["time", "lang", "intent", "conf", "fb"];
    let mut widths = vec![
        Constraint::Length(8),
        Constraint::Length(8),
        Constraint::Length(14),
        Constraint::Length(4),
        Constraint::Length(2),
    ];
    if wide {
        header.extend(["provider", "version"]);
        widths.extend([Constraint::Length(15), Constraint::Length(14)]);
    }
    header.push("text (redacted)");
    widths.push(Constraint::Fill(1));
    let visible = area.height.saturating_sub(3) as usize;
    let skip = selected.saturating_sub(visible.saturating_sub(1));
    let feed = app.visible_feed();
    let rows: Vec<Row> = feed
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, c)| {
            let fallback = if c.fallback { "fb" } else { "" };
            let mut cells = vec![
                clock(c.created_at),
                c.language.clone().unwrap_or_default(),
                c.nlu_intent.clone().unwrap_or_default(),
                c.nlu_confidence
                    .map_or(String::new(), |x| format!("{x:.2}")),
                fallback.to_string(),
            ];
            if wide {
                cells.push(c.nlu_provider.clone().unwrap_or_default());
                cells.push(c.model_version.clone().unwrap_or_default());
            }
            cells.push(cut(&c.user_message, 300));
            Row::new(cells).style(if focused && i == selected {
                theme.selected()
            } else if c.fallback {
                theme.warn()
            } else {
                theme.plain()
            })
        })
        .collect();
    let title = if data.feed.is_empty() {
        "live feed · no conversation logged yet (flywheel serve / ingest)".to_string()
    } else if focused {
        "live feed, newest first · Enter opens · → gaps".to_string()
    } else {
        "live feed, newest first · ← to select".to_string()
    };
    let title = format!("{title}{}", super::filter_note(app, Pane::Capture));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.title()))
            .block(Block::bordered().title(title)),
        area,
    );
}

//! Drawing: a pure function of the [`App`] state into a ratatui frame.
//! The tab bar on top, the pane, the running job and the status line at the
//! bottom, and any dialog over it all. Nothing here waits on anything.

mod capture;
mod dialogs;
mod jobs;
mod label_studio;
mod review;
pub mod text;
pub mod theme;
mod training;

use chrono::{DateTime, Utc};
use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Gauge, Paragraph};

use super::app::{App, Overlay};
use super::data::Pane;
use crate::storage::Timestamp;
use theme::Theme;

/// Draw the whole console.
pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let job_rows = u16::from(app.job.is_some());
    let [tabs, body, job, status] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(job_rows),
        Constraint::Length(1),
    ])
    .areas(frame.area());
    draw_tabs(frame, tabs, app, theme);
    match app.pane {
        Pane::Capture => capture::draw(frame, body, app, theme),
        Pane::Review => review::draw(frame, body, app, theme),
        Pane::LabelStudio => label_studio::draw(frame, body, app, theme),
        Pane::Training => training::draw(frame, body, app, theme),
        Pane::Jobs => jobs::draw(frame, body, app, theme),
    }
    if job_rows > 0 {
        draw_job(frame, job, app, theme);
    }
    draw_status(frame, status, app, theme);
    dialogs::draw(frame, app, theme);
    text::split_wide_clusters(frame.buffer_mut());
}

fn draw_tabs(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let mut spans = vec![Span::styled(" flywheel ", theme.title())];
    if app.read_only {
        spans.push(Span::styled(" READ-ONLY ", theme.bad()));
    }
    for pane in Pane::ALL {
        let style = if pane == app.pane {
            theme.active_tab()
        } else {
            theme.dim()
        };
        spans.push(Span::raw(" "));
        spans.push(Span::styled(
            format!("{} {}", pane.index() + 1, pane.title()),
            style,
        ));
    }
    spans.push(Span::styled("  ? help", theme.dim()));
    frame.render_widget(Paragraph::new(Line::from(spans)), area);
}

fn draw_job(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(job) = &app.job else { return };
    let mut label = job.job.label();
    if let Some(phase) = &job.phase {
        label.push_str(&format!(" · {phase}"));
    }
    match job.total {
        Some(total) if total > 0 => label.push_str(&format!(" {}/{total}", job.done)),
        _ if job.done > 0 => label.push_str(&format!(" {}", job.done)),
        _ => {}
    }
    if let Some(note) = &job.note {
        label.push_str(&format!(" · {note}"));
    }
    label.push_str(if job.cancelling {
        " · cancelling…"
    } else {
        " · x cancels"
    });
    let ratio = match job.total {
        Some(total) if total > 0 => (job.done as f64 / total as f64).clamp(0.0, 1.0),
        _ => 0.0,
    };
    frame.render_widget(
        Gauge::default()
            .ratio(ratio)
            .label(label)
            .gauge_style(theme.accent())
            .use_unicode(theme.color),
        area,
    );
}

fn draw_status(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let line = if app.overlay == Overlay::Filter {
        let count = app
            .filter_count(app.pane)
            .map_or(String::new(), |(shown, total)| {
                format!(" · {shown} of {total} match")
            });
        Line::from(vec![
            Span::styled("/", theme.accent()),
            Span::styled(format!("{}_", app.filters[app.pane.index()]), theme.title()),
            Span::styled(format!("{count} · Enter keeps · Esc clears"), theme.dim()),
        ])
    } else if let Overlay::GoTo { input } = &app.overlay {
        Line::from(vec![
            Span::styled("go to ", theme.accent()),
            Span::styled(format!("{input}_"), theme.title()),
            Span::styled(
                " · 42 a conversation · s42 a sample · a version · Enter · Esc",
                theme.dim(),
            ),
        ])
    } else if let Some((pane, error)) = &app.load_error {
        Line::from(vec![
            Span::styled("database: ", theme.bad()),
            Span::styled(format!("{} ({})", error, pane.title()), theme.bad()),
        ])
    } else if let Some(message) = &app.message {
        let style = if message.ok {
            theme.good()
        } else {
            theme.bad()
        };
        Line::from(Span::styled(message.text.clone(), style))
    } else {
        Line::from(Span::styled(
            "Tab/1-5 panes · ↑↓ select · ? every key · q quit",
            theme.dim(),
        ))
    };
    frame.render_widget(Paragraph::new(line), area);
}

/// " · filter “refund”: 3 of 100", for the title of a filtered list.
pub(super) fn filter_note(app: &App, pane: Pane) -> String {
    match app.filter_count(pane) {
        Some((shown, total)) => format!(
            " · filter “{}”: {shown} of {total}",
            app.filters[pane.index()]
        ),
        None => String::new(),
    }
}

/// "12:04:05" of a timestamp, UTC.
pub(super) fn clock(t: Timestamp) -> String {
    t.0.format("%H:%M:%S").to_string()
}

/// "11-24 12:04", UTC.
pub(super) fn day_time(t: Timestamp) -> String {
    t.0.format("%m-%d %H:%M").to_string()
}

/// "3 min ago".
pub(super) fn ago(t: Timestamp, now: DateTime<Utc>) -> String {
    format!("{} ago", crate::health::human_duration(now - t.0))
}

/// Run time of something that started at `start` and ended at `end` (or runs still).
pub(super) fn took(start: Timestamp, end: Option<Timestamp>, now: DateTime<Utc>) -> String {
    crate::run_words::took(start, end, now)
}

pub(super) fn percent(x: Option<f64>) -> String {
    x.map_or_else(|| "–".into(), |v| format!("{:.1}%", v * 100.0))
}

pub(super) use text::cut;

/// What a pane shows before its first load.
pub(super) fn loading(frame: &mut Frame, area: Rect, app: &App, pane: Pane, theme: &Theme) {
    let text = match &app.load_error {
        Some((p, error)) if *p == pane => Line::from(Span::styled(
            format!("Could not load: {error}"),
            theme.bad(),
        )),
        _ => Line::from(Span::styled("Loading…", theme.dim())),
    };
    frame.render_widget(
        Paragraph::new(text).block(
            ratatui::widgets::Block::bordered()
                .title(pane.title())
                .title_style(theme.title()),
        ),
        area,
    );
}

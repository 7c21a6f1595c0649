//! Jobs & logs pane: recent stage runs from every trigger and the log tail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Cell, Paragraph, Row, Table};

use chrono::{DateTime, Utc};

use super::theme::Theme;
use super::{cut, day_time, took};
use crate::health::Warning;
use crate::run_words::counts_in_words;
use crate::storage::jobs::JobRun;
use crate::tui::app::App;
use crate::tui::data::Pane;

/// Widths of a job run's row ([`run_cells`]).
pub(super) const RUN_COLUMNS: [Constraint; 6] = [
    Constraint::Length(11),
    Constraint::Length(17),
    Constraint::Length(4),
    Constraint::Length(9),
    Constraint::Length(7),
    Constraint::Fill(1),
];

/// A job run as a row: started, stage, by, status, took, and `detail`
/// cut to `width`.
pub(super) fn run_cells(
    run: &JobRun,
    now: DateTime<Utc>,
    detail: &str,
    width: usize,
) -> Vec<String> {
    vec![
        day_time(run.started_at),
        run.stage.to_string(),
        run.trigger.to_string(),
        run.status.to_string(),
        took(run.started_at, run.finished_at, now),
        cut(detail, width),
    ]
}

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.jobs else {
        return super::loading(frame, area, app, Pane::Jobs, theme);
    };
    let health_rows = data.health.as_ref().map_or(1, |w| w.len().clamp(1, 4)) as u16;
    let [health, runs, log] = Layout::vertical([
        Constraint::Length(health_rows),
        Constraint::Percentage(55),
        Constraint::Min(4),
    ])
    .areas(area);
    draw_health(frame, health, data.health.as_deref(), theme);
    let selected = app.cursor[Pane::Jobs.index()];
    let visible = runs.height.saturating_sub(3) as usize;
    let skip = selected.saturating_sub(visible.saturating_sub(1));
    let header = Row::new(vec![
        "started",
        "stage",
        "by",
        "status",
        "took",
        "counts / error",
    ])
    .style(theme.title());
    let rows: Vec<Row> = app
        .visible_runs()
        .into_iter()
        .enumerate()
        .skip(skip)
        .map(|(i, r)| {
            // An error's first line, in red; the whole run is behind Enter.
            let (detail, style) = match &r.error {
                Some(error) => (error.lines().next().unwrap_or_default(), theme.bad()),
                None => ("", theme.plain()),
            };
            let words = r.counts.as_deref().map(counts_in_words);
            let detail = words
                .as_deref()
                .filter(|_| detail.is_empty())
                .unwrap_or(detail);
            let mut cells: Vec<Cell> = run_cells(r, app.now, detail, 300)
                .into_iter()
                .map(Cell::from)
                .collect();
            if let Some(last) = cells.pop() {
                cells.push(last.style(style));
            }
            let row = Row::new(cells);
            if i == selected {
                row.style(theme.selected())
            } else {
                row.style(theme.status_style(r.status.as_str()))
            }
        })
        .collect();
    let title = if data.runs.is_empty() {
        "stage runs · none yet · Enter or m runs a stage"
    } else {
        "stage runs (cli, cron, tui) · Enter shows a run · m runs a stage · x cancels"
    };
    let title = format!("{title}{}", super::filter_note(app, Pane::Jobs));
    frame.render_widget(
        Table::new(rows, RUN_COLUMNS)
            .header(header)
            .block(Block::bordered().title(title)),
        runs,
    );

    let height = log.height.saturating_sub(2) as usize;
    let width = log.width.saturating_sub(2) as usize;
    let lines: Vec<Line> = if let Some(problem) = &data.log_problem {
        vec![Line::from(Span::styled(problem.clone(), theme.bad()))]
    } else if data.log_tail.is_empty() {
        vec![Line::from(Span::styled("no log lines yet", theme.dim()))]
    } else {
        let skip = data.log_tail.len().saturating_sub(height);
        data.log_tail[skip..]
            .iter()
            .map(|l| {
                let style = if l.contains(" ERROR ") {
                    theme.bad()
                } else if l.contains(" WARN ") {
                    theme.warn()
                } else {
                    theme.plain()
                };
                Line::from(Span::styled(cut(l, width), style))
            })
            .collect()
    };
    let title = match &data.log_file {
        Some(path) => format!(
            "log · {}",
            path.file_name()
                .map_or_else(String::new, |n| n.to_string_lossy().into_owned())
        ),
        None => "log".to_string(),
    };
    frame.render_widget(
        Paragraph::new(lines).block(Block::bordered().title(title)),
        log,
    );
}

/// The loop's health, as `status` and `doctor` judge it: each warning on a
/// line of its own (the first four), or that every check passes.
fn draw_health(frame: &mut Frame, area: Rect, warnings: Option<&[Warning]>, theme: &Theme) {
    let width = area.width as usize;
    let lines: Vec<Line> = match warnings {
        None => vec![Line::from(Span::styled(
            "loop health: reading…",
            theme.dim(),
        ))],
        Some([]) => vec![Line::from(Span::styled(
            format!(
                "loop health: all {} checks pass (as status and doctor judge them)",
                crate::health::CHECKS.len()
            ),
            theme.dim(),
        ))],
        Some(warnings) => warnings
            .iter()
            .take(area.height as usize)
            .map(|w| {
                Line::from(Span::styled(
                    cut(&format!("⚠ {}: {}", w.code, w.message), width),
                    theme.warn(),
                ))
            })
            .collect(),
    };
    frame.render_widget(Paragraph::new(lines), area);
}

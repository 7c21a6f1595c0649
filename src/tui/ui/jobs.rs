//! Jobs & logs pane: recent stage runs from every trigger and the log tail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table};

use super::theme::Theme;
use super::{cut, day_time, took};
use crate::tui::app::App;
use crate::tui::data::Pane;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.jobs else {
        return super::loading(frame, area, app, Pane::Jobs, theme);
    };
    let [runs, log] =
        Layout::vertical([Constraint::Percentage(55), Constraint::Min(4)]).areas(area);
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
    let rows: Vec<Row> = data
        .runs
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, r)| {
            let detail = r
                .error
                .clone()
                .or_else(|| r.counts.clone())
                .unwrap_or_default();
            let row = Row::new(vec![
                day_time(r.started_at),
                r.stage.to_string(),
                r.trigger.to_string(),
                r.status.to_string(),
                took(r.started_at, r.finished_at, app.now),
                cut(&detail, 300),
            ]);
            if i == selected {
                row.style(theme.selected())
            } else {
                row.style(theme.status_style(r.status.as_str()))
            }
        })
        .collect();
    let title = if data.runs.is_empty() {
        "stage runs · none yet · Enter runs a stage"
    } else {
        "stage runs (cli, cron, tui) · Enter runs a stage · x cancels"
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(11),
                Constraint::Length(17),
                Constraint::Length(4),
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Fill(1),
            ],
        )
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

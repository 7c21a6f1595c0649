//! Label Studio pane: configuration and connection, task counts, last syncs.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};

use super::theme::Theme;
use super::{cut, day_time, took};
use crate::tui::app::App;
use crate::tui::data::{Connection, Pane};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.label_studio else {
        return super::loading(frame, area, app, Pane::LabelStudio, theme);
    };
    let [state, syncs] = Layout::vertical([Constraint::Length(7), Constraint::Min(3)]).areas(area);
    let field = |name: &str, value: Span<'static>| {
        Line::from(vec![
            Span::styled(format!("{name:<11}"), theme.dim()),
            value,
        ])
    };
    let lines: Vec<Line> = match &data.missing_settings {
        Some(missing) => vec![
            Line::from(Span::styled(
                "Label Studio is not configured.",
                theme.warn(),
            )),
            Line::from(format!(
                "Set {missing} (environment, .env or .env.labelstudio); LABEL_STUDIO_PROJECT_ID is optional."
            )),
            Line::from(Span::styled(
                "Until then, review in the Review pane (2): decisions land in the same samples.",
                theme.dim(),
            )),
        ],
        None => {
            let (reach, key) = match &app.connection {
                None => (
                    Span::styled("checking…", theme.dim()),
                    Span::styled("checking…", theme.dim()),
                ),
                Some(Connection::Ok { user }) => (
                    Span::styled("yes", theme.good()),
                    Span::styled(format!("accepted ({user})"), theme.good()),
                ),
                Some(Connection::KeyRefused(why)) => (
                    Span::styled("yes", theme.good()),
                    Span::styled(format!("refused: {}", cut(why, 60)), theme.bad()),
                ),
                Some(Connection::Unreachable(why)) => (
                    Span::styled(format!("no: {}", cut(why, 60)), theme.bad()),
                    Span::styled("unknown", theme.dim()),
                ),
            };
            let counts = match &data.counts {
                Some(c) => format!(
                    "{} pushed · {} awaiting annotation · {} annotated · {} in flight",
                    c.pushed, c.awaiting, c.annotated, c.in_flight
                ),
                None => "no task pushed yet".into(),
            };
            vec![
                field("url", Span::raw(data.url.clone().unwrap_or_default())),
                field("reachable", reach),
                field("key", key),
                field(
                    "project",
                    Span::raw(
                        data.project
                            .map_or("none yet (the first sync creates one)".into(), |p| {
                                p.to_string()
                            }),
                    ),
                ),
                field("tasks", Span::raw(counts)),
            ]
        }
    };
    frame.render_widget(
        Paragraph::new(lines)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title("Label Studio · S syncs now")),
        state,
    );

    let header = Row::new(vec![
        "started",
        "by",
        "status",
        "took",
        "pushed",
        "pulled",
        "errors / counts",
    ])
    .style(theme.title());
    let rows: Vec<Row> = data
        .syncs
        .iter()
        .map(|run| {
            let counts: serde_json::Value = run
                .counts
                .as_deref()
                .and_then(|c| serde_json::from_str(c).ok())
                .unwrap_or_default();
            let count = |key: &str| {
                counts
                    .get(key)
                    .and_then(|v| v.as_i64())
                    .map_or("–".into(), |n| n.to_string())
            };
            let errors = counts
                .get("errors")
                .and_then(|e| e.as_array())
                .map(|a| {
                    a.iter()
                        .filter_map(|e| e.as_str())
                        .collect::<Vec<_>>()
                        .join("; ")
                })
                .unwrap_or_default();
            let problem = run.error.clone().unwrap_or(errors);
            Row::new(vec![
                day_time(run.started_at),
                run.trigger.to_string(),
                run.status.to_string(),
                took(run.started_at, run.finished_at, app.now),
                count("pushed"),
                count("pulled"),
                cut(&problem, 200),
            ])
            .style(theme.status_style(run.status.as_str()))
        })
        .collect();
    let title = if data.syncs.is_empty() {
        "last syncs · none recorded yet".to_string()
    } else {
        "last syncs".to_string()
    };
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(11),
                Constraint::Length(4),
                Constraint::Length(9),
                Constraint::Length(7),
                Constraint::Length(6),
                Constraint::Length(6),
                Constraint::Fill(1),
            ],
        )
        .header(header)
        .block(Block::bordered().title(title)),
        syncs,
    );
}

//! Dialogs drawn over the pane: help, intent chooser, confirmations, the
//! traffic prompt, the stage menu and a capture gap's detail.

use ratatui::Frame;
use ratatui::layout::{Constraint, Flex, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Clear, Paragraph, Row, Table, Wrap};

use super::jobs::{RUN_COLUMNS, run_cells};
use super::theme::Theme;
use super::{cut, day_time};
use crate::run_words::{count_phrases, took};
use crate::storage::jobs::JobRun;
use crate::tui::app::{App, Confirm, ConversationView, GapView, Overlay, completions};
use crate::tui::data::{Alternatives, ConversationDetail, Pane};
use crate::tui::job::Job;
use crate::tui::keys::{BINDINGS, Scope};

pub fn draw(frame: &mut Frame, app: &App, theme: &Theme) {
    let area = frame.area();
    match &app.overlay {
        // Typed into the status line, applied to the list as it is typed.
        Overlay::None | Overlay::Filter | Overlay::GoTo { .. } => {}
        Overlay::CommandLine { input, selected } => {
            let offered = completions(input);
            let popup = centered(area, 64, offered.len().max(1) as u16 + 4);
            let mut lines = vec![Line::from(vec![
                Span::styled(":", theme.accent()),
                Span::styled(format!("{input}_"), theme.title()),
            ])];
            if offered.is_empty() {
                lines.push(Line::from(Span::styled("no such command", theme.warn())));
            }
            for (i, (name, help)) in offered.iter().enumerate() {
                let style = if i == *selected {
                    theme.selected()
                } else {
                    theme.plain()
                };
                lines.push(Line::from(vec![
                    Span::styled(format!("{name:<18}"), style),
                    Span::styled(help.to_string(), theme.dim()),
                ]));
            }
            dialog(
                frame,
                popup,
                "command · Tab completes · Enter runs · Esc",
                lines,
            );
        }
        Overlay::Help => help(frame, area, app.pane, theme),
        Overlay::ChooseIntent { filter, selected } => {
            let popup = centered(area, 60, 16);
            let intents = app.filtered_intents(filter);
            let visible = popup.height.saturating_sub(4) as usize;
            let skip = selected.saturating_sub(visible.saturating_sub(1));
            let mut lines = vec![
                Line::from(vec![
                    Span::styled("filter: ", theme.dim()),
                    Span::styled(format!("{filter}_"), theme.title()),
                ]),
                Line::default(),
            ];
            if intents.is_empty() {
                lines.push(Line::from(Span::styled(
                    format!("no known intent matches; Enter uses “{filter}” as a new intent"),
                    theme.warn(),
                )));
            }
            for (i, intent) in intents.iter().enumerate().skip(skip).take(visible) {
                let style = if i == *selected {
                    theme.selected()
                } else {
                    theme.plain()
                };
                lines.push(Line::from(Span::styled(intent.to_string(), style)));
            }
            dialog(
                frame,
                popup,
                "choose the right intent · type to filter · Enter · Esc",
                lines,
            );
        }
        Overlay::Confirm(confirm) => {
            let question = match confirm {
                Confirm::Start(Job::TrainNow) => {
                    "Train a new version now on all approved samples? It is registered as testing only if it beats production.".to_string()
                }
                Confirm::Start(Job::Rollback) => {
                    "Roll back: the previous production version takes 100 % of traffic again.".to_string()
                }
                Confirm::Start(job) => format!("{}?", capitalise(&job.label())),
                Confirm::Quit => "A job is still running. Cancel it and quit?".to_string(),
            };
            let lines = vec![
                Line::from(question),
                Line::default(),
                Line::from(Span::styled("y / Enter: yes · n / Esc: no", theme.accent())),
            ];
            dialog(frame, centered(area, 60, 7), "confirm", lines);
        }
        Overlay::Traffic { version, input } => {
            let lines = vec![
                Line::from(format!("Promote {version}: share of traffic in %")),
                Line::from(Span::styled(
                    "1–99 makes it the canary, 100 makes it production",
                    theme.dim(),
                )),
                Line::default(),
                Line::from(Span::styled(format!("{input}_ %"), theme.title())),
            ];
            dialog(frame, centered(area, 56, 8), "promote · Enter · Esc", lines);
        }
        Overlay::JobMenu { selected } => {
            let lines: Vec<Line> = Job::MENU
                .iter()
                .enumerate()
                .map(|(i, job)| {
                    let style = if i == *selected {
                        theme.selected()
                    } else {
                        theme.plain()
                    };
                    Line::from(Span::styled(capitalise(&job.label()), style))
                })
                .collect();
            dialog(
                frame,
                centered(area, 44, 8),
                "run a stage · Enter · Esc",
                lines,
            );
        }
        Overlay::Gap(view) => gap(frame, area, app, view, theme),
        Overlay::Conversation(view) => conversation(frame, area, view, theme),
        Overlay::Run(run) => job_run(frame, area, app, run, theme),
    }
}

/// The keys that work in `pane` (everywhere, its own, in dialogs), from
/// the key table: what the help lists, so it fits a small terminal.
fn help(frame: &mut Frame, area: Rect, pane: Pane, theme: &Theme) {
    let rows: Vec<Row> = BINDINGS
        .iter()
        .filter(|k| !matches!(k.scope, Scope::Pane(p) if p != pane))
        .map(|k| {
            let scope = match k.scope {
                Scope::Always | Scope::Anywhere | Scope::UnlessTyping => "anywhere".to_string(),
                Scope::Pane(p) => p.title().to_string(),
                Scope::Dialog | Scope::OverDialog => "dialogs".to_string(),
            };
            Row::new(vec![k.label.to_string(), scope, k.help.to_string()])
        })
        .collect();
    let popup = centered(area, 78, rows.len() as u16 + 3);
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(15),
                Constraint::Length(12),
                Constraint::Fill(1),
            ],
        )
        .header(Row::new(vec!["key", "where", "does"]).style(theme.title()))
        .block(Block::bordered().title(format!(
            "keys of {} · q quits · any other key closes",
            pane.title()
        ))),
        popup,
    );
}

fn gap(frame: &mut Frame, area: Rect, app: &App, view: &GapView, theme: &Theme) {
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    frame.render_widget(Clear, popup);
    let block = Block::bordered().title("capture gap · Esc closes");
    let detail = match view {
        GapView::Loading(g) => {
            let text = format!(
                "{} → {} ({} min): loading…",
                day_time(g.start),
                day_time(g.end),
                g.minutes
            );
            frame.render_widget(Paragraph::new(text).block(block), popup);
            return;
        }
        GapView::Failed(err) => {
            frame.render_widget(
                Paragraph::new(Span::styled(err.clone(), theme.bad())).block(block),
                popup,
            );
            return;
        }
        GapView::Loaded(detail) => detail,
    };
    let inner = block.inner(popup);
    frame.render_widget(block, popup);
    let g = &detail.gap;
    let job_rows = (detail.job_runs.len().clamp(1, 6) + 2) as u16;
    let [head, convs, jobs] = Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(3),
        Constraint::Length(job_rows),
    ])
    .areas(inner);
    frame.render_widget(
        Paragraph::new(Span::styled(
            format!(
                "silent from {} to {} UTC: {} min{}",
                day_time(g.start),
                if g.ongoing {
                    "now".to_string()
                } else {
                    day_time(g.end)
                },
                g.minutes,
                if g.ongoing { " and counting" } else { "" }
            ),
            theme.warn(),
        )),
        head,
    );
    let rows: Vec<Row> = detail
        .conversations
        .iter()
        .map(|c| {
            let side = if c.created_at < g.start {
                "before"
            } else {
                "after"
            };
            Row::new(vec![
                side.to_string(),
                c.created_at.0.format("%m-%d %H:%M:%S").to_string(),
                c.nlu_provider.clone().unwrap_or_default(),
                c.nlu_intent.clone().unwrap_or_default(),
                cut(&c.user_message, 200),
            ])
        })
        .collect();
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(6),
                Constraint::Length(14),
                Constraint::Length(16),
                Constraint::Length(18),
                Constraint::Fill(1),
            ],
        )
        .block(Block::bordered().title("conversations at the edges of the gap")),
        convs,
    );
    let rows: Vec<Row> = detail
        .job_runs
        .iter()
        .map(|r| {
            Row::new(run_cells(r, app.now, r.error.as_deref().unwrap_or(""), 200))
                .style(theme.status_style(r.status.as_str()))
        })
        .collect();
    let title = if detail.job_runs.is_empty() {
        "job runs during the gap · none"
    } else {
        "job runs during the gap"
    };
    frame.render_widget(
        Table::new(rows, RUN_COLUMNS).block(Block::bordered().title(title)),
        jobs,
    );
}

/// A label in the detail views' left column.
fn field<'a>(name: &str, value: impl Into<Line<'a>>, theme: &Theme) -> Line<'a> {
    let mut line = value.into();
    line.spans
        .insert(0, Span::styled(format!("{name:<10} "), theme.dim()));
    line
}

fn conversation(frame: &mut Frame, area: Rect, view: &ConversationView, theme: &Theme) {
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let lines = match view {
        ConversationView::Loading(id) => {
            vec![Line::from(format!("conversation {id}: loading…"))]
        }
        ConversationView::Failed(err) => vec![Line::from(Span::styled(err.clone(), theme.bad()))],
        ConversationView::Loaded(detail) => conversation_lines(detail, theme),
    };
    let title = match view {
        ConversationView::Loaded(d) => format!("conversation {} · Esc closes", d.conversation.id),
        _ => "conversation · Esc closes".to_string(),
    };
    dialog(frame, popup, &title, lines);
}

fn conversation_lines<'a>(detail: &'a ConversationDetail, theme: &Theme) -> Vec<Line<'a>> {
    let c = &detail.conversation;
    let or_dash = |v: &Option<String>| v.clone().unwrap_or_else(|| "–".into());
    let mut lines = vec![
        Line::from(Span::styled(c.user_message.as_str(), theme.title())),
        Line::default(),
        field(
            "when",
            format!(
                "{} UTC · session {} · language {}",
                c.created_at.0.format("%Y-%m-%d %H:%M:%S"),
                or_dash(&c.session_id),
                or_dash(&c.language)
            ),
            theme,
        ),
        field(
            "answered",
            format!(
                "{} {} · by {} ({})",
                or_dash(&c.nlu_intent),
                c.nlu_confidence.map_or("–".into(), |x| format!("{x:.2}")),
                or_dash(&c.model_version),
                or_dash(&c.nlu_provider)
            ),
            theme,
        ),
        field(
            "fallback",
            if c.fallback {
                Span::styled("yes: routed to the fallback", theme.warn())
            } else {
                Span::raw("no")
            },
            theme,
        ),
    ];
    let weighed = match &detail.alternatives {
        Alternatives::Scored { version, intents } => Line::from(format!(
            "{} ({version} scored it again)",
            intents
                .iter()
                .map(|(intent, p)| format!("{intent} {p:.2}"))
                .collect::<Vec<_>>()
                .join(" · ")
        )),
        Alternatives::Unavailable(why) => Line::from(Span::styled(why.clone(), theme.dim())),
    };
    lines.push(field("weighed", weighed, theme));
    lines.push(field(
        "captured",
        format!("{} (daily capture)", c.review_status),
        theme,
    ));
    let sample = match &detail.sample {
        Some(s) => Line::from(format!(
            "#{} {} · intent {} · priority {} · seen {} time(s){}",
            s.id,
            s.review_status,
            s.intent,
            s.priority,
            s.occurrences,
            s.annotator
                .as_ref()
                .map_or(String::new(), |a| format!(" · by {a}"))
        )),
        None => Line::from(Span::styled(
            "none yet: daily capture has not folded it into a sample",
            theme.dim(),
        )),
    };
    lines.push(field("sample", sample, theme));
    lines.push(field(
        "feedback",
        c.feedback.clone().unwrap_or_else(|| "none".into()),
        theme,
    ));
    lines
}

fn job_run(frame: &mut Frame, area: Rect, app: &App, run: &JobRun, theme: &Theme) {
    let popup = centered(
        area,
        area.width.saturating_sub(4),
        area.height.saturating_sub(2),
    );
    let mut lines = vec![
        field(
            "status",
            Span::styled(
                format!("{} · by {}", run.status, run.trigger),
                theme.status_style(run.status.as_str()),
            ),
            theme,
        ),
        field(
            "started",
            format!(
                "{} UTC · took {}{}",
                run.started_at.0.format("%Y-%m-%d %H:%M:%S"),
                took(run.started_at, run.finished_at, app.now),
                if run.finished_at.is_none() {
                    " so far"
                } else {
                    ""
                }
            ),
            theme,
        ),
    ];
    if let (Some(host), Some(pid)) = (&run.host, run.pid) {
        lines.push(field("where", format!("{host}, pid {pid}"), theme));
    }
    let phrases = run.counts.as_deref().map(count_phrases).unwrap_or_default();
    if phrases.is_empty() {
        lines.push(field("counts", Span::styled("none", theme.dim()), theme));
    }
    for (i, phrase) in phrases.into_iter().enumerate() {
        lines.push(field(if i == 0 { "counts" } else { "" }, phrase, theme));
    }
    if let Some(error) = &run.error {
        for (i, text) in error.lines().enumerate() {
            lines.push(field(
                if i == 0 { "error" } else { "" },
                Span::styled(text.to_string(), theme.bad()),
                theme,
            ));
        }
    }
    let title = format!("run {} · {} · Esc closes", run.id, run.stage);
    dialog(frame, popup, &title, lines);
}

fn dialog(frame: &mut Frame, area: Rect, title: &str, lines: Vec<Line>) {
    frame.render_widget(Clear, area);
    frame.render_widget(
        Paragraph::new(lines)
            // Untrimmed: a detail's continuation lines keep their indent.
            .wrap(Wrap { trim: false })
            .block(Block::bordered().title(title.to_string())),
        area,
    );
}

/// A `width` × `height` rectangle in the middle of `area` (clipped to it).
fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let [row] = Layout::vertical([Constraint::Length(height.min(area.height))])
        .flex(Flex::Center)
        .areas(area);
    let [cell] = Layout::horizontal([Constraint::Length(width.min(area.width))])
        .flex(Flex::Center)
        .areas(row);
    cell
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

//! Review pane: what waits, in review order with why, and the selected
//! sample in full.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::text::{Line, Span};
use ratatui::widgets::{Block, Paragraph, Row, Table, Wrap};

use super::theme::Theme;
use super::{cut, day_time};
use crate::domain::WaitingPlace;
use crate::review::value::Reason;
use crate::tui::app::App;
use crate::tui::data::Pane;

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.review else {
        return super::loading(frame, area, app, Pane::Review, theme);
    };
    let queue = app.visible_queue();
    let selected = app.cursor[Pane::Review.index()];
    // A suspect's detail has one line more (what the model says), which
    // must not push its keys out of a small terminal.
    let suspect_selected = queue
        .get(selected)
        .is_some_and(|q| q.ranked.item.suspect_score.is_some());
    let detail_rows = if area.height >= 30 {
        9
    } else {
        7 + u16::from(suspect_selected)
    };
    let [list, detail] =
        Layout::vertical([Constraint::Min(4), Constraint::Length(detail_rows)]).areas(area);

    let visible = list.height.saturating_sub(3) as usize;
    let skip = selected.saturating_sub(visible.saturating_sub(1));
    // Wide enough: why each ranks where it does, beside it.
    let why = list.width >= 110;
    let rows: Vec<Row> = queue
        .iter()
        .enumerate()
        .skip(skip)
        .map(|(i, q)| {
            let s = &q.sample;
            let suspicion = q.ranked.item.suspicion();
            // A suspect shows its stored label (what accepting confirms)
            // and what the model says instead, unless its reason beside
            // it already does.
            let label = match &suspicion {
                Some(_) => s.intent.clone(),
                None => s
                    .predicted_intent
                    .clone()
                    .unwrap_or_else(|| s.intent.clone()),
            };
            let said = why && matches!(q.ranked.reason, Reason::Suspect { .. });
            let text = match &suspicion {
                Some(x) if !said => format!(
                    "suspect: model says {} · {}",
                    x.suggested,
                    cut(&s.text, 200)
                ),
                _ => cut(&s.text, 200),
            };
            let mut cells = vec![
                q.ranked.rank.to_string(),
                s.priority.to_string(),
                s.occurrences.to_string(),
                s.confidence.map_or("–".into(), |c| format!("{c:.2}")),
                s.language.clone().unwrap_or_default(),
                label,
            ];
            if why {
                cells.push(q.ranked.reason.to_string());
            }
            cells.push(text);
            let row = Row::new(cells);
            if i == selected {
                row.style(theme.selected())
            } else if s.priority <= 2 || suspicion.is_some() {
                row.style(theme.warn())
            } else {
                row
            }
        })
        .collect();
    let hidden = data.queue.len() - queue.len();
    let in_label_studio = data.waiting.at(WaitingPlace::LabelStudio);
    let title = format!(
        "review queue · {} waiting, {} urgent{}{}{}{}",
        data.waiting.total(),
        data.waiting.urgent(),
        if in_label_studio > 0 {
            format!(" · {in_label_studio} in Label Studio")
        } else {
            String::new()
        },
        if data.audits > 0 {
            format!(" · {} audits", data.audits)
        } else {
            String::new()
        },
        match data.waiting.suspects() {
            0 => String::new(),
            1 => " · 1 suspect label".into(),
            n => format!(" · {n} suspect labels"),
        },
        match super::filter_note(app, Pane::Review) {
            // Filtered: how many of the head pass (skipped ones included).
            note if !note.is_empty() => note,
            _ if hidden > 0 => format!(" · {hidden} skipped/decided here"),
            _ => String::new(),
        }
    );
    let mut header = vec!["#", "pri", "occ", "conf", "lang", "prediction"];
    let mut widths = vec![
        Constraint::Length(4),
        Constraint::Length(3),
        Constraint::Length(4),
        Constraint::Length(4),
        Constraint::Length(8),
        Constraint::Length(18),
    ];
    if why {
        header.push("why");
        widths.push(Constraint::Length(30));
    }
    header.push("text");
    widths.push(Constraint::Fill(1));
    frame.render_widget(
        Table::new(rows, widths)
            .header(Row::new(header).style(theme.title()))
            .block(Block::bordered().title(title)),
        list,
    );

    let body: Vec<Line> = match queue.get(selected) {
        None if data.waiting.total() == 0 => vec![Line::from(Span::styled(
            "The queue is empty: nothing waits for a human. Daily capture fills it with uncertain predictions.",
            theme.good(),
        ))],
        None => vec![Line::from(Span::styled(
            "Every sample shown was skipped or decided here; R reloads the queue.",
            theme.dim(),
        ))],
        Some(q) => {
            let s = &q.sample;
            let field = |name: &str, value: String| {
                Line::from(vec![
                    Span::styled(format!("{name:<11}"), theme.dim()),
                    Span::raw(value),
                ])
            };
            let suspect = q.ranked.item.suspicion().map(|x| {
                Line::from(vec![
                    Span::styled(format!("{:<11}", "suspect"), theme.dim()),
                    Span::styled(
                        format!(
                            "label {} · suspect: model says {} (by {:.2})",
                            s.intent, x.suggested, x.score
                        ),
                        theme.warn(),
                    ),
                ])
            });
            let keys = if suspect.is_some() {
                "a confirm the label · c choose intent · r reject · s skip · u undo"
            } else {
                "a accept · c choose intent · r reject · s skip · u undo"
            };
            let mut lines = vec![Line::from(Span::styled(s.text.clone(), theme.title()))];
            lines.extend(suspect);
            lines.extend([
                field(
                    "prediction",
                    format!(
                        "{}  confidence {}  by {}",
                        s.predicted_intent
                            .clone()
                            .unwrap_or_else(|| s.intent.clone()),
                        s.confidence.map_or("–".into(), |c| format!("{c:.2}")),
                        s.predicted_by_version.clone().unwrap_or_else(|| "–".into())
                    ),
                ),
                field(
                    "language",
                    format!(
                        "{}  occurrences {}  priority {}  since {}",
                        s.language.clone().unwrap_or_else(|| "–".into()),
                        s.occurrences,
                        s.priority,
                        day_time(s.created_at)
                    ),
                ),
                field(
                    "rank",
                    format!(
                        "{} of {}: {}{}",
                        q.ranked.rank,
                        data.waiting.total(),
                        q.ranked.reason,
                        match q.place() {
                            WaitingPlace::Here => "",
                            WaitingPlace::LabelStudio => "  (a task in Label Studio)",
                        }
                    ),
                ),
                Line::from(Span::styled(keys, theme.accent())),
            ]);
            lines
        }
    };
    frame.render_widget(
        Paragraph::new(body)
            .wrap(Wrap { trim: true })
            .block(Block::bordered().title("sample")),
        detail,
    );
}

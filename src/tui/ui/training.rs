//! Training pane: versions with their numbers, training runs, and the live
//! loss / accuracy chart of a training started from the console.

use ratatui::Frame;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::symbols::Marker;
use ratatui::text::{Line, Span};
use ratatui::widgets::{Axis, Block, Chart, Dataset, GraphType, Paragraph, Row, Table};

use super::theme::Theme;
use super::{day_time, percent, took};
use crate::canary;
use crate::storage::model_performance::WindowStats;
use crate::tui::app::App;
use crate::tui::data::{CanaryWatch, Pane, TrainingData};

pub fn draw(frame: &mut Frame, area: Rect, app: &App, theme: &Theme) {
    let Some(data) = &app.training else {
        return super::loading(frame, area, app, Pane::Training, theme);
    };
    let version_rows = (data.versions.len().clamp(1, 8) + 3) as u16;
    let run_rows = (data.runs.len().clamp(1, 5) + 3) as u16;
    let [versions, runs, chart] = Layout::vertical([
        Constraint::Length(version_rows),
        Constraint::Length(run_rows),
        Constraint::Min(3),
    ])
    .areas(area);
    draw_versions(frame, versions, app, data, theme);
    draw_runs(frame, runs, app, data, theme);
    draw_chart(frame, chart, app, data, theme);
}

fn draw_versions(frame: &mut Frame, area: Rect, app: &App, data: &TrainingData, theme: &Theme) {
    let selected = app.cursor[Pane::Training.index()];
    let header = Row::new(vec![
        "version", "status", "test acc", "prod acc", "fallback", "traffic", "created",
    ])
    .style(theme.title());
    let visible = area.height.saturating_sub(3) as usize;
    let skip = selected.saturating_sub(visible.saturating_sub(1));
    let rows: Vec<Row> = app
        .visible_versions()
        .into_iter()
        .enumerate()
        .skip(skip)
        .map(|(i, v)| {
            let perf = data.performance.iter().find(|p| p.version == v.version);
            let production_accuracy = perf
                .and_then(|p| p.production_accuracy)
                .or(v.production_accuracy);
            let fallback = perf.and_then(|p| p.fallback_rate).or(v.fallback_rate);
            let row = Row::new(vec![
                v.version.clone(),
                v.status.to_string(),
                percent(v.test_accuracy),
                percent(production_accuracy),
                percent(fallback),
                format!("{} %", v.traffic_percentage),
                day_time(v.created_at),
            ]);
            if i == selected {
                row.style(theme.selected())
            } else {
                row.style(theme.status_style(v.status.as_str()))
            }
        })
        .collect();
    let title = if data.versions.is_empty() {
        "model versions · none yet: t trains one (or `flywheel serve` bootstraps one)"
    } else {
        "model versions · t train now · p promote selected · b roll back"
    };
    let title = format!("{title}{}", super::filter_note(app, Pane::Training));
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(15),
                Constraint::Length(10),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(8),
                Constraint::Length(7),
                Constraint::Fill(1),
            ],
        )
        .header(header)
        .block(match audits_line(data, theme) {
            Some(audits) => Block::bordered().title(title).title_bottom(audits),
            None => Block::bordered().title(title),
        }),
        area,
    );
}

/// What audits measured, under the versions they measured; a figure whose
/// interval lies below its bar in the warning colour.
fn audits_line(data: &TrainingData, theme: &Theme) -> Option<Line<'static>> {
    let audits = &data.audits;
    let style = |code: &str| {
        if data.audit_warnings.iter().any(|w| w.code == code) {
            theme.warn()
        } else {
            theme.plain()
        }
    };
    let mut spans = vec![Span::raw(" audits")];
    if let Some((version, accuracy)) = audits
        .production
        .as_ref()
        .and_then(|e| e.production_accuracy.map(|a| (&e.version, a)))
    {
        spans.push(Span::raw(format!(" · {version} right on ")));
        spans.push(Span::styled(
            accuracy.describe(),
            style("low-production-accuracy"),
        ));
    }
    if let Some(precision) = audits.auto_approval_precision {
        spans.push(Span::raw(" · auto-approvals right on "));
        spans.push(Span::styled(
            precision.describe(),
            style("low-auto-approval-precision"),
        ));
    }
    if audits.awaiting_label > 0 {
        spans.push(Span::raw(format!(
            " · {} awaiting a label",
            audits.awaiting_label
        )));
    }
    (spans.len() > 1).then(|| {
        spans.push(Span::raw(" "));
        Line::from(spans)
    })
}

fn draw_runs(frame: &mut Frame, area: Rect, app: &App, data: &TrainingData, theme: &Theme) {
    let header = Row::new(vec![
        "started", "version", "status", "epoch", "loss", "acc", "took",
    ])
    .style(theme.title());
    let rows: Vec<Row> = data
        .runs
        .iter()
        .map(|r| {
            Row::new(vec![
                day_time(r.started_at),
                r.version.clone(),
                r.status.clone(),
                match (r.epoch, r.epochs) {
                    (Some(e), Some(n)) => format!("{e}/{n}"),
                    (Some(e), None) => e.to_string(),
                    _ => "–".into(),
                },
                r.loss.map_or("–".into(), |l| format!("{l:.4}")),
                percent(r.accuracy),
                took(r.started_at, r.finished_at, app.now),
            ])
            .style(theme.status_style(&r.status))
        })
        .collect();
    // What the gate judges on sits beside the runs it judged.
    let title = format!(
        "training runs{} · gold {}",
        if data.runs.is_empty() {
            " · none yet"
        } else {
            ""
        },
        data.gold.line()
    );
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(11),
                Constraint::Length(15),
                Constraint::Length(10),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Length(7),
                Constraint::Fill(1),
            ],
        )
        .header(header)
        .block(Block::bordered().title(title)),
        area,
    );
}

fn draw_chart(frame: &mut Frame, area: Rect, app: &App, data: &TrainingData, theme: &Theme) {
    let Some(last) = app.epochs.last() else {
        if let Some(watch) = &data.canary_watch {
            return draw_canary_watch(frame, area, app, watch, theme);
        }
        let text = match data.runs.iter().find(|r| r.status == "running") {
            Some(run) => format!(
                "{} is training (started elsewhere): epoch {} — the chart follows trainings started here",
                run.version,
                run.epoch.map_or("–".into(), |e| e.to_string())
            ),
            None => "No training running. t trains now on all approved samples.".into(),
        };
        frame.render_widget(
            Paragraph::new(Line::from(Span::styled(text, theme.dim())))
                .block(Block::bordered().title("live training")),
            area,
        );
        return;
    };
    let loss: Vec<(f64, f64)> = app
        .epochs
        .iter()
        .map(|p| (p.epoch as f64, p.loss as f64))
        .collect();
    let accuracy: Vec<(f64, f64)> = app
        .epochs
        .iter()
        .filter_map(|p| p.accuracy.map(|a| (p.epoch as f64, a as f64)))
        .collect();
    let max_loss = loss.iter().map(|(_, l)| *l).fold(1.0_f64, f64::max);
    let x_max = last.epochs.max(last.epoch).max(1) as f64;
    let marker = if theme.color {
        Marker::Braille
    } else {
        Marker::Dot
    };
    let datasets = vec![
        Dataset::default()
            .name("loss")
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(theme.warn())
            .data(&loss),
        Dataset::default()
            .name("val acc")
            .marker(marker)
            .graph_type(GraphType::Line)
            .style(theme.good())
            .data(&accuracy),
    ];
    let title = format!(
        "live training · epoch {}/{} · loss {:.4}{}",
        last.epoch,
        last.epochs,
        last.loss,
        last.accuracy
            .map_or(String::new(), |a| format!(" · val acc {:.1}%", a * 100.0))
    );
    frame.render_widget(
        Chart::new(datasets)
            .block(Block::bordered().title(title))
            .hidden_legend_constraints((Constraint::Ratio(1, 2), Constraint::Ratio(1, 2)))
            .x_axis(
                Axis::default()
                    .bounds([1.0, x_max])
                    .labels(["1".to_string(), format!("{x_max:.0}")]),
            )
            .y_axis(
                Axis::default()
                    .bounds([0.0, max_loss])
                    .labels(["0".to_string(), format!("{max_loss:.1}")]),
            ),
        area,
    );
}

/// Canary and production over the same window, side by side.
fn draw_canary_watch(frame: &mut Frame, area: Rect, app: &App, watch: &CanaryWatch, theme: &Theme) {
    let rate = |part: i64, whole: i64| {
        if whole > 0 {
            format!("{:.1}%", part as f64 * 100.0 / whole as f64)
        } else {
            "–".into()
        }
    };
    let column = |s: &WindowStats| {
        vec![
            s.conversations.to_string(),
            format!("{} ({} reviewed)", rate(s.agreed, s.reviewed), s.reviewed),
        ]
    };
    let (c, p) = (column(&watch.canary), column(&watch.production));
    let mut rows: Vec<Row> = ["conversations", "review agreement"]
        .iter()
        .enumerate()
        .map(|(i, name)| Row::new(vec![name.to_string(), c[i].clone(), p[i].clone()]))
        .collect();
    // What `flywheel canary-check` compares, each with its interval and,
    // where it decides on it, the sequential test; then where the rollout
    // stands.
    let (watched, analysis) = &*watch.check;
    for signal in &analysis.signals {
        let test = signal
            .test
            .map(|t| format!(" · {}", t.describe()))
            .unwrap_or_default();
        rows.push(Row::new(vec![
            signal.signal.name().to_string(),
            canary::shown(&signal.canary),
            format!("{}{test}", canary::shown(&signal.production)),
        ]));
    }
    rows.push(Row::new(vec![
        "step".to_string(),
        format!(
            "{} % for {}",
            watched.traffic,
            canary::minutes(watched.minutes_at_step)
        ),
        format!(
            "at least {} per step",
            canary::minutes(watch.min_step_minutes)
        ),
    ]));
    let header = Row::new(vec![
        String::new(),
        format!(
            "canary {} ({} %)",
            watch.canary_version, watch.canary_traffic
        ),
        format!("production {}", watch.production_version),
    ])
    .style(theme.title());
    let title = format!(
        "canary watch since {} ({}) · p raises its traffic · C checks now",
        day_time(watch.since),
        super::ago(watch.since, app.now)
    );
    frame.render_widget(
        Table::new(
            rows,
            [
                Constraint::Length(18),
                Constraint::Fill(1),
                Constraint::Fill(1),
            ],
        )
        .header(header)
        .block(
            Block::bordered()
                .title(title)
                .title_bottom(format!("next check: {}", analysis.decision.describe())),
        ),
        area,
    );
}

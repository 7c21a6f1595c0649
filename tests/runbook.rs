//! The on-call runbook (`docs/runbook.md`) is executable documentation:
//! every `flywheel` command in its ```sh blocks runs here, verbatim, through
//! the real binary, against an embedded SQLite database seeded into the
//! state its scenario describes (a capture gap, a failing Label Studio, an
//! overdue weekly training, a worse canary…), and must exit with the code
//! the runbook gives.
//!
//! How the runbook is read:
//! - A marker comment before a block sets what that block needs:
//!   `<!-- runbook: scenario=no-capture exit=0 stdout="NO CAPTURE" -->`.
//!   `scenario` is sticky (it applies to later blocks until another marker
//!   names another); everything else applies to the next block only:
//!   `exit=N` (each command's exit code; default 0), `stdout="…"` /
//!   `stderr="…"` (must appear in what the block's commands printed; may
//!   repeat), `lacks="…"` (must not appear on their stdout),
//!   `env=KEY=VALUE`, `unset=KEY`, `hold-lock=STAGE` (a cron run of STAGE
//!   is still going: its `job_runs` row and its lock), `background` (a
//!   long-running command such as `serve`: started, fed one classify
//!   request, stopped with SIGTERM at the end of its scenario),
//!   `min-rows=N` (SQL blocks), `pane=NAME [size=WxH]` (the next ```text
//!   block is an excerpt of that console pane).
//! - Every non-comment line of an ```sh block must be a `flywheel` command;
//!   it runs through `bash -o pipefail -c` with the binary first on PATH
//!   (so a pipe into `jq` runs as the operator would run it). System
//!   commands (`crontab -l`, `systemctl …`, `curl`) belong in ```bash
//!   blocks, which are not run; a `flywheel` command there fails this test,
//!   as does a `$ flywheel` prompt line in any other block.
//! - Commands that open the console (`flywheel`, `flywheel tui`) are not
//!   started: their `--help` must parse.
//! - ```sql blocks run against the scenario's database.
//! - A pane excerpt is checked against the pane drawn (ratatui's
//!   TestBackend, default 80x24) from the scenario's database at that
//!   point: every excerpt line must be on one screen row, spacing aside,
//!   `...` standing for anything.
//! - Every `flywheel …` in inline code in the prose must name a real
//!   subcommand, and every `--flag` it shows must be in that subcommand's
//!   `--help`.
//!
//! Scenarios run in parallel, each in its own data dir copied from one
//! bootstrapped template. Set `RUNBOOK_SHOW=1` to run them one by one and
//! print every command's output and every pane (to copy into the runbook).

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration as StdDuration, Instant};

use chrono::{DateTime, Duration, Utc};
use flywheel::config::Config;
use flywheel::config::Secret;
use flywheel::jobs::{self, Launch, Trigger};
use flywheel::lifecycle::{self, Target};
use flywheel::review::label_studio::{ClientOptions, LabelStudioClient};
use flywheel::stages::daily_capture::{DailyCapture, Window};
use flywheel::stages::label_studio_sync::LabelStudioSync;
use flywheel::storage::conversations::NewConversation;
use flywheel::storage::models::NewModelVersion;
use flywheel::storage::{Store, Timestamp};
use flywheel::tui::app::App;
use flywheel::tui::data::Pane;
use flywheel::tui::event::UiEvent;
use flywheel::tui::refresh::Loader;
use flywheel::tui::ui::{self, theme::Theme};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use support::backends::try_row_count;
use support::environment::isolate;
use support::{block_on, exec, scalar};

const RUNBOOK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/runbook.md");

/// The issue's five on-call situations, and a host's first install and
/// upgrade (issue 21): the runbook must keep covering them.
const REQUIRED_SCENARIOS: [&str; 7] = [
    "no-capture",
    "capture-half",
    "label-studio-down",
    "training-missed",
    "canary-worse",
    "first-install",
    "upgrade",
];

/// Scenarios on a data dir of their own rather than a copy of the
/// bootstrapped template: a host before its first install, and a database
/// at an earlier schema version.
const FRESH_SCENARIOS: [&str; 2] = ["first-install", "upgrade"];

// ---------------------------------------------------------------- parsing

#[derive(Debug, Clone, Default)]
struct Expect {
    exit: i32,
    stdout: Vec<String>,
    stderr: Vec<String>,
    lacks: Vec<String>,
    env: Vec<(String, String)>,
    unset: Vec<String>,
    background: bool,
    min_rows: Option<usize>,
    /// A ```text block that is an excerpt of this console pane.
    pane: Option<String>,
    size: Option<(u16, u16)>,
    /// Another run of this stage holds its lock during the block.
    hold_lock: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Shell,
    Sql,
    Screen,
}

#[derive(Debug, Clone)]
struct Step {
    /// 1-based line in the runbook.
    line: usize,
    /// Line of the block's opening fence.
    block: usize,
    text: String,
    scenario: String,
    kind: Kind,
    expect: Expect,
}

#[derive(Debug, Default)]
struct Runbook {
    steps: Vec<Step>,
    /// `flywheel …` spans of inline code in the prose, with their line.
    inline: Vec<(usize, String)>,
}

/// `key=value key="quoted value" flag` → pairs (a flag has an empty value).
fn attributes(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(out);
        }
        let mut key = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c.is_whitespace() {
                break;
            }
            key.push(c);
            chars.next();
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            if chars.peek() == Some(&'"') {
                chars.next();
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => value.extend(chars.next()),
                        Some(c) => value.push(c),
                        None => return Err(format!("unterminated quote after {key}=")),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c.is_whitespace() {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((key, value));
    }
}

fn parse_marker(body: &str) -> Result<(Option<String>, Expect), String> {
    let mut scenario = None;
    let mut e = Expect::default();
    for (key, value) in attributes(body)? {
        match key.as_str() {
            "scenario" => scenario = Some(value),
            "exit" => e.exit = value.parse().map_err(|_| format!("exit={value}"))?,
            "stdout" => e.stdout.push(value),
            "stderr" => e.stderr.push(value),
            "lacks" => e.lacks.push(value),
            "env" => {
                let (k, v) = value
                    .split_once('=')
                    .ok_or_else(|| format!("env={value} needs KEY=VALUE"))?;
                e.env.push((k.into(), v.into()));
            }
            "unset" => e.unset.push(value),
            "background" => e.background = true,
            "pane" => e.pane = Some(value),
            "hold-lock" => e.hold_lock = Some(value),
            "size" => {
                let (w, h) = value
                    .split_once('x')
                    .and_then(|(w, h)| Some((w.parse().ok()?, h.parse().ok()?)))
                    .ok_or_else(|| format!("size={value} needs WIDTHxHEIGHT"))?;
                e.size = Some((w, h));
            }
            "min-rows" => {
                e.min_rows = Some(value.parse().map_err(|_| format!("min-rows={value}"))?)
            }
            other => return Err(format!("unknown marker key `{other}`")),
        }
    }
    Ok((scenario, e))
}

fn is_flywheel_command(line: &str) -> bool {
    line == "flywheel" || line.starts_with("flywheel ")
}

/// Inline code spans of one prose line.
fn code_spans(line: &str) -> Vec<&str> {
    let mut spans = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find('`') {
        let after = &rest[start + 1..];
        let Some(end) = after.find('`') else { break };
        spans.push(&after[..end]);
        rest = &after[end + 1..];
    }
    spans
}

fn parse(doc: &str) -> (Runbook, Vec<String>) {
    let lines: Vec<&str> = doc.lines().collect();
    let mut book = Runbook::default();
    let mut problems = Vec::new();
    let mut scenario: Option<String> = None;
    let mut pending: Option<(usize, Expect)> = None;
    let mut i = 0;
    while i < lines.len() {
        let t = lines[i].trim();
        if let Some(body) = t.strip_prefix("<!-- runbook:") {
            let Some(body) = body.strip_suffix("-->") else {
                problems.push(format!("line {}: marker must end with -->", i + 1));
                i += 1;
                continue;
            };
            if let Some((at, _)) = &pending {
                problems.push(format!("line {at}: marker not followed by a code block"));
            }
            match parse_marker(body) {
                Ok((s, e)) => {
                    if s.is_some() {
                        scenario = s;
                    }
                    pending = Some((i + 1, e));
                }
                Err(err) => problems.push(format!("line {}: {err}", i + 1)),
            }
            i += 1;
            continue;
        }
        if let Some(lang) = t.strip_prefix("```") {
            let lang = lang.trim().to_string();
            let open = i + 1;
            i += 1;
            let mut body = Vec::new();
            while i < lines.len() && lines[i].trim() != "```" {
                body.push((i + 1, lines[i]));
                i += 1;
            }
            i += 1; // the closing fence
            let marker = pending.take();
            match lang.as_str() {
                "sh" | "sql" => {
                    let Some(scenario) = scenario.clone() else {
                        problems.push(format!(
                            "line {open}: a ```{lang} block before any scenario marker"
                        ));
                        continue;
                    };
                    let expect = marker.map(|(_, e)| e).unwrap_or_default();
                    if lang == "sh" {
                        let mut joined: Option<(usize, String)> = None;
                        for (n, raw) in body {
                            let t = raw.trim();
                            let (start, text) = match joined.take() {
                                Some((start, mut text)) => {
                                    text.push(' ');
                                    text.push_str(t);
                                    (start, text)
                                }
                                None => (n, t.to_string()),
                            };
                            if let Some(head) = text.strip_suffix('\\') {
                                joined = Some((start, head.trim_end().to_string()));
                                continue;
                            }
                            if text.is_empty() || text.starts_with('#') {
                                continue;
                            }
                            if !is_flywheel_command(&text) {
                                problems.push(format!(
                                    "line {start}: `{text}` in an sh block is not a flywheel command \
                                     (system commands go in ```bash blocks)"
                                ));
                                continue;
                            }
                            book.steps.push(Step {
                                line: start,
                                block: open,
                                text,
                                scenario: scenario.clone(),
                                kind: Kind::Shell,
                                expect: expect.clone(),
                            });
                        }
                    } else {
                        let sql: String = body
                            .iter()
                            .filter(|(_, l)| !l.trim_start().starts_with("--"))
                            .map(|(_, l)| format!("{l}\n"))
                            .collect();
                        for statement in sql.split(';').map(str::trim).filter(|s| !s.is_empty()) {
                            book.steps.push(Step {
                                line: open,
                                block: open,
                                text: statement.to_string(),
                                scenario: scenario.clone(),
                                kind: Kind::Sql,
                                expect: expect.clone(),
                            });
                        }
                    }
                }
                "text" if marker.as_ref().is_some_and(|(_, e)| e.pane.is_some()) => {
                    let Some(scenario) = scenario.clone() else {
                        problems.push(format!("line {open}: a screen before any scenario marker"));
                        continue;
                    };
                    let expect = marker.map(|(_, e)| e).unwrap_or_default();
                    let text: String = body.iter().map(|(_, l)| format!("{l}\n")).collect();
                    book.steps.push(Step {
                        line: open,
                        block: open,
                        text,
                        scenario,
                        kind: Kind::Screen,
                        expect,
                    });
                }
                other => {
                    if let Some((at, _)) = marker {
                        problems.push(format!(
                            "line {at}: a marker before a ```{other} block (only sh, sql and pane blocks are checked)"
                        ));
                    }
                    for (n, raw) in body {
                        let t = raw.trim();
                        let first = t.split_whitespace().next().unwrap_or("");
                        if (other == "bash" && first == "flywheel") || t.starts_with("$ flywheel") {
                            problems.push(format!(
                                "line {n}: `{t}` is a flywheel command outside an sh block, so no test runs it"
                            ));
                        }
                    }
                }
            }
            continue;
        }
        if !t.is_empty() {
            if let Some((at, _)) = pending.take() {
                problems.push(format!("line {at}: marker not followed by a code block"));
            }
            for span in code_spans(lines[i]) {
                if is_flywheel_command(span.trim()) {
                    book.inline.push((i + 1, span.trim().to_string()));
                }
            }
        }
        i += 1;
    }
    if let Some((at, _)) = pending {
        problems.push(format!("line {at}: marker not followed by a code block"));
    }
    (book, problems)
}

/// Whitespace split honouring single and double quotes (enough to find the
/// subcommand of a command line; the shell does the real parsing).
fn words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in line.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => current.push(c),
            (None, '"' | '\'') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                    any = false;
                }
            }
            (None, c) => current.push(c),
        }
    }
    if any || !current.is_empty() {
        out.push(current);
    }
    out
}

/// Whether a command line opens the console: no subcommand, or `tui`.
fn opens_console(line: &str) -> bool {
    let w = words(line.split('|').next().unwrap_or(line));
    let mut rest = w.iter().skip(1);
    while let Some(word) = rest.next() {
        match word.as_str() {
            "--data-dir" | "--database-url" | "--config" | "--trigger" => {
                rest.next();
            }
            // print and exit before anything opens
            "--version" | "-V" | "--help" | "-h" => return false,
            w if w.starts_with('-') => {}
            w => return w == "tui",
        }
    }
    true
}

// ---------------------------------------------------------------- scenarios

/// Lines of the built-in seed set: realistic utterances with their intent.
fn seed_lines() -> Vec<(String, String, Option<String>)> {
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/assets/seed/seed.jsonl"
    ))
    .unwrap();
    text.lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["text"].as_str().unwrap_or_default().to_string(),
                v["intent"].as_str().unwrap_or_default().to_string(),
                v["language"].as_str().map(str::to_string),
            )
        })
        .collect()
}

/// Traffic of one provider: a conversation every `step` from `from` to `to`.
struct Traffic<'a> {
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    step: Duration,
    provider: &'a str,
    /// Which version answered conversation `k` at time `t`.
    version: &'a (dyn Fn(usize, DateTime<Utc>) -> &'static str + Sync),
    /// Whether conversation `k` of `version` fell back.
    fallback: &'a (dyn Fn(usize, &str) -> bool + Sync),
}

async fn capture(store: &Store, seeds: &[(String, String, Option<String>)], t: Traffic<'_>) {
    let mut rows = Vec::new();
    let mut at = t.from;
    let mut k = 0usize;
    while at < t.to {
        let (text, intent, language) = &seeds[(k * 7919) % 400];
        let version = (t.version)(k, at);
        let fallback = (t.fallback)(k, version);
        // ~65 % confident enough to be auto-approved, the rest to review.
        let confidence = if fallback {
            0.35
        } else if k % 20 < 13 {
            0.86 + (k % 13) as f64 / 100.0
        } else {
            0.55 + (k % 7) as f64 * 0.04
        };
        rows.push(NewConversation {
            created_at: Timestamp::from(at),
            session_id: Some(format!("s-{}", k % 97)),
            user_hash: None,
            user_message: with_suffix(text, k),
            language: language.clone(),
            nlu_intent: Some(if fallback {
                "oos".into()
            } else {
                intent.clone()
            }),
            nlu_confidence: Some(confidence),
            nlu_provider: Some(t.provider.to_string()),
            model_version: Some(version.to_string()),
            fallback,
            routing_decision: None,
            classify_ms: None,
            classify_error: None,
        });
        if rows.len() == 2000 {
            store.insert_conversations(&rows).await.unwrap();
            rows.clear();
        }
        at += t.step;
        k += 1;
    }
    store.insert_conversations(&rows).await.unwrap();
}

/// A seed utterance as a user would vary it, so that it is a new sample
/// rather than a repeat of the seed set the bootstrap model learnt from.
fn with_suffix(text: &str, k: usize) -> String {
    let suffix = if k.is_multiple_of(2) { "please" } else { "now" };
    if text.ends_with(suffix) {
        format!("{text} jaldi")
    } else {
        format!("{text} {suffix}")
    }
}

fn v1(_: usize, _: DateTime<Utc>) -> &'static str {
    "router-v1.0.0"
}

fn rarely(k: usize, _: &str) -> bool {
    k % 25 == 7
}

/// `UPDATE … SET col = <timestamp>` on SQLite.
fn ts(t: DateTime<Utc>) -> String {
    format!("'{}'", t.format("%Y-%m-%dT%H:%M:%S%.3fZ"))
}

async fn run_daily_capture(store: &Store, config: &Config, since: Duration) {
    let stage = DailyCapture {
        window: Window::Since(since),
        dry_run: false,
        batch_size: 5000,
    };
    jobs::run(stage, &Launch::new(store, config, Trigger::Cron))
        .await
        .unwrap();
}

/// A successful cron run of `stage` at `at` that took `seconds`.
async fn record_run(store: &Store, stage: &str, at: DateTime<Utc>, seconds: i64) {
    let stage_kind = flywheel::domain::Stage::parse(stage).expect("a stage");
    let run = store
        .insert_job_run(stage_kind, Trigger::Cron, None, None)
        .await
        .unwrap();
    store
        .finish_job_run(
            run.id,
            flywheel::domain::JobStatus::Succeeded,
            Some("{}"),
            None,
        )
        .await
        .unwrap();
    backdate_run(store, stage, at, seconds).await;
}

/// Move the newest run of `stage` to `at` (it took `seconds`).
async fn backdate_run(store: &Store, stage: &str, at: DateTime<Utc>, seconds: i64) {
    exec(
        store,
        &format!(
            "UPDATE job_runs SET started_at = {}, finished_at = {} \
             WHERE id = (SELECT MAX(id) FROM job_runs WHERE stage = '{stage}')",
            ts(at),
            ts(at + Duration::seconds(seconds))
        ),
    )
    .await;
}

/// The usual day: 48 h of traffic (until `until`), a cron daily capture six
/// hours ago that processed everything before it, the bootstrap weekly
/// training three days ago.
async fn usual_history(
    store: &Store,
    config: &Config,
    seeds: &[(String, String, Option<String>)],
    until: DateTime<Utc>,
    version: &(dyn Fn(usize, DateTime<Utc>) -> &'static str + Sync),
    fallback: &(dyn Fn(usize, &str) -> bool + Sync),
) {
    let now = Utc::now();
    let capture_at = now - Duration::hours(6);
    let traffic = |from, to| Traffic {
        from,
        to,
        step: Duration::seconds(120),
        provider: "flywheel-router",
        version,
        fallback,
    };
    capture(
        store,
        seeds,
        traffic(now - Duration::hours(48), capture_at.min(until)),
    )
    .await;
    run_daily_capture(store, config, Duration::days(3)).await;
    backdate_run(store, "daily-capture", capture_at, 3).await;
    if until > capture_at {
        capture(store, seeds, traffic(capture_at, until)).await;
    }
    backdate_run(store, "weekly-training", now - Duration::days(3), 40).await;
    // cron's hourly canary check, last at :15.
    record_run(store, "canary-check", now - Duration::minutes(20), 1).await;
}

/// What a scenario starts from, besides its database.
#[derive(Default)]
struct Setup {
    env: Vec<(String, String)>,
}

/// A port on 127.0.0.1 that nothing listens on.
fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn seed(name: &str, config: &Config, home: &Path) -> Option<Setup> {
    let seeds = seed_lines();
    let now = Utc::now();
    let mut setup = Setup::default();
    // `flywheel serve` listens on a free port wherever the runbook starts it.
    setup
        .env
        .push(("FLYWHEEL_SERVE__ADDR".into(), "127.0.0.1:0".into()));
    // Who the audit trail names for lifecycle changes made in the runbook.
    setup.env.push(("USER".into(), "oncall".into()));
    match name {
        // A new host: nothing installed yet.
        "first-install" => return Some(setup),
        // A database left at an earlier schema by the binary being replaced.
        "upgrade" => {
            let config = config.clone();
            block_on(async move {
                let store = flywheel::storage::open_unmigrated(
                    &config,
                    flywheel::storage::OpenMode::Create,
                )
                .await
                .unwrap();
                let older = (flywheel::storage::newest_schema_version() - 2).max(1);
                store.migrate_with(Some(older), &mut |_| {}).await.unwrap();
                store.close().await;
            });
            return Some(setup);
        }
        _ => {}
    }
    let config = config.clone();
    let home = home.to_path_buf();
    let name = name.to_string();
    let known = block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let usual = |until| usual_history(&store, &config, &seeds, until, &v1, &rarely);
        match name.as_str() {
            // The usual week, until a minute ago.
            "first-five-minutes" | "label-studio-down" => {
                usual(now - Duration::minutes(1)).await;
            }
            "no-capture" => usual(now - Duration::hours(3)).await,
            "capture-half" => {
                // Two sources for a week, each a conversation every 2 min;
                // the PHP service's forwarder stopped 20 h ago.
                for (provider, offset, until) in [
                    ("flywheel-router", 0, now - Duration::minutes(1)),
                    ("php-nlu", 60, now - Duration::hours(20)),
                ] {
                    capture(
                        &store,
                        &seeds,
                        Traffic {
                            from: now - Duration::days(8) + Duration::seconds(offset),
                            to: until,
                            step: Duration::seconds(120),
                            provider,
                            version: &v1,
                            fallback: &rarely,
                        },
                    )
                    .await;
                }
                run_daily_capture(&store, &config, Duration::days(9)).await;
                backdate_run(&store, "daily-capture", now - Duration::hours(6), 3).await;
                backdate_run(&store, "weekly-training", now - Duration::days(3), 40).await;
                record_run(&store, "canary-check", now - Duration::minutes(20), 1).await;
                // What the PHP service kept while its forwarder was down.
                let mut missed = String::new();
                let mut at = now - Duration::hours(20);
                for (k, (text, intent, language)) in seeds.iter().skip(500).take(30).enumerate() {
                    let record = serde_json::json!({
                        "user_message": with_suffix(text, k),
                        "nlu_intent": intent,
                        "nlu_confidence": 0.7 + (k % 3) as f64 / 10.0,
                        "nlu_provider": "php-nlu",
                        "language": language,
                        "created_at": at.to_rfc3339(),
                    });
                    missed.push_str(&format!("{record}\n"));
                    at += Duration::minutes(2);
                }
                std::fs::write(home.join("missed.jsonl"), missed).unwrap();
                // The same, as a careless export: the second line has no text.
                std::fs::write(
                    home.join("broken.jsonl"),
                    "{\"user_message\": \"where is my order\", \"nlu_intent\": \"track_order\", \"nlu_confidence\": 0.91, \"nlu_provider\": \"php-nlu\"}\n\
                     {\"nlu_intent\": \"track_order\", \"nlu_confidence\": 0.91, \"nlu_provider\": \"php-nlu\"}\n",
                )
                .unwrap();
            }
            "training-missed" => {
                usual(now - Duration::minutes(1)).await;
                // The bootstrap training was the last weekly-training run: 9 days ago.
                backdate_run(&store, "weekly-training", now - Duration::days(9), 40).await;
            }
            "canary-worse" | "bad-production" => {
                let v11 = "router-v1.1.0";
                let artifact = store
                    .list_model_versions()
                    .await
                    .unwrap()
                    .into_iter()
                    .find(|m| m.version == "router-v1.0.0")
                    .and_then(|m| m.artifact_path);
                store
                    .insert_model_version(
                        &NewModelVersion {
                            version: v11.into(),
                            status: flywheel::domain::ModelStatus::Testing,
                            artifact_path: artifact,
                            train_samples: Some(1610),
                            test_samples: Some(270),
                            test_accuracy: Some(0.962),
                            traffic_percentage: 0,
                            metrics: None,
                        },
                        "oncall@ops-1",
                    )
                    .await
                    .unwrap();
                // Registered by last Sunday's weekly training.
                exec(
                    &store,
                    &format!(
                        "UPDATE model_transitions SET at = {} WHERE version = '{v11}'",
                        ts(now - Duration::days(3))
                    ),
                )
                .await;
                let canary_since = now - Duration::hours(20);
                let before =
                    scalar(&store, "SELECT COALESCE(MAX(id), 0) FROM model_transitions").await;
                lifecycle::promote(&store, v11, Target::Canary { traffic: 10 }, "alice@ops-1")
                    .await
                    .unwrap();
                exec(
                    &store,
                    &format!(
                        "UPDATE model_versions SET canary_at = {} WHERE version = '{v11}'",
                        ts(canary_since)
                    ),
                )
                .await;
                exec(
                    &store,
                    &format!(
                        "UPDATE model_transitions SET at = {} WHERE id > {before}",
                        ts(canary_since)
                    ),
                )
                .await;
                let production = name == "bad-production";
                if production {
                    let promoted = now - Duration::hours(4);
                    let before =
                        scalar(&store, "SELECT COALESCE(MAX(id), 0) FROM model_transitions").await;
                    lifecycle::promote(&store, v11, Target::Production, "alice@ops-1")
                        .await
                        .unwrap();
                    exec(
                        &store,
                        &format!(
                            "UPDATE model_versions SET production_at = {} WHERE version = '{v11}'",
                            ts(promoted)
                        ),
                    )
                    .await;
                    exec(
                        &store,
                        &format!(
                            "UPDATE model_transitions SET at = {} WHERE id > {before}",
                            ts(promoted)
                        ),
                    )
                    .await;
                }
                let version = move |k: usize, t: DateTime<Utc>| {
                    if (production && t >= now - Duration::hours(4))
                        || (t >= canary_since && k % 10 == 3)
                    {
                        "router-v1.1.0"
                    } else {
                        "router-v1.0.0"
                    }
                };
                // The new version falls back on a quarter of its conversations.
                let fallback = |k: usize, v: &str| {
                    if v == "router-v1.1.0" {
                        (k / 10).is_multiple_of(4)
                    } else {
                        k % 25 == 7
                    }
                };
                usual_history(
                    &store,
                    &config,
                    &seeds,
                    now - Duration::minutes(1),
                    &version,
                    &fallback,
                )
                .await;
                exec(&store, "UPDATE conversation_logs SET feedback = 'negative' WHERE model_version = 'router-v1.1.0' AND id % 11 = 0").await;
                exec(&store, "UPDATE conversation_logs SET feedback = 'negative' WHERE model_version = 'router-v1.0.0' AND id % 97 = 0").await;
                // Reviewers agreed with production 37 times in 40, with the canary 11 in 20.
                let reviewed_at = ts(now - Duration::hours(2));
                for (i, (v, status, corrected)) in
                    std::iter::repeat_n(("router-v1.0.0", "approved", None), 37)
                        .chain(std::iter::repeat_n(
                            ("router-v1.0.0", "approved", Some("track_order")),
                            3,
                        ))
                        .chain(std::iter::repeat_n((v11, "approved", None), 11))
                        .chain(std::iter::repeat_n(
                            (v11, "approved", Some("track_order")),
                            6,
                        ))
                        .chain(std::iter::repeat_n((v11, "rejected", None), 3))
                        .enumerate()
                {
                    let (text, intent, _) = &seeds[900 + i];
                    let t = format!("{text} (review {i})").replace('\'', "''");
                    exec(&store, &format!(
                        "INSERT INTO training_samples (text, normalized_text, intent, language, source, review_status, priority, predicted_intent, predicted_by_version, corrected_from, annotator, reviewed_at) \
                         VALUES ('{t}', '{t}', '{intent}', 'en', 'human', '{status}', 5, '{intent}', '{v}', {}, 'reviewer@ops', {reviewed_at})",
                        corrected.map_or("NULL".to_string(), |c| format!("'{c}'"))
                    )).await;
                }
            }
            _ => {
                store.close().await;
                return false;
            }
        }
        store.close().await;
        true
    });
    if !known {
        return None;
    }
    Some(setup)
}

// ---------------------------------------------------------------- running

struct Scenario {
    home: tempfile::TempDir,
    data: PathBuf,
    env: Vec<(String, String)>,
    path: String,
    background: Vec<(Step, Child, mpsc::Receiver<String>)>,
}

impl Scenario {
    fn data_config(data: &Path) -> Config {
        Config {
            data_dir: data.to_path_buf(),
            ..Config::default()
        }
    }

    fn command(&self, program: &str, args: &[&str], expect: &Expect) -> Command {
        let mut cmd = Command::new(program);
        cmd.args(args);
        isolate(&mut cmd, self.home.path());
        cmd.env("FLYWHEEL_HOME", &self.data)
            .env("PATH", &self.path)
            .env("NO_COLOR", "1");
        for (k, v) in self.env.iter().chain(&expect.env) {
            cmd.env(k, v);
        }
        for k in &expect.unset {
            cmd.env_remove(k);
        }
        cmd
    }
}

fn show(step: &Step, out: &Output) {
    if std::env::var_os("RUNBOOK_SHOW").is_some() {
        eprintln!(
            "---- [{}] line {}: {}\nexit {:?}\n-- stdout\n{}-- stderr\n{}",
            step.scenario,
            step.line,
            step.text,
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn check_exit(step: &Step, code: Option<i32>, stdout: &str, stderr: &str) -> Vec<String> {
    if code == Some(step.expect.exit) {
        return Vec::new();
    }
    vec![format!(
        "runbook line {} [{}] `{}`: exited {code:?}, the runbook says {}\nstdout:\n{stdout}\nstderr:\n{stderr}",
        step.line, step.scenario, step.text, step.expect.exit
    )]
}

/// The quoted output of a block: somewhere in what its commands printed.
fn check_output(step: &Step, stdout: &str, stderr: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let at = format!("runbook block at line {} [{}]", step.block, step.scenario);
    for want in &step.expect.stdout {
        if !stdout.contains(want.as_str()) {
            problems.push(format!(
                "{at}: stdout lacks {want:?}\nstdout:\n{stdout}\nstderr:\n{stderr}"
            ));
        }
    }
    for want in &step.expect.stderr {
        if !stderr.contains(want.as_str()) {
            problems.push(format!("{at}: stderr lacks {want:?}\nstderr:\n{stderr}"));
        }
    }
    for unwanted in &step.expect.lacks {
        if stdout.contains(unwanted.as_str()) {
            problems.push(format!("{at}: stdout has {unwanted:?}\nstdout:\n{stdout}"));
        }
    }
    problems
}

/// One HTTP/1.1 request to `serve`; the status code.
fn post(addr: &str, path: &str, body: &str) -> Option<u16> {
    let mut stream = std::net::TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(StdDuration::from_secs(10)))
        .ok()?;
    write!(
        stream,
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    response.split_whitespace().nth(1)?.parse().ok()
}

/// Start a long-running command (`serve`), wait until it listens and feed
/// it one classify request, as the upstream traffic would.
fn start_background(
    scenario: &Scenario,
    step: &Step,
) -> Result<(Child, mpsc::Receiver<String>), String> {
    let line = format!("exec {}", step.text);
    let mut child = scenario
        .command("bash", &["-c", &line], &step.expect)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| e.to_string())?;
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + StdDuration::from_secs(30);
    let addr = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(l) => {
                if let Some(addr) = l.split("listening on http://").nth(1) {
                    break addr.trim().to_string();
                }
            }
            Err(_) => {
                let _ = child.kill();
                return Err(format!(
                    "runbook line {} `{}`: never said it was listening",
                    step.line, step.text
                ));
            }
        }
    };
    let deadline = Instant::now() + StdDuration::from_secs(20);
    loop {
        let status = post(
            &addr,
            "/nlu/classify",
            r#"{"text": "where is my biryani order", "sessionId": "runbook"}"#,
        );
        if status == Some(200) {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            return Err(format!(
                "runbook line {} `{}`: classify answered {status:?}",
                step.line, step.text
            ));
        }
        std::thread::sleep(StdDuration::from_millis(200));
    }
    Ok((child, rx))
}

fn stop_background(step: &Step, mut child: Child, rx: mpsc::Receiver<String>) -> Vec<String> {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + StdDuration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            break None;
        }
        std::thread::sleep(StdDuration::from_millis(50));
    };
    let stdout: String = rx.try_iter().map(|l| format!("{l}\n")).collect();
    let mut problems = check_exit(step, status.and_then(|s| s.code()), &stdout, "");
    problems.extend(check_output(step, &stdout, ""));
    problems
}

fn run_sql(scenario: &Scenario, step: &Step) -> Vec<String> {
    let config = Scenario::data_config(&scenario.data);
    let sql = step.text.clone();
    let rows = block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let result = try_row_count(&store, &sql).await;
        store.close().await;
        result.map_err(|e| e.to_string())
    });
    match rows {
        Err(err) => vec![format!(
            "runbook line {} [{}]: SQL failed: {err}\n{}",
            step.line, step.scenario, step.text
        )],
        Ok(n) if n < step.expect.min_rows.unwrap_or(0) => vec![format!(
            "runbook line {} [{}]: SQL returned {n} row(s), expected at least {}\n{}",
            step.line,
            step.scenario,
            step.expect.min_rows.unwrap_or(0),
            step.text
        )],
        Ok(_) => Vec::new(),
    }
}

/// The console's pane as it would be drawn now for this scenario's data.
fn render_pane(scenario: &Scenario, pane: Pane, width: u16, height: u16) -> Vec<String> {
    let mut config = Scenario::data_config(&scenario.data);
    let var = |key: &str| {
        scenario
            .env
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.clone())
    };
    config.label_studio.url = var("LABEL_STUDIO_URL");
    config.label_studio.api_key = var("LABEL_STUDIO_API_KEY").map(Secret::new);
    block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let now = Utc::now();
        let mut loader = Loader::new(store.clone(), config.clone());
        let mut app = App::new(now, 10);
        for p in Pane::ALL {
            let data = loader.load(p, now).await.unwrap();
            app.apply(UiEvent::Loaded { data, at: now });
        }
        // (Label Studio's connection probe is left out: against a dead
        // server it takes the client's 7 s of retries; the pane says
        // "checking…" meanwhile.)
        app.pane = pane;
        let mut terminal = Terminal::new(TestBackend::new(width, height)).unwrap();
        terminal
            .draw(|frame| ui::draw(frame, &app, &Theme { color: false }))
            .unwrap();
        store.close().await;
        let buffer = terminal.backend().buffer().clone();
        (0..height)
            .map(|y| {
                (0..width)
                    .filter_map(|x| buffer.cell((x, y)).map(|c| c.symbol().to_string()))
                    .collect()
            })
            .collect()
    })
}

/// Runs of spaces as one: column widths are the pane's business.
fn squeeze(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Every line of the excerpt is on the screen (spacing aside); `...` stands for anything
/// within one line (a time, a count that depends on when the test runs).
fn check_screen(scenario: &Scenario, step: &Step) -> Vec<String> {
    let name = step.expect.pane.as_deref().unwrap_or_default();
    let Some(pane) = Pane::ALL.into_iter().find(|p| {
        p.title()
            .to_lowercase()
            .replace(" & ", "-")
            .replace(' ', "-")
            == name
    }) else {
        return vec![format!(
            "runbook line {}: pane={name} is not a pane (capture, review, label-studio, training, jobs-logs)",
            step.line
        )];
    };
    let (width, height) = step.expect.size.unwrap_or((80, 24));
    let screen = render_pane(scenario, pane, width, height);
    if std::env::var_os("RUNBOOK_SHOW").is_some() {
        eprintln!(
            "---- [{}] line {}: pane {name} at {width}x{height}\n{}",
            step.scenario,
            step.line,
            screen.join("\n")
        );
    }
    let mut problems = Vec::new();
    for want in step.text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let found = screen.iter().any(|row| {
            let row = squeeze(row);
            let mut rest = row.as_str();
            want.split("...")
                .map(squeeze)
                .filter(|f| !f.is_empty())
                .all(|fragment| match rest.find(fragment.as_str()) {
                    Some(i) => {
                        rest = &rest[i + fragment.len()..];
                        true
                    }
                    None => false,
                })
        });
        if !found {
            problems.push(format!(
                "runbook line {} [{}]: the {name} pane ({width}x{height}) has no line like {want:?}:\n{}",
                step.line,
                step.scenario,
                screen.join("\n")
            ));
        }
    }
    problems
}

/// What one step printed, for the checks of its block.
#[derive(Default)]
struct Printed {
    stdout: String,
    stderr: String,
}

fn run_step(scenario: &mut Scenario, step: &Step, printed: &mut Printed) -> Vec<String> {
    if step.kind == Kind::Sql {
        return run_sql(scenario, step);
    }
    if step.kind == Kind::Screen {
        return check_screen(scenario, step);
    }
    if step.expect.background {
        return match start_background(scenario, step) {
            Ok((child, rx)) => {
                scenario.background.push((step.clone(), child, rx));
                Vec::new()
            }
            Err(err) => vec![err],
        };
    }
    if opens_console(&step.text) {
        // Never start the console here: its flags must parse.
        let line = format!("{} --help", step.text);
        let out = scenario
            .command("bash", &["-o", "pipefail", "-c", &line], &step.expect)
            .output()
            .unwrap();
        show(step, &out);
        let help = String::from_utf8_lossy(&out.stdout);
        if !out.status.success() || !help.contains("Usage: flywheel") {
            return vec![format!(
                "runbook line {} `{}`: `--help` did not parse ({:?})\n{}{}",
                step.line,
                step.text,
                out.status.code(),
                help,
                String::from_utf8_lossy(&out.stderr)
            )];
        }
        return Vec::new();
    }
    let out = scenario
        .command("bash", &["-o", "pipefail", "-c", &step.text], &step.expect)
        .output()
        .unwrap();
    show(step, &out);
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    printed.stdout.push_str(&stdout);
    printed.stderr.push_str(&stderr);
    check_exit(step, out.status.code(), &stdout, &stderr)
}

/// The data dir every scenario starts from: the bootstrap model
/// `router-v1.0.0` trained from the seed set and in production.
fn template() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let config = Scenario::data_config(dir.path());
    block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let launch = Launch::new(&store, &config, Trigger::Cron);
        let outcome = flywheel::stages::bootstrap::ensure_production_model(&launch)
            .await
            .unwrap();
        assert!(
            matches!(
                outcome,
                flywheel::stages::bootstrap::BootstrapOutcome::Deployed { .. }
            ),
            "{outcome:?}"
        );
        // The installation is a month old: serve bootstrapped it.
        let month = ts(Utc::now() - Duration::days(30));
        for sql in [
            format!(
                "UPDATE model_transitions SET at = {month}, actor = 'flywheel@prod-1' WHERE actor NOT LIKE 'flywheel-%'"
            ),
            format!("UPDATE model_transitions SET at = {month}"),
            format!(
                "UPDATE model_versions SET created_at = {month}, updated_at = {month}, tested_at = {month}, production_at = {month}"
            ),
            format!(
                "UPDATE training_runs SET started_at = {month}, finished_at = {}",
                ts(Utc::now() - Duration::days(30) + Duration::seconds(5))
            ),
        ] {
            exec(&store, &sql).await;
        }
        store.close().await;
    });
    dir
}

fn new_scenario(name: &str, template: &Path, path: &str) -> Result<Scenario, String> {
    let home = tempfile::tempdir().unwrap();
    let data = home.path().join("flywheel-data");
    std::fs::create_dir_all(&data).unwrap();
    // Every scenario but a new host's and an upgrade's starts from the
    // bootstrapped installation.
    let installed = !FRESH_SCENARIOS.contains(&name);
    for file in ["flywheel.db", "flywheel.db-wal", "flywheel.db-shm"] {
        let from = template.join(file);
        if installed && from.exists() {
            std::fs::copy(&from, data.join(file)).unwrap();
        }
    }
    let config = Scenario::data_config(&data);
    let setup = seed(name, &config, home.path()).ok_or_else(|| {
        format!("the runbook names scenario `{name}`, which this test cannot seed")
    })?;
    let mut env = setup.env;
    if name == "label-studio-down" {
        env.push((
            "LABEL_STUDIO_URL".into(),
            format!("http://127.0.0.1:{}", closed_port()),
        ));
        env.push((
            "LABEL_STUDIO_API_KEY".into(),
            "0123456789abcdef0123456789abcdef01234567".into(),
        ));
    }
    let scenario = Scenario {
        home,
        data,
        env,
        path: path.to_string(),
        background: Vec::new(),
    };
    if name == "label-studio-down" {
        // The 06:30 cron sync already failed: Label Studio went down at night.
        // (The library without the client's four retries, which take 7 s.)
        let url = scenario
            .env
            .iter()
            .find(|(k, _)| k == "LABEL_STUDIO_URL")
            .unwrap()
            .1
            .clone();
        let config = Config {
            label_studio: flywheel::config::LabelStudioConfig {
                url: Some(url.clone()),
                ..Default::default()
            },
            ..config.clone()
        };
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let client = LabelStudioClient::new(
                &url,
                secrecy::SecretString::from("0123456789abcdef0123456789abcdef01234567"),
                ClientOptions {
                    retries: 0,
                    ..ClientOptions::default()
                },
            )
            .unwrap();
            let err = jobs::run(
                LabelStudioSync::new(client),
                &Launch::new(&store, &config, Trigger::Cron),
            )
            .await
            .unwrap_err();
            assert_eq!(err.kind().exit_code(), 69, "{err}");
            backdate_run(
                &store,
                "label-studio-sync",
                Utc::now() - Duration::minutes(40),
                7,
            )
            .await;
            store.close().await;
        });
    }
    Ok(scenario)
}

/// Play a run of `stage` that cron started two hours ago and that still
/// runs: its `job_runs` row (once) and its lock, held until the file drops.
fn hold_lock(scenario: &Scenario, stage: &str) -> std::fs::File {
    let config = Scenario::data_config(&scenario.data);
    let stage_name = stage.to_string();
    block_on(async move {
        let store = flywheel::storage::open(&config).await.unwrap();
        let running = scalar(
            &store,
            &format!(
                "SELECT COUNT(*) FROM job_runs WHERE stage = '{stage_name}' AND status = 'running'"
            ),
        )
        .await;
        if running == 0 {
            store
                .insert_job_run(
                    stage_name.parse().expect("a stage name"),
                    Trigger::Cron,
                    Some("prod-1"),
                    Some(48213),
                )
                .await
                .unwrap();
            backdate_run(&store, &stage_name, Utc::now() - Duration::hours(2), 0).await;
            exec(&store, &format!("UPDATE job_runs SET finished_at = NULL WHERE stage = '{stage_name}' AND status = 'running'")).await;
        }
        store.close().await;
    });
    let dir = scenario.data.join("locks");
    std::fs::create_dir_all(&dir).unwrap();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(dir.join(format!("{stage}.lock")))
        .unwrap();
    file.try_lock().expect("nobody else holds the stage lock");
    file
}

/// `flywheel models promote` → `["models", "promote"]` and its `--flags`.
fn subcommand_and_flags(span: &str) -> (Vec<String>, Vec<String>) {
    let mut path = Vec::new();
    let mut flags = Vec::new();
    let mut in_path = true;
    for word in span.split_whitespace().skip(1) {
        let word = word.trim_matches(|c: char| "[]()|,…".contains(c));
        if let Some(flag) = word.strip_prefix("--") {
            let name: String = flag
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-')
                .collect();
            if !name.is_empty() {
                flags.push(format!("--{name}"));
            }
            in_path = false;
        } else if in_path
            && !word.is_empty()
            && word
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            && !word.starts_with('-')
        {
            path.push(word.to_string());
        } else {
            in_path = false;
        }
    }
    (path, flags)
}

fn check_inline(book: &Runbook, bin: &Path) -> Vec<String> {
    let mut problems = Vec::new();
    let mut helps: BTreeMap<Vec<String>, Result<String, String>> = BTreeMap::new();
    for (line, span) in &book.inline {
        let (path, flags) = subcommand_and_flags(span);
        let help = helps.entry(path.clone()).or_insert_with(|| {
            let out = Command::new(bin)
                .args(&path)
                .arg("--help")
                .env("NO_COLOR", "1")
                .output()
                .unwrap();
            if out.status.success() {
                Ok(String::from_utf8_lossy(&out.stdout).into_owned())
            } else {
                Err(String::from_utf8_lossy(&out.stderr).into_owned())
            }
        });
        match help {
            Err(err) => problems.push(format!(
                "runbook line {line}: `{span}` names no subcommand of flywheel: {err}"
            )),
            Ok(text) => {
                for flag in flags {
                    if !text.contains(&flag) {
                        problems.push(format!(
                            "runbook line {line}: `{span}`: `flywheel {} --help` has no {flag}",
                            path.join(" ")
                        ));
                    }
                }
            }
        }
    }
    problems
}

struct ScenarioResult {
    problems: Vec<String>,
    /// (line, text) of every step run.
    ran: Vec<(usize, String)>,
}

/// Seed one scenario and run its steps in the runbook's order.
fn run_scenario(name: &str, book: &Runbook, template: &Path, path: &str) -> ScenarioResult {
    let mut result = ScenarioResult {
        problems: Vec::new(),
        ran: Vec::new(),
    };
    let mut scenario = match new_scenario(name, template, path) {
        Ok(s) => s,
        Err(err) => {
            result.problems.push(err);
            return result;
        }
    };
    let mut held: Option<(usize, std::fs::File)> = None;
    let steps: Vec<&Step> = book.steps.iter().filter(|s| s.scenario == name).collect();
    let mut printed = Printed::default();
    for (i, step) in steps.iter().enumerate() {
        match (&step.expect.hold_lock, &held) {
            (Some(_), Some((block, _))) if *block == step.block => {}
            (Some(stage), _) => held = Some((step.block, hold_lock(&scenario, stage))),
            (None, _) => held = None,
        }
        result
            .problems
            .extend(run_step(&mut scenario, step, &mut printed));
        let last_of_block = steps.get(i + 1).is_none_or(|next| next.block != step.block);
        if last_of_block && step.kind == Kind::Shell && !step.expect.background {
            result
                .problems
                .extend(check_output(step, &printed.stdout, &printed.stderr));
        }
        if last_of_block {
            printed = Printed::default();
        }
        result.ran.push((step.line, step.text.clone()));
    }
    drop(held);
    for (step, child, rx) in std::mem::take(&mut scenario.background) {
        result.problems.extend(stop_background(&step, child, rx));
    }
    result
}

#[test]
fn every_command_in_the_runbook_runs_as_it_says() {
    let started = Instant::now();
    let doc = std::fs::read_to_string(RUNBOOK).expect("docs/runbook.md");
    let (book, mut problems) = parse(&doc);
    assert!(
        book.steps.iter().filter(|s| s.kind == Kind::Shell).count() >= 20,
        "the runbook should hold its commands in ```sh blocks; found {}",
        book.steps.len()
    );
    let scenarios: Vec<String> = {
        let mut seen = Vec::new();
        for s in &book.steps {
            if !seen.contains(&s.scenario) {
                seen.push(s.scenario.clone());
            }
        }
        seen
    };
    for required in REQUIRED_SCENARIOS {
        assert!(
            scenarios.iter().any(|s| s == required),
            "the runbook has no commands for the `{required}` scenario"
        );
    }

    let bin = PathBuf::from(env!("CARGO_BIN_EXE_flywheel"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    problems.extend(check_inline(&book, &bin));

    let template = template();
    // Scenarios are independent installations: run them side by side (a
    // Label Studio that is down costs its sync 7 s of retries, mostly
    // waiting); one after the other with RUNBOOK_SHOW, for readable output.
    let results: Vec<ScenarioResult> = if std::env::var_os("RUNBOOK_SHOW").is_some() {
        scenarios
            .iter()
            .map(|name| run_scenario(name, &book, template.path(), &path))
            .collect()
    } else {
        std::thread::scope(|scope| {
            let handles: Vec<_> = scenarios
                .iter()
                .map(|name| {
                    let (book, template, path) = (&book, template.path(), &path);
                    scope.spawn(move || run_scenario(name, book, template, path))
                })
                .collect();
            handles.into_iter().map(|h| h.join().unwrap()).collect()
        })
    };
    let mut ran = Vec::new();
    for result in results {
        problems.extend(result.problems);
        ran.extend(result.ran);
    }
    assert!(
        problems.is_empty(),
        "{} problem(s) in docs/runbook.md:\n\n{}",
        problems.len(),
        problems.join("\n\n")
    );
    // Nothing in the runbook's blocks escaped the run.
    let ran: BTreeSet<(usize, String)> = ran.into_iter().collect();
    for step in &book.steps {
        assert!(
            ran.contains(&(step.line, step.text.clone())),
            "runbook line {}: `{}` was not run",
            step.line,
            step.text
        );
    }
    assert_eq!(ran.len(), book.steps.len());
    eprintln!(
        "runbook: {} command(s) in {} scenario(s) and {} inline mention(s) checked in {:.1} s",
        ran.len(),
        scenarios.len(),
        book.inline.len(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn the_checker_catches_what_it_promises_to() {
    let (book, problems) = parse(
        "<!-- runbook: scenario=x exit=69 stdout=\"a b\" env=K=V -->\n```sh\n# c\nflywheel status \\\n  --json\n```\n\
         ```bash\nflywheel doctor\n```\n```text\n$ flywheel stats\n```\n```sh\ncrontab -l\n```\nsee `flywheel models list`\n",
    );
    assert_eq!(book.steps.len(), 1);
    assert_eq!(book.steps[0].text, "flywheel status --json");
    assert_eq!(book.steps[0].expect.exit, 69);
    assert_eq!(book.steps[0].expect.stdout, ["a b"]);
    assert_eq!(book.steps[0].expect.env, [("K".into(), "V".into())]);
    assert_eq!(problems.len(), 3, "{problems:?}");
    assert_eq!(book.inline, [(16, "flywheel models list".to_string())]);
    assert!(opens_console("flywheel"));
    assert!(opens_console("flywheel --data-dir /x tui"));
    assert!(!opens_console("flywheel status"));
    assert!(!opens_console("flywheel --version"));
    assert_eq!(
        subcommand_and_flags("flywheel models promote VERSION --to canary [--traffic 10]"),
        (
            vec!["models".to_string(), "promote".to_string()],
            vec!["--to".to_string(), "--traffic".to_string()]
        )
    );
}

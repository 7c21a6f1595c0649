//! `flywheel doctor`: every check says pass, warn or fail, and what to do.

use std::path::Path;
use std::time::Duration;

use serde::Serialize;

use crate::config::LoadedConfig;
use crate::health;
use crate::storage::{self, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CheckStatus {
    Pass,
    Warn,
    Fail,
}

/// Where a check belongs: the installation (files, database, services) or
/// the loop's health (the checks `status` warns on).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Section {
    Installation,
    Loop,
}

#[derive(Debug, Clone, Serialize)]
pub struct Check {
    pub section: Section,
    pub name: &'static str,
    pub status: CheckStatus,
    pub detail: String,
    /// The exact thing to do when the check does not pass.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: &'static str, detail: impl Into<String>) -> Self {
        Self {
            section: Section::Installation,
            name,
            status: CheckStatus::Pass,
            detail: detail.into(),
            fix: None,
        }
    }
    fn warn(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            section: Section::Installation,
            name,
            status: CheckStatus::Warn,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn fail(name: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Self {
        Self {
            section: Section::Installation,
            name,
            status: CheckStatus::Fail,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
    fn in_section(self, section: Section) -> Self {
        Self { section, ..self }
    }
}

const HTTP_TIMEOUT: Duration = Duration::from_secs(5);

/// Run every check. Never fails itself: a failing dependency is a failed check.
pub async fn run_checks(loaded: &LoadedConfig) -> Vec<Check> {
    let config = &loaded.config;
    let mut checks = vec![Check::pass(
        "config",
        match &loaded.config_file {
            Some(path) => format!("loaded {}", path.display()),
            None => "built-in defaults, environment and flags (no config file)".into(),
        },
    )];
    checks.push(secret_files_check(loaded));
    checks.push(writable_dir("data dir", &config.data_dir));
    if config.data_dir.is_dir() {
        checks.push(writable_dir("logs dir", &config.logs_dir()));
    }
    checks.extend(database_checks(loaded).await);
    checks.extend(label_studio_checks(loaded).await);
    if let Some(url) = &config.nlu_health_url {
        checks.push(match http_get(url).await {
            Ok(code) if (200..300).contains(&code) => {
                Check::pass("nlu health", format!("{url} answered {code}"))
            }
            Ok(code) => Check::fail(
                "nlu health",
                format!("{url} answered {code}"),
                "check the NLU service's logs; `flywheel serve` answers /health with what is wrong",
            ),
            Err(err) => Check::fail(
                "nlu health",
                format!("{url} is unreachable: {err}"),
                "start the NLU service (`flywheel serve`) or fix nlu_health_url",
            ),
        });
    }
    checks.push(crontab_check());
    // The loop's checks read the database with the others; shown last.
    checks.sort_by_key(|c| c.section);
    checks
}

/// Whether alerts have somewhere to go; with `send_test`, that the webhook
/// accepts a test event.
pub async fn alert_webhook_check(config: &crate::config::Config, send_test: bool) -> Check {
    let Some(notifier) = crate::monitor::notify::Notifier::from_config(config) else {
        return if send_test {
            Check::fail(
                "alert webhook",
                "no [alerts] webhook_url is set: there is nowhere to send a test alert",
                "set alerts.webhook_url (or FLYWHEEL_ALERT_WEBHOOK)",
            )
        } else {
            Check::pass(
                "alert webhook",
                "not set: warnings reach logs, status and /metrics only",
            )
        };
    };
    let shown = notifier.shown_url();
    if !send_test {
        return Check::pass(
            "alert webhook",
            format!("{shown} (`doctor --test-alert` sends a test event)"),
        );
    }
    match notifier.send_test().await {
        Ok(()) => Check::pass("alert webhook", format!("{shown} accepted a test event")),
        Err(why) => Check::fail(
            "alert webhook",
            format!("{shown} did not accept a test event: {}", why.reason),
            "check alerts.webhook_url and that this host can reach it",
        ),
    }
}

/// Files holding a secret must be readable by their owner only.
fn secret_files_check(loaded: &LoadedConfig) -> Check {
    let open = loaded.readable_secret_files();
    if open.is_empty() {
        return Check::pass(
            "secret files",
            "no file holding a secret is readable by others",
        );
    }
    let listed: Vec<String> = open
        .iter()
        .map(|(path, mode)| format!("{} (mode {mode:o})", path.display()))
        .collect();
    let paths: Vec<String> = open.iter().map(|(p, _)| p.display().to_string()).collect();
    Check::fail(
        "secret files",
        format!("other users can read secrets in {}", listed.join(", ")),
        format!("chmod 600 {}", paths.join(" ")),
    )
}

/// Whether `dir` takes a file. `doctor` only looks: a directory that is not
/// there is reported, never created (a typo in `--data-dir` must not make
/// an empty installation).
fn writable_dir(name: &'static str, dir: &Path) -> Check {
    if !dir.exists() {
        return Check::fail(
            name,
            format!(
                "{} does not exist: nothing has run with this data dir",
                dir.display()
            ),
            "check --data-dir / FLYWHEEL_HOME for a typo; `flywheel serve` or `flywheel migrate` \
             creates an installation there",
        );
    }
    let probe = dir.join(format!(".doctor-probe-{}", std::process::id()));
    let result = std::fs::write(&probe, b"ok").and_then(|()| std::fs::remove_file(&probe));
    match result {
        Ok(()) => Check::pass(name, format!("{} is writable", dir.display())),
        Err(err) => Check::fail(
            name,
            format!("{} is not writable: {err}", dir.display()),
            format!(
                "make {} writable by this user, or point --data-dir / FLYWHEEL_HOME at a writable directory",
                dir.display()
            ),
        ),
    }
}

async fn database_checks(loaded: &LoadedConfig) -> Vec<Check> {
    let config = &loaded.config;
    let store = match storage::open_unmigrated(config, storage::OpenMode::Existing).await {
        Ok(store) => store,
        Err(err) => {
            return vec![Check::fail(
                "database",
                err.message().to_string(),
                match &config.database_url {
                    Some(_) => "start the database or correct DATABASE_URL / --database-url",
                    None => {
                        "check --data-dir / FLYWHEEL_HOME; `flywheel migrate` creates the database"
                    }
                },
            )];
        }
    };
    let mut checks = Vec::new();
    match store.ping().await {
        Ok(()) => checks.push(Check::pass(
            "database",
            format!("{} reachable", store.description()),
        )),
        Err(err) => {
            checks.push(Check::fail(
                "database",
                err.message().to_string(),
                "start the database or correct DATABASE_URL / --database-url",
            ));
            return checks;
        }
    }
    checks.push(match store.migration_state().await {
        Ok(state) if !state.unknown().is_empty() => Check::fail(
            "schema",
            format!(
                "migrated by a newer Flywheel (unknown migrations {:?})",
                state.unknown()
            ),
            "upgrade flywheel to the version that migrated this database",
        ),
        Ok(state) if !state.pending().is_empty() => Check::warn(
            "schema",
            format!("{} migration(s) not applied yet", state.pending().len()),
            "run `flywheel migrate` (any stage command also migrates on start)",
        ),
        Ok(state) => Check::pass(
            "schema",
            format!("{} migration(s) applied", state.applied.len()),
        ),
        Err(err) => Check::fail(
            "schema",
            err.message().to_string(),
            "run `flywheel migrate`",
        ),
    });
    checks.extend(loop_checks(&store, config).await);
    store.close().await;
    checks
}

/// The loop's health: every check of [`crate::health::CHECKS`], judged as
/// `status`, the console and `/metrics` judge it, under its stable name.
async fn loop_checks(store: &Store, config: &crate::config::Config) -> Vec<Check> {
    let Some(state) = store.migration_state().await.ok() else {
        return Vec::new();
    };
    if !state.pending().is_empty() {
        return Vec::new();
    }
    let health::LoopHealth {
        snapshot, warnings, ..
    } = match health::LoopHealth::read(store, config, chrono::Utc::now()).await {
        Ok(read) => read,
        // Never a silent gap where the section should be.
        Err(err) => {
            return vec![
                Check::fail(
                    "loop",
                    format!("the loop's health could not be read: {}", err.message()),
                    "see the database check above; `flywheel status` shows the same figures",
                )
                .in_section(Section::Loop),
            ];
        }
    };
    health::CHECKS
        .iter()
        .map(|(name, codes)| {
            let raised: Vec<&health::Warning> = warnings
                .iter()
                .filter(|w| codes.contains(&w.code))
                .collect();
            let check = match raised.first() {
                None => Check::pass(name, loop_pass_detail(name, &snapshot)),
                Some(first) => Check::warn(
                    name,
                    raised
                        .iter()
                        .map(|w| w.message.as_str())
                        .collect::<Vec<_>>()
                        .join("; "),
                    health::fix(first.code),
                ),
            };
            check.in_section(Section::Loop)
        })
        .collect()
}

/// What a passing loop check saw.
fn loop_pass_detail(check: &str, s: &crate::storage::snapshot::StatusSnapshot) -> String {
    let production = s
        .live_models
        .iter()
        .find(|m| m.status == crate::domain::ModelStatus::Production);
    match check {
        "capture" => s.last_capture_at.map_or_else(
            || "nothing captured yet".into(),
            |t| format!("last conversation at {t}"),
        ),
        "capture-volume" => format!(
            "{} conversations in the last hour ({} earlier weeks to compare with)",
            s.capture_volume.last_hour,
            s.capture_volume.same_hour_earlier_weeks.len()
        ),
        "production-model" => production.map_or_else(String::new, |m| m.version.clone()),
        "production-accuracy" => s
            .audits
            .production
            .as_ref()
            .and_then(|e| e.production_accuracy)
            .map_or_else(
                || "no audit labelled yet".into(),
                |a| format!("{} on audited conversations", a.describe()),
            ),
        "auto-approval-precision" => s.audits.auto_approval_precision.map_or_else(
            || "no audit labelled yet".into(),
            |p| format!("{} on audited conversations", p.describe()),
        ),
        "review-queue-age" => s.oldest_queued_at.map_or_else(
            || "nothing waits for review".into(),
            |t| format!("oldest waiting since {t}"),
        ),
        "disk-space" => s.free_disk_bytes.map_or_else(
            || "free space unknown".into(),
            |b| format!("{} MiB free", b / (1024 * 1024)),
        ),
        _ => "ok".into(),
    }
}

async fn label_studio_checks(loaded: &LoadedConfig) -> Vec<Check> {
    let ls = &loaded.config.label_studio;
    let Some(url) = &ls.url else {
        return vec![Check::warn(
            "label studio",
            "not configured; review happens in the console's review pane only",
            "set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY (environment, .env or .env.labelstudio) to review in Label Studio",
        )];
    };
    if ls.api_key.is_none() {
        return vec![Check::fail(
            "label studio",
            format!("LABEL_STUDIO_URL is {url} but no API key is set"),
            "set LABEL_STUDIO_API_KEY to a personal access token (Account & Settings → Personal Access Token)",
        )];
    }
    let health = format!("{}/health", url.trim_end_matches('/'));
    match http_get(&health).await {
        Ok(code) if (200..300).contains(&code) => {
            let mut checks = vec![Check::pass("label studio", format!("{url} reachable"))];
            checks.extend(label_studio_key_checks(loaded).await);
            checks
        }
        Ok(code) => vec![Check::fail(
            "label studio",
            format!("{health} answered HTTP {code}"),
            "check Label Studio's own logs; it answers /health with 200 when it is up",
        )],
        Err(err) => vec![Check::fail(
            "label studio",
            format!("{url} is unreachable: {err}"),
            format!(
                "start Label Studio (`label-studio start --port PORT`) or correct LABEL_STUDIO_URL (now {url})"
            ),
        )],
    }
}

/// The key works, and the configured project exists.
async fn label_studio_key_checks(loaded: &LoadedConfig) -> Vec<Check> {
    let client = match crate::review::label_studio::LabelStudioClient::from_config(&loaded.config) {
        Ok(client) => client,
        Err(err) => {
            return vec![Check::fail(
                "label studio key",
                err.message().to_string(),
                "fix LABEL_STUDIO_URL / LABEL_STUDIO_API_KEY",
            )];
        }
    };
    let mut checks = Vec::new();
    match client.whoami().await {
        Ok(user) => checks.push(Check::pass(
            "label studio key",
            format!(
                "accepted ({:?} key of user {})",
                client.key_kind(),
                user.email
            ),
        )),
        Err(err) => {
            checks.push(Check::fail(
                "label studio key",
                err.message().to_string(),
                "create a personal access token in Label Studio (Account & Settings → Personal Access Token) and set LABEL_STUDIO_API_KEY",
            ));
            return checks;
        }
    }
    if let Some(project) = loaded.config.label_studio.project_id {
        checks.push(match client.get_project(project).await {
            Ok(p) => Check::pass("label studio project", format!("{project}: {}", p.title)),
            Err(err) => Check::fail(
                "label studio project",
                err.message().to_string(),
                "unset LABEL_STUDIO_PROJECT_ID to let the sync create a project, or set it to an existing project's id",
            ),
        });
    }
    checks
}

async fn http_get(url: &str) -> Result<u16, String> {
    let client = reqwest::Client::builder()
        .timeout(HTTP_TIMEOUT)
        .build()
        .map_err(|err| err.to_string())?;
    client
        .get(url)
        .send()
        .await
        .map(|r| r.status().as_u16())
        .map_err(|err| {
            if err.is_timeout() {
                format!("no answer within {} s", HTTP_TIMEOUT.as_secs())
            } else if err.is_connect() {
                "connection refused".to_string()
            } else {
                err.to_string()
            }
        })
}

/// The schedules of crontab.conf, by the subcommand each runs.
const SCHEDULED: [&str; 4] = [
    "daily-capture",
    "label-studio-sync",
    "weekly-training",
    "canary-check",
];

/// Every scheduled stage has a scheduler: a line in this user's crontab or
/// an active systemd timer (`assets/systemd/flywheel-STAGE.timer`).
fn crontab_check() -> Check {
    // `None`: no crontab command. No crontab for this user is an empty one.
    let cron = std::process::Command::new("crontab")
        .arg("-l")
        .output()
        .ok()
        .map(|out| {
            if out.status.success() {
                String::from_utf8_lossy(&out.stdout).into_owned()
            } else {
                String::new() // "no crontab for user"
            }
        });
    let by_cron = |stage: &str| {
        cron.as_deref().is_some_and(|text| {
            text.lines().any(|l| {
                !l.trim_start().starts_with('#') && l.contains("flywheel") && l.contains(stage)
            })
        })
    };
    let timers = active_timers();
    let by_timer = |stage: &str| timers.as_ref().is_some_and(|t| t.contains(&stage));
    let list = |pick: &dyn Fn(&str) -> bool| -> Vec<&str> {
        SCHEDULED.iter().copied().filter(|s| pick(s)).collect()
    };
    let missing = list(&|s| !by_cron(s) && !by_timer(s));
    let twice = list(&|s| by_cron(s) && by_timer(s));
    let (cron_stages, timer_stages) = (list(&by_cron), list(&by_timer));
    let mut how = Vec::new();
    if !cron_stages.is_empty() {
        how.push(format!("by cron: {}", cron_stages.join(", ")));
    }
    if !timer_stages.is_empty() {
        how.push(format!("by systemd timers: {}", timer_stages.join(", ")));
    }
    if !missing.is_empty() {
        let mut absent = Vec::new();
        if cron.is_none() {
            absent.push("the crontab command is not installed");
        }
        if timers.is_none() {
            absent.push("systemd is not running");
        }
        let mut detail = format!("not scheduled: {}", missing.join(", "));
        for part in how.iter().map(String::as_str).chain(absent) {
            detail.push_str("; ");
            detail.push_str(part);
        }
        let units: Vec<String> = missing
            .iter()
            .map(|s| format!("flywheel-{s}.timer"))
            .collect();
        return Check::warn(
            "crontab",
            detail,
            format!(
                "enable the systemd timers (`systemctl enable --now {}`, units in assets/systemd), \
                 or add the lines of crontab.conf to this user's crontab (`crontab -e`, adjust the paths)",
                units.join(" ")
            ),
        );
    }
    if !twice.is_empty() {
        return Check::warn(
            "crontab",
            format!(
                "scheduled twice, by cron and by a systemd timer: {} (each slot starts two runs: \
                 the later one exits 75 while the first holds the stage's lock, or runs again)",
                twice.join(", ")
            ),
            "keep one scheduler: remove the flywheel lines from the crontab (`crontab -e`) or \
             disable the timers (`systemctl disable --now flywheel-STAGE.timer`)",
        );
    }
    Check::pass("crontab", format!("all scheduled, {}", how.join("; ")))
}

/// The scheduled stages whose `flywheel-STAGE.timer` is active; `None` when
/// systemd is not there to ask (no systemctl, not booted with systemd).
fn active_timers() -> Option<Vec<&'static str>> {
    let units: Vec<String> = SCHEDULED
        .iter()
        .map(|s| format!("flywheel-{s}.timer"))
        .collect();
    let out = std::process::Command::new("systemctl")
        .arg("is-active")
        .args(&units)
        .output()
        .ok()?;
    // One state a unit ("active", "inactive", "failed" …); exits non-zero
    // when any is not active, and prints nothing when it cannot ask systemd.
    let text = String::from_utf8_lossy(&out.stdout);
    let states: Vec<&str> = text.lines().map(str::trim).collect();
    if states.len() != units.len() {
        return None;
    }
    Some(
        SCHEDULED
            .iter()
            .zip(states)
            .filter(|(_, state)| *state == "active")
            .map(|(stage, _)| *stage)
            .collect(),
    )
}

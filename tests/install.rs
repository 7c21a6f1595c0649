//! What an install puts on a host, checked as the host would use it:
//! `--version`, the shell completions and man pages generated from the
//! clap definitions, the systemd units of `assets/systemd/` (verified by
//! `systemd-analyze verify`, their timers' schedules against
//! `crontab.conf`), and doctor recognising a timer-driven host.
//!
//! `systemd-analyze` comes with Debian's `systemd` package, which
//! scripts/test.sh installs when it is missing. It verifies unit files
//! without a running systemd (this container has none as PID 1): it parses
//! every line, checks each `ExecStart` binary is executable and each
//! `Documentation=man:` page exists. The units name the installed
//! `/usr/local/bin/flywheel`; the test verifies copies that name the binary
//! under test instead, with `MANPATH` on pages it generated — nothing else
//! is changed.

mod support;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Duration, NaiveDateTime, Utc};
use clap::CommandFactory;
use flywheel::cli::Cli;
use flywheel::schedule::CronSchedule;
use support::environment::{flywheel_bin, flywheel_cmd};
use support::processes::doctor_check;
use support::{Exits, json_stdout};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
const INSTALLED_BINARY: &str = "/usr/local/bin/flywheel";

fn units_dir() -> PathBuf {
    Path::new(ROOT).join("assets/systemd")
}

/// Every unit file shipped, by file name.
fn units() -> BTreeMap<String, String> {
    std::fs::read_dir(units_dir())
        .expect("assets/systemd")
        .map(|entry| {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            let text = std::fs::read_to_string(&path)
                .unwrap_or_else(|err| panic!("{}: {err}", path.display()));
            (name, text)
        })
        .collect()
}

/// The values of `key=` lines in a unit file, in order.
fn values<'a>(unit: &'a str, key: &str) -> Vec<&'a str> {
    unit.lines()
        .filter_map(|l| l.strip_prefix(key)?.strip_prefix('='))
        .map(str::trim)
        .collect()
}

fn value<'a>(unit: &'a str, key: &str) -> &'a str {
    match values(unit, key)[..] {
        [one] => one,
        ref other => panic!("expected one {key}= line, found {other:?} in:\n{unit}"),
    }
}

fn systemd_analyze() -> Command {
    let found = Command::new("systemd-analyze").arg("--version").output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "systemd-analyze is needed to verify assets/systemd: install Debian's `systemd` \
         package (scripts/test.sh does when it is missing)"
    );
    Command::new("systemd-analyze")
}

// ---------------------------------------------------------------- binary

#[test]
fn version_names_the_commit_and_the_schema() {
    let home = tempfile::tempdir().unwrap();
    let out = flywheel_cmd(home.path()).arg("--version").succeeds();
    let text = String::from_utf8_lossy(&out.stdout);
    let schema = flywheel::storage::newest_schema_version();
    assert!(
        text.starts_with(&format!("flywheel {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{text}"
    );
    assert!(
        text.trim_end().ends_with(&format!(", schema {schema})")),
        "{text}"
    );
    // The commit is git's (this is a clone) or "unknown", never empty.
    let commit = text
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown" || (commit.len() >= 7 && commit.chars().all(|c| c.is_ascii_hexdigit())),
        "commit `{commit}` in {text}"
    );
}

#[test]
fn completions_generate_for_each_shell() {
    let home = tempfile::tempdir().unwrap();
    // What each shell's script must hold to complete `flywheel daily-…`.
    for (shell, marker) in [
        ("bash", "complete -F _flywheel"),
        ("zsh", "#compdef flywheel"),
        ("fish", "complete -c flywheel"),
    ] {
        let out = flywheel_cmd(home.path())
            .args(["completions", shell])
            .succeeds();
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(script.contains(marker), "{shell}: no `{marker}`");
        for subcommand in ["daily-capture", "weekly-training", "completions", "man"] {
            assert!(
                script.contains(subcommand),
                "{shell} completion does not know `{subcommand}`"
            );
        }
    }
    // bash parses its script.
    let out = flywheel_cmd(home.path())
        .args(["completions", "bash"])
        .succeeds();
    let script = home.path().join("flywheel.bash");
    std::fs::write(&script, &out.stdout).unwrap();
    let parsed = Command::new("bash")
        .arg("-n")
        .arg(&script)
        .output()
        .unwrap();
    assert!(
        parsed.status.success(),
        "{}",
        String::from_utf8_lossy(&parsed.stderr)
    );
    flywheel_cmd(home.path())
        .args(["completions", "tcsh"])
        .exits_with(2);
}

/// Every command and subcommand, as `man` names its page.
fn every_page_name() -> Vec<String> {
    fn walk(command: &clap::Command, prefix: &str, names: &mut Vec<String>) {
        let name = format!("{prefix}{}", command.get_name());
        for sub in command.get_subcommands().filter(|s| s.get_name() != "help") {
            walk(sub, &format!("{name}-"), names);
        }
        names.push(format!("{name}.1"));
    }
    let mut names = Vec::new();
    walk(&Cli::command(), "", &mut names);
    names.sort();
    names
}

#[test]
fn man_writes_one_page_per_subcommand() {
    let home = tempfile::tempdir().unwrap();
    let dir = home.path().join("man/man1");
    let out = flywheel_cmd(home.path())
        .args(["man", "--dir"])
        .arg(&dir)
        .arg("--json")
        .succeeds();
    let summary = json_stdout(&out);
    let mut written: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    written.sort();
    let expected = every_page_name();
    assert!(expected.len() > 30, "{expected:?}");
    assert_eq!(written, expected);
    assert_eq!(summary["pages"].as_array().unwrap().len(), expected.len());
    for required in [
        "flywheel.1",
        "flywheel-serve.1",
        "flywheel-models-promote.1",
        "flywheel-completions.1",
    ] {
        assert!(written.iter().any(|w| w == required), "no {required}");
    }
    // Each page is roff that names its command and its options.
    let serve = std::fs::read_to_string(dir.join("flywheel-serve.1")).unwrap();
    assert!(serve.contains("\n.TH flywheel-serve 1 "), "{serve}");
    assert!(serve.contains("\\fB\\-\\-addr\\fR"), "{serve}");
    // the version line carries the schema too
    assert!(
        serve.contains(&format!(
            "schema {})",
            flywheel::storage::newest_schema_version()
        )),
        "{serve}"
    );
    // `man` alone prints the top page.
    let top = flywheel_cmd(home.path()).arg("man").succeeds();
    let top = String::from_utf8_lossy(&top.stdout);
    assert!(top.contains(".TH flywheel 1"), "{top}");
    assert!(top.contains("daily\\-capture"), "{top}");
    // and `man` reads them
    if Command::new("man").arg("--version").output().is_ok() {
        let rendered = Command::new("man")
            .env("MANPATH", home.path().join("man"))
            .env("MANPAGER", "cat")
            .env("PAGER", "cat")
            .args(["-P", "cat", "flywheel-weekly-training"])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&rendered.stdout);
        assert!(
            text.contains("--min-samples"),
            "man flywheel-weekly-training: {text}"
        );
    }
}

// ---------------------------------------------------------------- systemd

/// The scheduled stages of crontab.conf: the cron expression and the
/// `flywheel …` command of each line, commented-out ones included (prune).
fn crontab_schedules() -> BTreeMap<String, (String, Vec<String>, bool)> {
    let text = std::fs::read_to_string(Path::new(ROOT).join("crontab.conf")).unwrap();
    let mut found = BTreeMap::new();
    for line in text.lines() {
        let (active, line) = match line.strip_prefix('#') {
            Some(rest) => (false, rest.trim_start()),
            None => (true, line),
        };
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 6 {
            continue;
        }
        let expression = fields[..5].join(" ");
        if expression.parse::<CronSchedule>().is_err() {
            continue;
        }
        let Some(start) = fields.iter().position(|f| *f == "flywheel") else {
            continue;
        };
        let command: Vec<String> = fields[start + 1..]
            .iter()
            .take_while(|f| **f != ">>")
            .map(|f| f.to_string())
            .collect();
        found.insert(command[0].clone(), (expression, command, active));
    }
    found
}

#[test]
fn every_crontab_schedule_has_a_timer_with_the_same_times() {
    let units = units();
    let schedules = crontab_schedules();
    assert_eq!(
        schedules.keys().map(String::as_str).collect::<Vec<_>>(),
        [
            "canary-check",
            "daily-capture",
            "label-studio-sync",
            "prune",
            "weekly-training"
        ],
        "crontab.conf's schedules"
    );
    let mut analyze = systemd_analyze();
    // its times in UTC, as cron's schedules are read
    analyze.env("TZ", "UTC");
    // the instant from which both schedulers' next runs are listed
    let base: DateTime<Utc> = "2026-12-05T10:07:00Z".parse().unwrap();
    analyze.args([
        "calendar",
        "--iterations=30",
        &format!("--base-time=@{}", base.timestamp()),
    ]);
    let configured_schedules: BTreeMap<String, String> = serde_json::from_value(
        serde_json::to_value(flywheel::schedule::ScheduleConfig::default()).unwrap(),
    )
    .unwrap();
    assert_eq!(configured_schedules.len(), 4, "{configured_schedules:?}");
    let mut timers = Vec::new();
    for (stage, (expression, command, active)) in &schedules {
        let timer = units
            .get(&format!("flywheel-{stage}.timer"))
            .unwrap_or_else(|| panic!("crontab.conf schedules {stage}: no flywheel-{stage}.timer"));
        let service = &units[&format!("flywheel-{stage}.service")];
        assert_eq!(value(timer, "Persistent"), "true", "{stage}");
        assert!(timer.contains("WantedBy=timers.target"), "{stage}");
        // The same command line as cron's, run by the installed binary.
        assert_eq!(
            value(service, "ExecStart"),
            format!("{INSTALLED_BINARY} {}", command.join(" ")),
            "{stage}"
        );
        assert_eq!(value(service, "Type"), "oneshot", "{stage}");
        assert_eq!(
            timer.contains("Shipped disabled"),
            !active,
            "{stage}: a commented-out cron line ships a timer that says it is disabled"
        );
        // and the built-in [schedule] that `status` judges overdue runs by
        if let Some(configured) = configured_schedules.get(&stage.replace('-', "_")) {
            assert_eq!(configured, expression, "[schedule] {stage}");
        }
        timers.push((
            stage.clone(),
            expression.clone(),
            value(timer, "OnCalendar"),
        ));
    }
    for (_, _, calendar) in &timers {
        analyze.arg(calendar);
    }
    let out = analyze.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // One block per expression: "Next elapse: Sun 2026-12-06 03:00:00 UTC",
    // then "Iter. #2: …" lines.
    let text = String::from_utf8_lossy(&out.stdout);
    let blocks: Vec<Vec<DateTime<Utc>>> = text
        .split("Normalized form:")
        .skip(1)
        .map(|block| {
            block
                .lines()
                .filter_map(|l| {
                    let l = l.trim();
                    l.strip_prefix("Next elapse: ")
                        .or_else(|| l.strip_prefix("Iter. #")?.split_once(": ").map(|(_, t)| t))
                })
                .map(|t| {
                    let t = t.trim_end_matches(" UTC");
                    let (_, t) = t.split_once(' ').expect("weekday then time");
                    NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S")
                        .unwrap_or_else(|err| panic!("`{t}`: {err}"))
                        .and_utc()
                })
                .collect()
        })
        .collect();
    assert_eq!(blocks.len(), timers.len(), "{text}");
    for ((stage, expression, calendar), elapses) in timers.iter().zip(blocks) {
        assert_eq!(elapses.len(), 30, "{stage}: {text}");
        let cron: CronSchedule = expression.parse().unwrap();
        // systemd's next 30 runs are exactly cron's: each is a cron slot,
        // and cron has no slot between two of them (nor before the first).
        let mut previous = base;
        for at in elapses {
            let minute_before = at - Duration::minutes(1);
            assert_eq!(
                cron.latest_at_or_before(at),
                Some(at),
                "{stage}: the timer's `{calendar}` runs at {at}, cron's `{expression}` does not"
            );
            let latest = cron.latest_at_or_before(minute_before).unwrap();
            assert!(
                latest <= previous,
                "{stage}: cron's `{expression}` runs at {latest}, the timer's `{calendar}` not \
                 (its runs: {previous}, then {at})"
            );
            previous = at;
        }
    }
}

#[test]
fn serve_unit_stops_after_the_drain_and_is_sandboxed() {
    let units = units();
    let serve = &units["flywheel-serve.service"];
    assert_eq!(
        value(serve, "ExecStart"),
        format!("{INSTALLED_BINARY} serve")
    );
    assert_eq!(value(serve, "Restart"), "on-failure");
    assert_eq!(value(serve, "User"), "flywheel");
    assert_eq!(value(serve, "ProtectSystem"), "strict");
    assert_eq!(value(serve, "NoNewPrivileges"), "yes");
    assert_eq!(value(serve, "PrivateTmp"), "yes");
    assert!(value(serve, "LimitNOFILE").parse::<u32>().unwrap() >= 4096);
    // systemd's SIGKILL must not cut serve's drain short: the drain, then
    // time to commit what was answered and close the store.
    let drain = flywheel::config::Config::default().serve.drain_timeout_secs;
    let stop: u64 = value(serve, "TimeoutStopSec")
        .trim_end_matches('s')
        .parse()
        .unwrap();
    assert!(
        stop >= drain + 5 && stop <= drain + 30,
        "TimeoutStopSec={stop}s against serve.drain_timeout_secs = {drain}"
    );
    // Every unit that runs flywheel writes only the data dir crontab.conf names.
    let crontab = std::fs::read_to_string(Path::new(ROOT).join("crontab.conf")).unwrap();
    let data_dir = crontab
        .lines()
        .find_map(|l| l.strip_prefix("FLYWHEEL_HOME="))
        .unwrap();
    for (name, unit) in units.iter().filter(|(n, _)| n.ends_with(".service")) {
        assert_eq!(value(unit, "ReadWritePaths"), data_dir, "{name}");
        assert!(
            values(unit, "Environment").contains(&format!("FLYWHEEL_HOME={data_dir}").as_str()),
            "{name}"
        );
        assert_eq!(
            value(unit, "EnvironmentFile"),
            "/etc/flywheel/flywheel.env",
            "{name}"
        );
    }
}

/// `systemd-analyze verify` on every shipped unit: clean, not one warning.
#[test]
fn every_unit_passes_systemd_analyze_verify() {
    let work = tempfile::tempdir().unwrap();
    let man = work.path().join("man");
    flywheel_cmd(work.path())
        .args(["man", "--dir"])
        .arg(man.join("man1"))
        .succeeds();
    let copies = work.path().join("units");
    std::fs::create_dir(&copies).unwrap();
    let binary = flywheel_bin();
    let mut names = Vec::new();
    for (name, text) in units() {
        assert!(
            text.contains(INSTALLED_BINARY) || name.ends_with(".timer"),
            "{name} does not run {INSTALLED_BINARY}"
        );
        let copy = text.replace(INSTALLED_BINARY, &binary.to_string_lossy());
        std::fs::write(copies.join(&name), copy).unwrap();
        names.push(name);
    }
    assert_eq!(names.len(), 11, "{names:?}");
    let out = systemd_analyze()
        .arg("verify")
        .args(&names)
        .current_dir(&copies)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // verify exits 0 on a line it ignores ("Failed to parse …, ignoring"):
    // any output at all is a finding.
    assert!(
        out.status.success() && said.trim().is_empty(),
        "systemd-analyze verify {names:?}:\n{said}"
    );

    // and it does find a broken unit
    let broken = units()["flywheel-serve.service"]
        .replace(INSTALLED_BINARY, &binary.to_string_lossy())
        .replace("Restart=on-failure", "Restart=sometimes");
    std::fs::write(copies.join("flywheel-serve.service"), broken).unwrap();
    let out = systemd_analyze()
        .args(["verify", "flywheel-serve.service"])
        .current_dir(&copies)
        .env("MANPATH", &man)
        .output()
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("sometimes"),
        "{out:?}"
    );
}

// ---------------------------------------------------------------- doctor

/// A directory of stand-ins for `crontab` and `systemctl` to put first on PATH.
fn fake_commands(dir: &Path, crontab: Option<&str>, systemctl_states: Option<&[&str]>) -> String {
    std::fs::create_dir_all(dir).unwrap();
    let write = |name: &str, body: String| {
        let path = dir.join(name);
        std::fs::write(&path, format!("#!/bin/sh\n{body}")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    };
    match crontab {
        Some(lines) => write("crontab", format!("cat <<'EOF'\n{lines}\nEOF\n")),
        None => write(
            "crontab",
            "echo 'no crontab for tester' >&2; exit 1\n".into(),
        ),
    }
    match systemctl_states {
        Some(states) => write(
            "systemctl",
            format!(
                "[ \"$1\" = is-active ] || exit 2\nprintf '%s\\n' {}\nexit 3\n",
                states.join(" ")
            ),
        ),
        None => write(
            "systemctl",
            "echo 'System has not been booted with systemd as init system (PID 1).' >&2; exit 1\n"
                .into(),
        ),
    }
    format!(
        "{}:{}",
        dir.display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

fn doctor_schedule(path: &str, home: &Path) -> serde_json::Value {
    let out = flywheel_cmd(home)
        .args(["doctor", "--json"])
        .env("PATH", path)
        .output()
        .unwrap();
    doctor_check(&json_stdout(&out), "crontab").clone()
}

#[test]
fn doctor_recognises_cron_or_systemd_timers() {
    let home = tempfile::tempdir().unwrap();
    // crontab.conf's lines for two of the four stages
    let cron_lines: String = std::fs::read_to_string(Path::new(ROOT).join("crontab.conf"))
        .unwrap()
        .lines()
        .filter(|l| l.contains("weekly-training") || l.contains("canary-check"))
        .collect::<Vec<_>>()
        .join("\n");
    let all = ["active", "active", "active", "active"];
    // (case, crontab -l, systemctl is-active's states in the order of
    // SCHEDULED: daily-capture, label-studio-sync, weekly-training,
    // canary-check; expected status, what the detail says)
    type Case<'a> = (
        &'a str,
        Option<&'a str>,
        Option<&'a [&'a str]>,
        &'a str,
        &'a str,
    );
    let cases: [Case; 5] = [
        (
            "timers only",
            None,
            Some(&all),
            "pass",
            "all scheduled, by systemd timers: daily-capture, label-studio-sync, weekly-training, canary-check",
        ),
        (
            "half on timers, half on cron",
            Some(&cron_lines),
            Some(&["active", "active", "inactive", "inactive"]),
            "pass",
            "by cron: weekly-training, canary-check; by systemd timers: daily-capture, label-studio-sync",
        ),
        (
            "an inactive timer and no cron line",
            Some(&cron_lines),
            Some(&["active", "inactive", "inactive", "failed"]),
            "warn",
            "not scheduled: label-studio-sync;",
        ),
        (
            "both schedulers for two stages",
            Some(&cron_lines),
            Some(&all),
            "warn",
            "scheduled twice, by cron and by a systemd timer: weekly-training, canary-check",
        ),
        (
            "no systemd (a container)",
            Some(&cron_lines),
            None,
            "warn",
            "not scheduled: daily-capture, label-studio-sync; by cron: weekly-training, canary-check; systemd is not running",
        ),
    ];
    for (i, (case, crontab, states, status, detail)) in cases.into_iter().enumerate() {
        let path = fake_commands(&home.path().join(format!("case-{i}")), crontab, states);
        let check = doctor_schedule(&path, home.path());
        assert_eq!(check["status"], status, "{case}: {check}");
        assert!(
            check["detail"].as_str().unwrap().contains(detail),
            "{case}: {check}"
        );
        if status == "warn" && detail.starts_with("not scheduled") {
            let fix = check["fix"].as_str().unwrap();
            assert!(
                fix.contains("systemctl enable --now")
                    && fix.contains("flywheel-label-studio-sync.timer")
                    && !fix.contains("flywheel-weekly-training.timer")
                    && fix.contains("crontab -e"),
                "{case}: {check}"
            );
        }
    }
}

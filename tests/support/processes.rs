//! Running the `flywheel` binary: to completion, in the background (to be
//! SIGKILLed, or to watch), under a file-size limit or on a full disk; and
//! reading what it printed.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use rand::SeedableRng;
use rand::rngs::StdRng;

use super::backends::TestDb;
use super::environment::flywheel_command;

impl TestDb {
    /// The binary with this database, isolated in the data dir (see
    /// [`super::environment`]).
    pub fn command(&self) -> Command {
        let mut cmd = flywheel_command(self.data_path());
        cmd.arg("--data-dir").arg(self.data_path());
        if let Some(url) = &self.database_url {
            cmd.arg("--database-url").arg(url);
        }
        cmd
    }

    /// [`TestDb::command`] as an `assert_cmd` command.
    pub fn cmd(&self) -> assert_cmd::Command {
        assert_cmd::Command::from_std(self.command())
    }

    /// Run the binary with `args`; its output, whatever the exit code.
    pub fn output(&self, args: &[&str]) -> Output {
        self.cmd().args(args).output().expect("run flywheel")
    }

    /// Run the binary with `args`, which must succeed, and parse the one
    /// JSON object it prints.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        json_stdout(&self.cmd().args(args).succeeds())
    }
}

/// Run a command to its end and check how it ended: its output, or a
/// panic with it.
pub trait Exits {
    fn run_to_end(&mut self) -> Output;

    /// The command must succeed.
    fn succeeds(&mut self) -> Output {
        succeeded(self.run_to_end())
    }

    /// The command must exit with `code`.
    fn exits_with(&mut self, code: i32) -> Output {
        let out = self.run_to_end();
        assert_eq!(
            out.status.code(),
            Some(code),
            "stdout:\n{}\nstderr:\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }
}

impl Exits for Command {
    fn run_to_end(&mut self) -> Output {
        self.output().expect("run flywheel")
    }
}

impl Exits for assert_cmd::Command {
    fn run_to_end(&mut self) -> Output {
        self.output().expect("run flywheel")
    }
}

/// `out`, after checking that the command succeeded (else a panic with its
/// stderr).
pub fn succeeded(out: Output) -> Output {
    assert!(
        out.status.success(),
        "{:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Parse a command's stdout as the one JSON object `--json` promises.
pub fn json_stdout(output: &Output) -> serde_json::Value {
    let text = String::from_utf8_lossy(&output.stdout);
    serde_json::from_str(&text).unwrap_or_else(|err| {
        panic!(
            "stdout is not one JSON object ({err}):\n{text}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    })
}

/// stdout and stderr as one text, for "appears nowhere" checks.
pub fn text_of(out: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Poll `check` until it returns `Some`, or panic after `timeout`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A seeded RNG for a fault's position; the seed is printed so a failure
/// can be replayed with `FLYWHEEL_FAULT_SEED=N`.
pub fn fault_rng(test: &str) -> StdRng {
    let seed = std::env::var("FLYWHEEL_FAULT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(rand::random::<u64>);
    eprintln!("{test}: fault seed {seed} (replay with FLYWHEEL_FAULT_SEED={seed})");
    StdRng::seed_from_u64(seed)
}

/// A `flywheel` child process with its output in files.
pub struct Run {
    child: Child,
    pub stdout: PathBuf,
    pub stderr: PathBuf,
    pub what: String,
}

/// What a finished run left.
#[derive(Debug)]
pub struct Finished {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Finished {
    fn from(out: Output) -> Self {
        Finished {
            status: out.status,
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

impl Finished {
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
    /// stdout and stderr, for assertion messages.
    pub fn output(&self) -> String {
        format!("stdout:\n{}\nstderr:\n{}", self.stdout, self.stderr)
    }
}

/// Start the binary on `db` with `args` and `env`.
pub fn spawn(db: &TestDb, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut cmd = db.command();
    cmd.args(args).envs(env.iter().copied());
    spawn_command(db, cmd, &args.join(" "))
}

/// Start the binary on `db` with every file it writes limited to `bytes`
/// (RLIMIT_FSIZE, with SIGXFSZ ignored, so a write past the limit fails
/// with EFBIG the way a full disk fails with ENOSPC).
pub fn spawn_limited(db: &TestDb, bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Run {
    let cmd = limited_command(db, bytes, args, env);
    spawn_command(db, cmd, &format!("{} (files ≤ {bytes} B)", args.join(" ")))
}

/// Run the binary to completion with every file limited to `bytes`; its
/// output goes through pipes, which the limit does not cover.
pub fn run_limited(db: &TestDb, bytes: u64, args: &[&str]) -> Finished {
    limited_command(db, bytes, args, &[])
        .stdin(Stdio::null())
        .output()
        .expect("run flywheel")
        .into()
}

/// Run flywheel with `dir` on a full disk: a `bytes`-sized tmpfs mounted
/// there in a private mount namespace (gone with the process), so only
/// what is written under `dir` runs out of space; the database file can
/// still rewrite its pages, as on a real full disk. (RLIMIT_FSIZE would
/// also refuse SQLite's checkpoint into its own larger file.) Returns the
/// run and the names left in `dir` when it ended.
pub fn run_with_full_dir(
    db: &TestDb,
    dir: &Path,
    bytes: u64,
    args: &[&str],
) -> (Finished, Vec<String>) {
    std::fs::create_dir_all(dir).unwrap();
    let listing = db.data_path().join("full-dir-listing");
    let mut inner = db.command();
    inner.args(args);
    let mut cmd = Command::new("unshare");
    cmd.args(["--map-root-user", "--mount", "sh", "-c"])
        .arg(
            r#"mount -t tmpfs -o size="$0" tmpfs "$1" || exit 111
               dir="$1"; out="$2"; shift 3
               "$@"; rc=$?
               ls -A "$dir" > "$out"; exit $rc"#,
        )
        .arg(bytes.to_string())
        .arg(dir)
        .arg(&listing)
        .arg("--");
    run_inside(&mut cmd, &inner);
    let out = cmd.stdin(Stdio::null()).output().expect("run unshare");
    assert_ne!(
        out.status.code(),
        Some(111),
        "could not mount a tmpfs in a private namespace: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let left = std::fs::read_to_string(&listing)
        .unwrap_or_else(|e| panic!("{}: {e}", listing.display()))
        .lines()
        .map(str::to_string)
        .collect();
    (out.into(), left)
}

/// Lift the file-size limit of a running process: the disk has room again.
pub fn lift_limit(pid: u32) {
    let status = Command::new("prlimit")
        .args(["--pid", &pid.to_string(), "--fsize=unlimited:unlimited"])
        .status()
        .expect("prlimit");
    assert!(status.success());
}

fn limited_command(db: &TestDb, bytes: u64, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut inner = db.command();
    inner.args(args).envs(env.iter().copied());
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(r#"trap '' XFSZ; exec prlimit --fsize="$0": -- "$@""#)
        .arg(bytes.to_string());
    run_inside(&mut cmd, &inner);
    cmd
}

/// Make `wrapper` end by running `inner` (its program and arguments last),
/// with `inner`'s environment and working directory.
pub fn run_inside(wrapper: &mut Command, inner: &Command) {
    wrapper.arg(inner.get_program()).args(inner.get_args());
    copy_environment(wrapper, inner);
}

/// `inner`'s environment changes and working directory, onto `to`.
pub fn copy_environment(to: &mut Command, from: &Command) {
    for (key, value) in from.get_envs() {
        match value {
            Some(value) => to.env(key, value),
            None => to.env_remove(key),
        };
    }
    if let Some(dir) = from.get_current_dir() {
        to.current_dir(dir);
    }
}

fn spawn_command(db: &TestDb, mut cmd: Command, what: &str) -> Run {
    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let n = RUNS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = db.data_path().join("fault-runs");
    std::fs::create_dir_all(&dir).unwrap();
    let stdout = dir.join(format!("{n}.stdout"));
    let stderr = dir.join(format!("{n}.stderr"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&stdout).unwrap())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .unwrap_or_else(|err| panic!("spawning flywheel {what}: {err}"));
    Run {
        child,
        stdout,
        stderr,
        what: what.to_string(),
    }
}

impl Run {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if the process has ended.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().unwrap()
    }

    pub fn stderr_now(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// SIGKILL (no-op when it already ended).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
    }

    /// Wait for the end, at most `timeout`.
    pub async fn finish(mut self, timeout: Duration) -> Finished {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!(
                    "flywheel {} did not end within {timeout:?}:\n{}",
                    self.what,
                    self.stderr_now()
                );
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        };
        Finished {
            status,
            stdout: std::fs::read_to_string(&self.stdout).unwrap_or_default(),
            stderr: std::fs::read_to_string(&self.stderr).unwrap_or_default(),
        }
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Run the binary to completion (60 s at most).
pub async fn run(db: &TestDb, args: &[&str]) -> Finished {
    spawn(db, args, &[]).finish(Duration::from_secs(60)).await
}

/// Wait (bounded) until `check` holds or the run ends; true when `check` held.
pub async fn until_or_exit<F, Fut>(run: &mut Run, timeout: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if check().await {
            return true;
        }
        if run.exited().is_some() {
            return check().await;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting on flywheel {}:\n{}",
            run.what,
            run.stderr_now()
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// The check `name` of a `doctor --json` report (panics naming the report
/// when there is none).
pub fn doctor_check<'a>(report: &'a serde_json::Value, name: &str) -> &'a serde_json::Value {
    report["checks"]
        .as_array()
        .expect("a checks array")
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no {name} check: {report}"))
}

/// Weekly training in the background, with enough epochs (at most 12; early
/// stopping decides) to be interrupted between them.
pub fn spawn_weekly_training(db: &TestDb) -> Run {
    spawn(
        db,
        &["weekly-training", "--min-samples", "100", "--json"],
        &[("FLYWHEEL_TRAINING__EPOCHS", "12")],
    )
}

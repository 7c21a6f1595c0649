//! Installing, starting and stopping Label Studio processes for tests; see
//! `label_studio.rs` for how they are used.

use std::io::Read as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::label_studio::{ADMIN_EMAIL, ADMIN_PASSWORD, LEGACY_TOKEN, VERSION};

/// Every token is signed with it; fixed so a restarted server keeps them.
const SECRET_KEY: &str = "flywheel-tests-not-a-secret-0123456789";
/// Generous: a first start (migrations) took 210 s on a busy 2-core machine.
const START_DEADLINE: Duration = Duration::from_secs(400);

/// A server on `port` over `data_dir`, under its watchdog shell.
pub struct Server {
    pub port: u16,
    pub watchdog: Child,
    pub log: PathBuf,
}

/// Start Label Studio on a free port over `data_dir`; returns once
/// `/health` answers.
pub fn start_server(bin: &Path, data_dir: &Path) -> anyhow::Result<Server> {
    let port = free_port()?;
    let log = data_dir.join("server.log");
    let mut watchdog = spawn_server(bin, port, data_dir, &log)?;
    wait_healthy(port, &mut watchdog, &log)?;
    Ok(Server {
        port,
        watchdog,
        log,
    })
}

impl Server {
    /// Stop the server and wait for it (the watchdog's TERM trap does it).
    pub fn stop(mut self) -> anyhow::Result<()> {
        let status = Command::new("kill")
            .arg("-TERM")
            .arg(self.watchdog.id().to_string())
            .status()?;
        anyhow::ensure!(
            status.success(),
            "could not signal the Label Studio watchdog"
        );
        self.watchdog.wait()?;
        Ok(())
    }
}

/// A data dir with every migration applied, the admin user, the legacy
/// token and an organisation with legacy tokens enabled, made once per
/// machine next to the venv. Migrating a fresh SQLite database is most of a
/// start (90-210 s on a busy 2-core machine, against ~30 s from a copy).
pub fn migrated_template(bin: &Path) -> anyhow::Result<PathBuf> {
    let cache = bin
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow::anyhow!("venv of {} has no parent dir", bin.display()))?;
    let template = cache.join(format!("label-studio-{VERSION}-template"));
    // Bump the suffix when anything baked into the template changes
    // (SECRET_KEY, LEGACY_TOKEN, the admin's credentials).
    let ready = template.join(".flywheel-template-v1");
    if ready.exists() {
        return Ok(template);
    }
    // Test binaries start in parallel: one builds, the others wait here. The
    // OS releases the lock if the builder dies; no marker means "redo".
    let lock = std::fs::File::create(cache.join(format!("label-studio-{VERSION}-template.lock")))?;
    lock.lock()?;
    if ready.exists() {
        return Ok(template);
    }
    let _ = std::fs::remove_dir_all(&template);
    std::fs::create_dir_all(&template)?;
    let t0 = Instant::now();
    eprintln!(
        "label-studio: migrating a template data dir in {} (once)",
        template.display()
    );
    start_server(bin, &template)?.stop()?;
    std::fs::write(&ready, b"")?;
    eprintln!(
        "label-studio: template ready in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(template)
}

/// Copy a data dir (SQLite database and media) file by file.
pub fn copy_dir(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let target = to.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            std::fs::copy(entry.path(), target)?;
        }
    }
    Ok(())
}

/// Run the install script; `None` when Python is missing outside CI.
pub fn install() -> anyhow::Result<Option<PathBuf>> {
    let in_ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
    let has_python = Command::new("python3")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !has_python {
        anyhow::ensure!(
            !in_ci,
            "python3 is not installed, and CI=true: Label Studio tests must run in CI"
        );
        eprintln!(
            "\n*** SKIPPING Label Studio tests: python3 not found (they run, and must pass, in CI) ***\n"
        );
        return Ok(None);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/label-studio.sh");
    let out = Command::new("bash")
        .arg(&script)
        .arg("install")
        .stderr(Stdio::inherit())
        .output()?;
    anyhow::ensure!(
        out.status.success(),
        "{} install failed ({}); run it by hand to see why",
        script.display(),
        out.status
    );
    let bin = PathBuf::from(String::from_utf8(out.stdout)?.trim());
    anyhow::ensure!(
        bin.join("label-studio").exists(),
        "no label-studio in {}",
        bin.display()
    );
    Ok(Some(bin))
}

fn free_port() -> std::io::Result<u16> {
    // The OS picks a free port; released at once for Label Studio to bind.
    // Another process could grab it in between; the health check would then
    // fail loudly rather than talk to a stranger (it checks our server runs).
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// Start the server under the watchdog shell described in the module doc.
fn spawn_server(bin: &Path, port: u16, data_dir: &Path, log: &Path) -> anyhow::Result<Child> {
    // `set -m`: the server gets its own process group, so the whole group can
    // be killed. `kill -0 $PARENT` polls the test process once a second.
    let script = r#"
        set -m
        "$LS_BIN/label-studio" start --no-browser --internal-host 127.0.0.1 --port "$LS_PORT" \
            --username "$LS_USER" --password "$LS_PASSWORD" >"$LS_LOG" 2>&1 </dev/null &
        server=$!
        set +m
        cleanup() {
            kill -TERM -- "-$server" 2>/dev/null
            for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$server" 2>/dev/null || break; sleep 0.5; done
            kill -KILL -- "-$server" 2>/dev/null
            wait "$server" 2>/dev/null
            kill -0 "$TEST_PID" 2>/dev/null || rm -rf "$LS_DATA"
            exit 0
        }
        # Ctrl-C reaches the test's process group, which includes this shell
        # but not the server: clean up rather than leave it orphaned.
        trap cleanup INT TERM HUP
        while kill -0 "$TEST_PID" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 1; done
        cleanup
    "#;
    let child = Command::new("bash")
        .arg("-c")
        .arg(script)
        .env("LS_BIN", bin)
        .env("LS_PORT", port.to_string())
        .env("LS_USER", ADMIN_EMAIL)
        .env("LS_PASSWORD", ADMIN_PASSWORD)
        .env("LS_LOG", log)
        .env("LS_DATA", data_dir)
        .env("TEST_PID", std::process::id().to_string())
        .env("LABEL_STUDIO_BASE_DATA_DIR", data_dir)
        .env("SECRET_KEY", SECRET_KEY)
        .env("LABEL_STUDIO_USER_TOKEN", LEGACY_TOKEN)
        .env("LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN", "true")
        .env("LABEL_STUDIO_DISABLE_SIGNUP_WITHOUT_LINK", "false")
        // No outside network here: don't let it look for updates or report.
        .env("LABEL_STUDIO_COLLECT_ANALYTICS", "false")
        .env("LATEST_VERSION_CHECK", "false")
        .env("SENTRY_DSN", "")
        .env("FRONTEND_SENTRY_DSN", "")
        // Webhook tests point Label Studio at a serve on 127.0.0.1, which
        // it refuses unless SSRF protection is off (DESIGN §11).
        .env("SSRF_PROTECTION_ENABLED", "false")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()?;
    Ok(child)
}

/// Poll `/health` until it answers 200, the server dies, or the deadline.
fn wait_healthy(port: u16, watchdog: &mut Child, log: &Path) -> anyhow::Result<()> {
    let deadline = Instant::now() + START_DEADLINE;
    let host = format!("127.0.0.1:{port}");
    while Instant::now() < deadline {
        if let Some(status) = watchdog.try_wait()? {
            anyhow::bail!(
                "Label Studio exited ({status}) during start-up; log:\n{}",
                tail(log)
            );
        }
        if http_get_status(&host, "/health") == Some(200) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(250)); // poll interval
    }
    anyhow::bail!(
        "Label Studio did not answer /health within {START_DEADLINE:?}; log:\n{}",
        tail(log)
    )
}

/// A minimal blocking GET, so start-up needs no runtime.
fn http_get_status(host: &str, path: &str) -> Option<u16> {
    use std::io::Write as _;
    let mut stream = std::net::TcpStream::connect(host).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {host}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

//! The environment a test runs the `flywheel` binary in: nothing from the
//! developer's environment leaks in (no `DATABASE_URL`, `LABEL_STUDIO_*`,
//! `FLYWHEEL_*`), and HOME, the XDG dirs and the working directory are a
//! directory of the test's own.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Variables of the developer's environment that would change what the
/// binary does (its configuration), and are removed for tests.
pub fn leaks_configuration(key: &str) -> bool {
    key == "DATABASE_URL" || key.starts_with("LABEL_STUDIO_") || key.starts_with("FLYWHEEL_")
}

/// The variables to set so that `home` is the user's home for the binary.
pub fn home_vars(home: &Path) -> [(&'static str, PathBuf); 3] {
    [
        ("HOME", home.to_path_buf()),
        ("XDG_DATA_HOME", home.join("xdg-data")),
        ("XDG_CONFIG_HOME", home.join("xdg-config")),
    ]
}

/// Make `cmd` run inside `home`: its configuration variables removed, HOME,
/// the XDG dirs and the working directory in `home`.
pub fn isolate(cmd: &mut Command, home: &Path) {
    for (key, _) in std::env::vars() {
        if leaks_configuration(&key) {
            cmd.env_remove(key);
        }
    }
    cmd.envs(home_vars(home)).current_dir(home);
}

/// The binary, isolated in `home`.
pub fn flywheel_command(home: &Path) -> Command {
    let mut cmd = Command::new(flywheel_bin());
    isolate(&mut cmd, home);
    cmd
}

/// [`flywheel_command`] as an `assert_cmd` command.
pub fn flywheel_cmd(home: &Path) -> assert_cmd::Command {
    assert_cmd::Command::from_std(flywheel_command(home))
}

/// The path of the binary under test.
pub fn flywheel_bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("flywheel")
}

/// The same isolation as a shell `env …` prefix, for a command typed into a
/// terminal (tmux) rather than spawned from here.
pub fn env_prefix(home: &Path) -> String {
    let mut prefix = String::from("env");
    for (key, _) in std::env::vars() {
        if leaks_configuration(&key) {
            prefix.push_str(&format!(" -u {key}"));
        }
    }
    for (key, value) in home_vars(home) {
        prefix.push_str(&format!(" {key}={}", shell_quoted(&value)));
    }
    prefix
}

/// `path` in single quotes for a POSIX shell.
pub fn shell_quoted(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

pub fn path_string(p: &Path) -> String {
    p.display().to_string()
}

/// Every regular file under `dir` (recursively), sorted: for "nothing
/// half-written" and "no secret in any file" checks.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out.sort();
    out
}

//! Build facts for `flywheel --version`: the git commit the binary was built
//! from and the newest schema migration it carries.
//!
//! Works from a clean clone, a source tarball and a host without git: the
//! commit is then "unknown" (or what a packager sets in
//! `FLYWHEEL_GIT_COMMIT`). A git repository that merely contains this crate
//! (vendored into another project) is not ours: its commit is not used.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    let manifest_dir =
        PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets it"));
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-env-changed=FLYWHEEL_GIT_COMMIT");

    let commit = std::env::var("FLYWHEEL_GIT_COMMIT")
        .ok()
        .filter(|c| !c.trim().is_empty())
        .or_else(|| git_commit(&manifest_dir))
        .unwrap_or_else(|| "unknown".to_string());
    println!("cargo:rustc-env=FLYWHEEL_GIT_COMMIT={commit}");

    let migrations = manifest_dir.join("migrations/sqlite");
    println!("cargo:rerun-if-changed={}", migrations.display());
    println!(
        "cargo:rustc-env=FLYWHEEL_SCHEMA_VERSION={}",
        newest_migration(&migrations)
    );
}

/// `git rev-parse --short=12 HEAD` when this crate is the top of a work tree;
/// and the files whose change means a new commit, so cargo reruns this.
fn git_commit(dir: &Path) -> Option<String> {
    let git = |args: &[&str]| -> Option<String> {
        let out = Command::new("git")
            .args(args)
            .current_dir(dir)
            .output()
            .ok()?;
        out.status
            .success()
            .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
            .filter(|s| !s.is_empty())
    };
    let top = PathBuf::from(git(&["rev-parse", "--show-toplevel"])?);
    if top.canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let commit = git(&["rev-parse", "--short=12", "HEAD"])?;
    let mut watched = vec![git(&["rev-parse", "--git-path", "HEAD"])];
    if let Some(branch) = git(&["symbolic-ref", "-q", "HEAD"]) {
        watched.push(git(&["rev-parse", "--git-path", &branch]));
    }
    watched.push(git(&["rev-parse", "--git-path", "packed-refs"]));
    for path in watched.into_iter().flatten() {
        let path = dir.join(path);
        // cargo reruns on every build for a path that does not exist
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }
    Some(commit)
}

/// The number of the newest `NNNN_name.sql` in `dir` (0 when none).
fn newest_migration(dir: &Path) -> u32 {
    std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|entry| {
            let name = entry.file_name().into_string().ok()?;
            name.strip_suffix(".sql")?.split('_').next()?.parse().ok()
        })
        .max()
        .unwrap_or(0)
}

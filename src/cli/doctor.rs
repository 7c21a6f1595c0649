//! `flywheel doctor`: check the installation and print fixes.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::Context;
use crate::doctor::{self, CheckStatus, Section};
use crate::error::Result;

#[derive(Debug, clap::Args)]
pub struct DoctorArgs {
    /// Also post a test event to `[alerts] webhook_url` and check it was accepted.
    #[arg(long)]
    pub test_alert: bool,
}

pub async fn doctor(ctx: &Context, args: DoctorArgs) -> Result<ExitCode> {
    let mut checks = doctor::run_checks(&ctx.loaded).await;
    checks.push(doctor::alert_webhook_check(ctx.config(), args.test_alert).await);
    checks.sort_by_key(|c| c.section);
    let failed = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Fail)
        .count();
    let warned = checks
        .iter()
        .filter(|c| c.status == CheckStatus::Warn)
        .count();
    ctx.out.summary(
        &serde_json::json!({ "ok": failed == 0, "failed": failed, "warned": warned, "checks": checks }),
        || {
            let mut out = String::new();
            let mut section = Section::Installation;
            for c in &checks {
                if c.section != section {
                    section = c.section;
                    let _ = writeln!(out, "Loop health");
                }
                let mark = match c.status {
                    CheckStatus::Pass => "pass",
                    CheckStatus::Warn => "WARN",
                    CheckStatus::Fail => "FAIL",
                };
                let _ = writeln!(out, "[{mark}] {:<17} {}", c.name, c.detail);
                if let Some(fix) = &c.fix {
                    let _ = writeln!(out, "       {:<17} fix: {fix}", "");
                }
            }
            let _ = write!(out, "{failed} failed, {warned} warnings");
            out
        },
    );
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

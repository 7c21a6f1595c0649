//! `flywheel doctor`: check the installation and print fixes.

use std::fmt::Write as _;
use std::process::ExitCode;

use super::Context;
use crate::doctor::{self, CheckStatus};
use crate::error::Result;

pub async fn doctor(ctx: &Context) -> Result<ExitCode> {
    let checks = doctor::run_checks(&ctx.loaded).await;
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
            for c in &checks {
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

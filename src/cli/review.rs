//! `flywheel label-studio-sync`.

use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::Context;
use crate::config::Config;
use crate::error::{Error, Result};
use crate::pipeline::label_studio_sync::{self, SyncOptions};
use crate::review::label_studio::{ClientOptions, LabelStudioClient};

#[derive(Debug, Args)]
pub struct SyncArgs {
    /// Push at most N samples this run.
    #[arg(long)]
    pub limit: Option<i64>,
    /// The Label Studio project (overrides LABEL_STUDIO_PROJECT_ID).
    #[arg(long)]
    pub project_id: Option<i64>,
    /// Only push the review queue.
    #[arg(long, conflicts_with = "pull_only")]
    pub push_only: bool,
    /// Only pull finished annotations.
    #[arg(long)]
    pub pull_only: bool,
}

/// The configured client, or a configuration error saying what to set.
pub fn label_studio_client(config: &Config) -> Result<LabelStudioClient> {
    let ls = &config.label_studio;
    let (Some(url), Some(key)) = (&ls.url, &ls.api_key) else {
        return Err(Error::config(
            "Label Studio is not configured: set LABEL_STUDIO_URL and LABEL_STUDIO_API_KEY \
             (environment, .env or .env.labelstudio), or review in the console instead",
        ));
    };
    LabelStudioClient::new(
        url,
        secrecy::SecretString::from(key.expose().to_string()),
        ClientOptions {
            timeout: Duration::from_secs(ls.timeout_secs.max(1)),
            ..ClientOptions::default()
        },
    )
}

pub async fn label_studio_sync(ctx: &Context, args: &SyncArgs) -> Result<ExitCode> {
    let client = label_studio_client(ctx.config())?;
    let store = ctx.store().await?;
    let options = SyncOptions {
        limit: args.limit,
        project_id: args.project_id,
        push: !args.pull_only,
        pull: !args.push_only,
    };
    let (reporter, display) = ctx.out.progress();
    let result = label_studio_sync::run(
        &store,
        ctx.config(),
        &client,
        options,
        ctx.trigger,
        &reporter,
    )
    .await;
    drop(reporter);
    display.finish();
    store.close().await;
    let report = result?;
    ctx.out.summary(&serde_json::json!({ "ok": true, "sync": report }), || {
        let mut text = format!(
            "Label Studio project {}{}: pushed {}, reconciled {}; pulled {}: {} approved, {} corrected, {} rejected, {} unusable, {} with disagreeing annotators",
            report.project_id,
            if report.project_created { " (created)" } else { "" },
            report.pushed,
            report.reconciled,
            report.pulled,
            report.approved,
            report.corrected,
            report.rejected,
            report.unusable,
            report.disagreements
        );
        for e in &report.errors {
            text.push_str(&format!("\nwarning: {e}"));
        }
        text
    });
    Ok(ExitCode::SUCCESS)
}

//! `flywheel weekly-training`.

use std::process::ExitCode;

use clap::Args;

use super::Context;
use crate::error::Result;
use crate::stages::weekly_training::{WeeklyOutcome, WeeklyTraining};

#[derive(Debug, Args)]
pub struct WeeklyTrainingArgs {
    /// Train only with at least this many approved unused samples
    /// (default: training.min_samples, 500).
    #[arg(long)]
    pub min_samples: Option<i64>,
    /// Train now whatever the count (on all approved samples).
    #[arg(long)]
    pub force: bool,
    /// Bump the MAJOR version (an architecture change) instead of MINOR.
    #[arg(long)]
    pub major: bool,
}

pub async fn weekly_training(ctx: &Context, args: &WeeklyTrainingArgs) -> Result<ExitCode> {
    let mut stage = WeeklyTraining {
        force: args.force,
        major: args.major,
        ..WeeklyTraining::from_config(ctx.config())
    };
    if let Some(min_samples) = args.min_samples {
        stage.min_samples = min_samples;
    }
    let outcome = ctx.run_stage(stage).await?;
    ctx.out.summary(&serde_json::json!({ "ok": true, "result": outcome }), || match &outcome {
        WeeklyOutcome::Skipped {
            approved_unused,
            min_samples,
        } => format!(
            "Nothing to do: {approved_unused} approved unused samples, weekly training needs {min_samples} (--force trains anyway)."
        ),
        WeeklyOutcome::Trained(s) => format!(
            "{} trained on {} samples, judged on {} gold items: {} → registered as {}.{}\nReport: {}",
            s.version,
            s.train_samples,
            s.test_samples,
            s.reason,
            s.status,
            match s.suspects {
                0 => String::new(),
                n => format!(
                    "\n{n} suspect labels (the model confidently disagrees) wait for a human and stay out of training until then: flywheel stats suspects"
                ),
            },
            s.report_path.display()
        ),
    });
    Ok(ExitCode::SUCCESS)
}

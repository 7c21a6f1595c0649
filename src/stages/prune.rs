//! `flywheel prune`: conversation logs older than a retention period are
//! deleted in short batches (serve keeps writing meanwhile). Samples and
//! model versions are kept; a sample only loses the link to its
//! conversation.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::{Stage, Trigger, run_stage};
use crate::progress::Reporter;
use crate::storage::{Store, Timestamp};

/// Conversations deleted per transaction: short enough not to hold up
/// serve's group commits.
const BATCH: i64 = 10_000;

#[derive(Debug, Clone)]
pub struct PruneOptions {
    pub older_than: chrono::Duration,
    /// Count what would go; delete nothing, record nothing.
    pub dry_run: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneSummary {
    /// Conversations created before this instant are pruned.
    pub cutoff: Timestamp,
    pub dry_run: bool,
    /// Older than the cutoff when the run started.
    pub conversations: i64,
    /// Of those, never processed by daily capture.
    pub pending: i64,
    pub deleted: u64,
}

pub async fn run(
    store: &Store,
    options: &PruneOptions,
    trigger: Trigger,
    reporter: &Reporter,
) -> Result<PruneSummary> {
    if options.older_than < chrono::Duration::days(1) {
        return Err(Error::usage(
            "--older-than must be at least 1d: prune is for retention, not for emptying the table",
        ));
    }
    let cutoff = Timestamp::from(chrono::Utc::now() - options.older_than);
    if options.dry_run {
        return count(store, cutoff, true).await;
    }
    run_stage(store, Stage::Prune, trigger, |_| async {
        let mut summary = count(store, cutoff, false).await?;
        reporter.phase("prune", Some(summary.conversations.max(0) as u64));
        loop {
            reporter.check_cancelled()?;
            let deleted = store.delete_conversations_before(cutoff, BATCH).await?;
            if deleted == 0 {
                break;
            }
            summary.deleted += deleted;
            reporter.advance(summary.deleted);
        }
        tracing::info!(deleted = summary.deleted, cutoff = %cutoff, "pruned old conversations");
        let counts = serde_json::json!({ "deleted": summary.deleted, "pending": summary.pending });
        Ok((summary, counts))
    })
    .await
}

async fn count(store: &Store, cutoff: Timestamp, dry_run: bool) -> Result<PruneSummary> {
    let counts = store.conversations_before(cutoff).await?;
    if counts.pending > 0 {
        tracing::warn!(
            pending = counts.pending,
            "{} conversation(s) older than {cutoff} were never processed by daily capture; \
             pruning loses them as training data",
            counts.pending
        );
    }
    Ok(PruneSummary {
        cutoff,
        dry_run,
        conversations: counts.conversations,
        pending: counts.pending,
        deleted: 0,
    })
}

//! `flywheel prune`: conversation logs older than a retention period are
//! deleted in short batches (serve keeps writing meanwhile). Samples and
//! model versions are kept; a sample only loses the link to its
//! conversation.

use serde::Serialize;

use crate::error::{Error, Result};
use crate::jobs::{Stage, StageContext, StageJob};
use crate::storage::{Store, Timestamp};

/// Conversations deleted per transaction: short enough not to hold up
/// serve's group commits.
const BATCH: i64 = 10_000;

/// The prune stage. Its fields are its options.
#[derive(Debug, Clone)]
pub struct Prune {
    /// Private: [`Prune::new`] checks it.
    older_than: chrono::Duration,
    /// Count what would go; delete nothing, record nothing.
    pub dry_run: bool,
}

impl Prune {
    /// Prune conversations older than `older_than`, which must be at least
    /// a day (a usage error otherwise).
    pub fn new(older_than: chrono::Duration) -> Result<Self> {
        if older_than < chrono::Duration::days(1) {
            return Err(Error::usage(
                "--older-than must be at least 1d: prune is for retention, not for emptying the table",
            ));
        }
        Ok(Self {
            older_than,
            dry_run: false,
        })
    }
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

/// What `job_runs.counts` records of a prune.
#[derive(Serialize)]
struct RecordedCounts {
    deleted: u64,
    pending: i64,
}

impl StageJob for Prune {
    const STAGE: Stage = Stage::Prune;
    type Outcome = PruneSummary;

    /// A dry run takes no lock and records nothing.
    fn recorded(&self) -> bool {
        !self.dry_run
    }

    async fn work(self, ctx: &StageContext<'_>) -> Result<PruneSummary> {
        let (store, reporter) = (ctx.store, ctx.reporter);
        let cutoff = Timestamp::from(chrono::Utc::now() - self.older_than);
        let mut summary = count(store, cutoff, self.dry_run).await?;
        if self.dry_run {
            return Ok(summary);
        }
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
        // Pruned minutes' counters went to zero (on PostgreSQL, in this
        // backend's shard): fold them away.
        store.fold_counter_shards_or_warn().await;
        tracing::info!(deleted = summary.deleted, cutoff = %cutoff, "pruned old conversations");
        Ok(summary)
    }

    fn counts(summary: &PruneSummary) -> impl Serialize {
        RecordedCounts {
            deleted: summary.deleted,
            pending: summary.pending,
        }
    }
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

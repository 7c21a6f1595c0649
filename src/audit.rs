//! Audits of live traffic: how the loop learns the accuracy of what it
//! serves and of what it approves by itself.
//!
//! Reviews of uncertain conversations say nothing about the confident
//! ones, so neither production accuracy nor auto-approval precision can be
//! read off them. An audit is a conversation drawn at random — by a hash
//! of its id, `audit.percent` of all captured traffic whatever its
//! confidence — whose sample then waits for a human label even when it was
//! auto-approved (it still trains as approved until a human disagrees; a
//! disagreement corrects it). Over the audited conversations a version
//! served, the share answered right is an unbiased estimate of its
//! production accuracy; over those auto-approved, of auto-approval
//! precision. Daily capture draws the audits (`Store::draw_audits`); the
//! review order ([`crate::review::order`]) gives them `audit.share` of its
//! places, newest first, so the version serving now is the one measured.

use serde::Serialize;

use crate::estimate::{Estimate, wilson};

/// Multiplier of Knuth's multiplicative hash; the SQL in
/// `storage/audits.rs` computes the same bucket.
pub const HASH_MULTIPLIER: i64 = 2_654_435_761;

/// Whether conversation `id` is drawn for audit at `percent`: the top of a
/// multiplicative hash of (the low 20 bits of) its id, as a bucket 0–99.
/// Deterministic, so a re-run draws the same conversations.
pub fn drawn(conversation_id: i64, percent: u32) -> bool {
    bucket(conversation_id) < i64::from(percent)
}

/// The 0–99 bucket of a conversation id (see [`drawn`]).
pub fn bucket(conversation_id: i64) -> i64 {
    ((conversation_id.rem_euclid(1 << 20) * HASH_MULTIPLIER) % (1 << 32)) / 42_949_673
}

/// What the audits of one model version found (a storage row).
#[derive(Debug, Clone, Default, PartialEq, sqlx::FromRow)]
pub struct AuditTally {
    pub version: Option<String>,
    /// Conversations drawn.
    pub drawn: i64,
    /// Of those, with a human label for their sample.
    pub labelled: i64,
    /// Of those, served the label (fallback counts as `oos`).
    pub served_right: i64,
    /// Labelled audits that daily capture had auto-approved, and how many
    /// of them a human agreed with.
    pub auto_approved: i64,
    pub auto_approved_right: i64,
    /// Drawn audits still waiting for a human label (neither labelled nor
    /// thrown out).
    pub awaiting: i64,
}

/// The estimates of one version, each with its 95 % interval and n.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct VersionEstimate {
    pub version: String,
    /// Served answers a human agreed with; `None` before any audit has a label.
    pub production_accuracy: Option<Estimate>,
    /// Auto-approvals a human agreed with.
    pub auto_approval_precision: Option<Estimate>,
    /// Audits still waiting for a human label.
    pub awaiting_label: i64,
}

impl From<&AuditTally> for VersionEstimate {
    fn from(t: &AuditTally) -> Self {
        let measured = |right: i64, n: i64| (n > 0).then(|| wilson(right as usize, n as usize));
        VersionEstimate {
            version: t.version.clone().unwrap_or_else(|| "unknown".into()),
            production_accuracy: measured(t.served_right, t.labelled),
            auto_approval_precision: measured(t.auto_approved_right, t.auto_approved),
            awaiting_label: t.awaiting,
        }
    }
}

/// Auto-approval precision over several versions' tallies.
pub fn pooled_precision(tallies: &[AuditTally]) -> Option<Estimate> {
    let right: i64 = tallies.iter().map(|t| t.auto_approved_right).sum();
    let n: i64 = tallies.iter().map(|t| t.auto_approved).sum();
    (n > 0).then(|| wilson(right as usize, n as usize))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_deterministic_and_near_its_percentage() {
        let drawn_ids = (1..=100_000).filter(|id| drawn(*id, 5)).count();
        assert!((4_500..=5_500).contains(&drawn_ids), "{drawn_ids}");
        assert!((1..=1000).all(|id| !drawn(id, 0)));
        assert!((1..=1000).all(|id| drawn(id, 100)));
        assert!((0..1_000_000).all(|id| (0..100).contains(&bucket(id))));
        // Spread, not a block: consecutive ids land in different buckets.
        let first: std::collections::BTreeSet<i64> = (1..=20).map(bucket).collect();
        assert!(first.len() > 15, "{first:?}");
    }

    #[test]
    fn estimates_carry_their_interval_and_what_awaits_a_label() {
        let tally = AuditTally {
            version: Some("router-v1.1.0".into()),
            drawn: 120,
            labelled: 100,
            served_right: 80,
            auto_approved: 60,
            auto_approved_right: 57,
            awaiting: 20,
        };
        let e = VersionEstimate::from(&tally);
        let accuracy = e.production_accuracy.unwrap();
        assert_eq!((accuracy.value, accuracy.n), (0.8, 100));
        assert!(accuracy.low < 0.8 && accuracy.high > 0.8);
        assert_eq!(e.auto_approval_precision.unwrap().n, 60);
        assert_eq!(e.awaiting_label, 20);
        let none = VersionEstimate::from(&AuditTally {
            drawn: 3,
            ..AuditTally::default()
        });
        assert_eq!(none.production_accuracy, None);
        assert_eq!(pooled_precision(&[tally.clone(), tally]).unwrap().n, 120);
    }
}

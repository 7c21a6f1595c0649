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
//! precision. Daily capture draws the audits (`Store::draw_audits`), the
//! review queue and Label Studio pushes give them `audit.share` of their
//! places, newest first, so the version serving now is the one measured.

use std::collections::HashSet;
use std::hash::Hash;

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

/// The first `limit` items of the review order: audits hold `share`
/// percent of every stretch of it — at each place, an audit comes when
/// fewer than `share` percent of the places so far (rounded up) are audits
/// — and the queue, in its own order, the rest; either side fills what the
/// other cannot. So the first item is an audit when any waits (a short
/// session still measures), and an urgent item never waits behind more
/// than its share of audits. An item on both sides (an audited
/// conversation whose sample also needs review) comes once, as an audit.
pub fn interleave<T, K: Eq + Hash>(
    queue: Vec<T>,
    audits: Vec<T>,
    share: u32,
    limit: usize,
    key: impl Fn(&T) -> K,
) -> Vec<T> {
    let audit_keys: HashSet<K> = audits.iter().map(&key).collect();
    let mut queue = queue
        .into_iter()
        .filter(|item| !audit_keys.contains(&key(item)))
        .peekable();
    let mut audits = audits.into_iter().peekable();
    let mut order = Vec::with_capacity(limit);
    let mut audits_placed = 0;
    while order.len() < limit {
        let due = ((order.len() + 1) * share as usize).div_ceil(100);
        let audit_turn = audits_placed < due || queue.peek().is_none();
        let next = if audit_turn {
            audits.next().or_else(|| queue.next())
        } else {
            queue.next().or_else(|| audits.next())
        };
        let Some(item) = next else { break };
        if audit_keys.contains(&key(&item)) {
            audits_placed += 1;
        }
        order.push(item);
    }
    order
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

    #[test]
    fn audits_hold_their_share_of_every_stretch_and_either_side_fills() {
        let queue: Vec<u32> = (1..=100).collect();
        let audits: Vec<u32> = (1001..=1100).collect();
        let id = |n: &u32| *n;
        let batch = interleave(queue.clone(), audits.clone(), 20, 12, id);
        assert_eq!(batch, vec![1001, 1, 2, 3, 4, 1002, 5, 6, 7, 8, 1003, 9]);
        // 40 %: two in every five places, an audit first.
        let batch = interleave(queue.clone(), audits.clone(), 40, 5, id);
        assert_eq!(batch, vec![1001, 1, 1002, 2, 3]);
        // Few audits: the queue fills the rest; an empty queue: audits do.
        assert_eq!(
            interleave(queue.clone(), vec![1001], 50, 4, id),
            vec![1001, 1, 2, 3]
        );
        assert_eq!(
            interleave(Vec::new(), audits.clone(), 20, 3, id),
            vec![1001, 1002, 1003]
        );
        assert_eq!(interleave(queue.clone(), audits, 0, 3, id), vec![1, 2, 3]);
        assert!(interleave(Vec::<u32>::new(), Vec::new(), 20, 5, id).is_empty());
    }

    #[test]
    fn an_audit_that_also_needs_review_is_taken_once() {
        // 2 and 3 are audited and need review: they come once each, in the
        // audits' places, and the queue's places go to 1, 4, 5.
        assert_eq!(
            interleave(vec![1, 2, 3, 4, 5, 6], vec![2, 9, 3], 40, 6, |n: &u32| *n),
            vec![2, 1, 9, 4, 5, 3]
        );
        // Only duplicates: nothing twice.
        assert_eq!(
            interleave(vec![1, 2], vec![2, 1], 50, 4, |n: &u32| *n),
            vec![2, 1]
        );
    }
}

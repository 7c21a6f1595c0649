//! Audits of live traffic: how the loop learns the accuracy of what it
//! serves and of what it approves by itself.
//!
//! Reviews of uncertain conversations say nothing about the confident
//! ones, so neither production accuracy nor auto-approval precision can be
//! read off them. An audit is a conversation drawn at random — by a hash
//! of its id, `audit.percent` of all captured traffic whatever its
//! confidence, the uncertain part at a higher rate ([`DrawRates`]) — whose
//! sample then waits for a human label even when it was auto-approved (it
//! still trains as approved until a human disagrees; a disagreement
//! corrects it). Over the audited conversations a version served, each
//! weighted by the inverse of its draw rate, the share answered right is an
//! unbiased estimate of its production accuracy; over those auto-approved,
//! of auto-approval precision. Daily capture draws the audits (`Store::draw_audits`); the
//! review order ([`crate::review::order`]) gives them `audit.share` of its
//! places, newest first, so the version serving now is the one measured.

use serde::Serialize;

use crate::domain::ConversationStatus;
use crate::estimate::{Estimate, StratumCount, stratified_share};

/// Multiplier of Knuth's multiplicative hash; the SQL in
/// `storage/audits.rs` computes the same bucket.
pub const HASH_MULTIPLIER: i64 = 2_654_435_761;

/// Whether conversation `id` is drawn for audit at `permille` per mille:
/// the top of a multiplicative hash of (the low 20 bits of) its id, as a
/// bucket 0–999. Deterministic, so a re-run draws the same conversations.
pub fn drawn(conversation_id: i64, permille: u32) -> bool {
    bucket(conversation_id) < i64::from(permille)
}

/// The 0–999 bucket of a conversation id (see [`drawn`]).
pub fn bucket(conversation_id: i64) -> i64 {
    ((conversation_id.rem_euclid(1 << 20) * HASH_MULTIPLIER) % (1 << 32)) / 4_294_968
}

/// The rates, per mille, at which one window's conversations are drawn:
/// uncertain ones `audit.needs_review_multiplier` times as often as
/// auto-approved ones, `audit.percent` of the window overall.
///
/// Why not uniform: about three in four conversations are auto-approved
/// and right ~97 % of the time, so they vary little; the uncertain quarter
/// holds most of the errors and most of the uncertainty about production
/// accuracy. Drawing it more often and weighting each audit by the inverse
/// of its rate keeps the estimates unbiased and narrows them at the same
/// number of labels. At twice the rate the strata's variances predict a
/// third less variance for production accuracy (the loop bench measured
/// 16 % less squared error over 60 versions), while three in five audits
/// still measure auto-approval precision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DrawRates {
    pub auto_approved: u32,
    pub needs_review: u32,
}

impl DrawRates {
    /// The rates for a window of `auto_approved` and `needs_review`
    /// conversations. Every conversation keeps a chance of at least one
    /// per mille while `percent` > 0, so no part of the traffic goes
    /// unmeasured.
    pub fn for_window(
        percent: u32,
        multiplier: u32,
        auto_approved: u64,
        needs_review: u64,
    ) -> Self {
        let overall = f64::from(percent.min(100) * 10);
        let (a, r) = (auto_approved as f64, needs_review as f64);
        if percent == 0 || a == 0.0 || r == 0.0 || multiplier <= 1 {
            let uniform = overall as u32;
            return Self {
                auto_approved: uniform,
                needs_review: uniform,
            };
        }
        // overall · (a + r) = rate · a + multiplier · rate · r
        let wanted = overall * (a + r);
        let rate = wanted / (a + f64::from(multiplier) * r);
        let (auto_rate, review_rate) = if rate * f64::from(multiplier) <= 1000.0 {
            (rate, rate * f64::from(multiplier))
        } else {
            // Every uncertain conversation is drawn; the rest of the
            // window's share comes from the confident ones.
            (((wanted - 1000.0 * r) / a).clamp(0.0, 1000.0), 1000.0)
        };
        Self {
            auto_approved: (auto_rate.round() as u32).clamp(1, 1000),
            needs_review: (review_rate.round() as u32).clamp(1, 1000),
        }
    }
}

/// What the audits of one model version drawn from one stratum at one
/// rate found (a storage row).
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AuditCell {
    pub version: Option<String>,
    /// What daily capture made of the conversations: auto-approved or
    /// needs-review, the stratum they were drawn from.
    pub conversation_status: ConversationStatus,
    /// The rate they were drawn at, per mille.
    pub draw_permille: i32,
    /// Drawn conversations with a human label for their sample.
    pub labelled: i64,
    /// Of those, served the label (fallback counts as `oos`).
    pub served_right: i64,
    /// Drawn audits still waiting for a human label (neither labelled nor
    /// thrown out).
    pub awaiting: i64,
}

impl AuditCell {
    fn count(&self) -> StratumCount<'_> {
        StratumCount {
            stratum: self.conversation_status.as_str(),
            rate: self.draw_permille.max(1) as f64 / 1000.0,
            n: self.labelled.max(0) as u64,
            successes: self.served_right.max(0) as u64,
        }
    }
}

/// What the audits of one model version found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct AuditTally {
    pub version: Option<String>,
    pub cells: Vec<AuditCell>,
}

impl AuditTally {
    /// Group storage rows by version, keeping their order.
    pub fn by_version(cells: Vec<AuditCell>) -> Vec<AuditTally> {
        let mut tallies: Vec<AuditTally> = Vec::new();
        for cell in cells {
            match tallies.last_mut() {
                Some(t) if t.version == cell.version => t.cells.push(cell),
                _ => tallies.push(AuditTally {
                    version: cell.version.clone(),
                    cells: vec![cell],
                }),
            }
        }
        tallies
    }

    /// Audits with a human label.
    pub fn labelled(&self) -> i64 {
        self.cells.iter().map(|c| c.labelled).sum()
    }

    pub fn awaiting(&self) -> i64 {
        self.cells.iter().map(|c| c.awaiting).sum()
    }

    /// Share of its traffic the version served right: every labelled
    /// audit weighted by the inverse of its draw rate.
    pub fn production_accuracy(&self) -> Option<Estimate> {
        stratified_share(&self.counts(|_| true))
    }

    /// Share of its auto-approvals a human agreed with.
    pub fn auto_approval_precision(&self) -> Option<Estimate> {
        stratified_share(
            &self.counts(|c| c.conversation_status == ConversationStatus::AutoApproved),
        )
    }

    fn counts(&self, keep: impl Fn(&AuditCell) -> bool) -> Vec<StratumCount<'_>> {
        self.cells
            .iter()
            .filter(|c| keep(c))
            .map(AuditCell::count)
            .collect()
    }
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
        VersionEstimate {
            version: t.version.clone().unwrap_or_else(|| "unknown".into()),
            production_accuracy: t.production_accuracy(),
            auto_approval_precision: t.auto_approval_precision(),
            awaiting_label: t.awaiting(),
        }
    }
}

/// Auto-approval precision over several versions' tallies.
pub fn pooled_precision(tallies: &[AuditTally]) -> Option<Estimate> {
    let pooled = AuditTally {
        version: None,
        cells: tallies
            .iter()
            .flat_map(|t| t.cells.iter().cloned())
            .collect(),
    };
    pooled.auto_approval_precision()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_draw_is_deterministic_and_near_its_rate() {
        let drawn_ids = (1..=100_000).filter(|id| drawn(*id, 50)).count();
        assert!((4_500..=5_500).contains(&drawn_ids), "{drawn_ids}");
        let per_mille = (1..=100_000).filter(|id| drawn(*id, 3)).count();
        assert!((200..=400).contains(&per_mille), "{per_mille}");
        assert!((1..=1000).all(|id| !drawn(id, 0)));
        assert!((1..=1000).all(|id| drawn(id, 1000)));
        assert!((0..1_000_000).all(|id| (0..1000).contains(&bucket(id))));
        // Spread, not a block: consecutive ids land in different buckets.
        let first: std::collections::BTreeSet<i64> = (1..=20).map(bucket).collect();
        assert!(first.len() > 15, "{first:?}");
    }

    #[test]
    fn rates_keep_the_overall_share_and_favour_the_uncertain() {
        // 5 % of 2 000 = 100 draws: 1 500 confident at 40 ‰ (60), 500
        // uncertain at 80 ‰ (40).
        let rates = DrawRates::for_window(5, 2, 1500, 500);
        assert_eq!(
            rates,
            DrawRates {
                auto_approved: 40,
                needs_review: 80
            }
        );
        // Uniform when asked, when one stratum is empty, or audits are off.
        let uniform = DrawRates {
            auto_approved: 50,
            needs_review: 50,
        };
        assert_eq!(DrawRates::for_window(5, 1, 1500, 500), uniform);
        assert_eq!(DrawRates::for_window(5, 2, 0, 500), uniform);
        assert_eq!(DrawRates::for_window(5, 2, 1500, 0), uniform);
        assert_eq!(DrawRates::for_window(0, 2, 1500, 500).needs_review, 0);
        // Mostly uncertain traffic at a high share: every uncertain
        // conversation, the rest of the share from the confident ones:
        // 950 of 1 000 draws: all 900 uncertain, and 50 of the 100 confident.
        let capped = DrawRates::for_window(95, 3, 100, 900);
        assert_eq!(
            capped,
            DrawRates {
                auto_approved: 500,
                needs_review: 1000
            }
        );
        // Never a zero chance for the confident while audits are on.
        assert!(DrawRates::for_window(1, 20, 10, 100_000).auto_approved >= 1);
    }

    fn cell(status: ConversationStatus, permille: i32, labelled: i64, right: i64) -> AuditCell {
        AuditCell {
            version: Some("router-v1.1.0".into()),
            conversation_status: status,
            draw_permille: permille,
            labelled,
            served_right: right,
            awaiting: 5,
        }
    }

    #[test]
    fn estimates_weight_each_audit_by_its_rate() {
        let tally = AuditTally {
            version: Some("router-v1.1.0".into()),
            cells: vec![
                cell(ConversationStatus::AutoApproved, 40, 60, 57),
                cell(ConversationStatus::NeedsReview, 80, 40, 20),
            ],
        };
        let e = VersionEstimate::from(&tally);
        let accuracy = e.production_accuracy.unwrap();
        // 57/0.04 + 20/0.08 right of 60/0.04 + 40/0.08: 1 675 / 2 000.
        assert!((accuracy.value - 0.8375).abs() < 1e-12, "{accuracy:?}");
        assert_eq!(accuracy.n, 100);
        assert!(accuracy.low < accuracy.value && accuracy.high > accuracy.value);
        let precision = e.auto_approval_precision.unwrap();
        assert_eq!(precision.n, 60);
        assert!((precision.value - 0.95).abs() < 1e-12);
        assert_eq!((e.awaiting_label, tally.labelled()), (10, 100));
        let none = VersionEstimate::from(&AuditTally {
            version: None,
            cells: vec![cell(ConversationStatus::NeedsReview, 80, 0, 0)],
        });
        assert_eq!(none.production_accuracy, None);
        assert_eq!(pooled_precision(&[tally.clone(), tally]).unwrap().n, 120);
    }

    #[test]
    fn rows_group_by_version() {
        let mut other = cell(ConversationStatus::AutoApproved, 50, 3, 3);
        other.version = Some("router-v1.2.0".into());
        let tallies = AuditTally::by_version(vec![
            cell(ConversationStatus::AutoApproved, 40, 1, 1),
            cell(ConversationStatus::NeedsReview, 80, 1, 0),
            other,
        ]);
        let shape: Vec<(Option<&str>, usize)> = tallies
            .iter()
            .map(|t| (t.version.as_deref(), t.cells.len()))
            .collect();
        assert_eq!(
            shape,
            [(Some("router-v1.1.0"), 2), (Some("router-v1.2.0"), 1)]
        );
    }
}

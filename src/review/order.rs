//! The order a human should review in, as one list: the review queue most
//! urgent first (priority, then most occurrences, then oldest) with audits
//! given their share, newest traffic first ([`crate::audit::interleave`]),
//! and suspect labels theirs of the rest, most suspicious first
//! ([`crate::suspects::review_mix`]).
//! The console reads its batch in this order; Label Studio is handed the
//! same order as prediction scores its labelling stream sorts by, and
//! [`rescore`] keeps those scores in order while changing as few as it can.

use crate::storage::label_studio_tasks::WaitingTask;
use crate::suspects::{Shares, review_mix};

/// Label Studio refuses prediction scores outside 0–1 (it drops them
/// silently), so the order lives inside (0, 1). Below this gap between two
/// neighbours an insert renumbers everything instead.
const MIN_GAP: f64 = 1e-9;

/// `tasks` in review order: the needs-review ones by priority, occurrences
/// (most first) and sample id; the audits (`audit_at`) newest first, given
/// `shares.audits` percent of the places; the suspects (`suspect_score`)
/// most suspicious first, `shares.suspects` percent of the rest; a task in
/// two comes once, as an audit before a suspect.
pub fn review_order(tasks: Vec<WaitingTask>, shares: Shares) -> Vec<WaitingTask> {
    let mut queue: Vec<WaitingTask> = tasks.iter().filter(|t| t.needs_review).cloned().collect();
    queue.sort_by_key(|t| (t.priority, std::cmp::Reverse(t.occurrences), t.sample_id));
    let mut suspects: Vec<WaitingTask> = tasks
        .iter()
        .filter(|t| t.suspect_score.is_some())
        .cloned()
        .collect();
    suspects.sort_by(|a, b| {
        let score = |t: &WaitingTask| t.suspect_score.unwrap_or(0.0);
        score(b)
            .total_cmp(&score(a))
            .then(a.sample_id.cmp(&b.sample_id))
    });
    let mut audits: Vec<WaitingTask> = tasks.into_iter().filter(|t| t.audit_at.is_some()).collect();
    audits.sort_by_key(|t| (std::cmp::Reverse(t.audit_at), t.sample_id));
    let len = queue.len() + suspects.len() + audits.len();
    review_mix(queue, suspects, audits, shares, len, |t| t.sample_id)
}

/// Scores in (0, 1) for a list that must come out in its order, lowest
/// first, given the scores its items already carry (`None`: none yet).
/// Returns the new score of each item that needs one (`None`: keep its
/// score). The items that already stand in order (a longest increasing run
/// of their scores) keep theirs; the others share out the gap between their
/// kept neighbours (or 0 and 1 at the ends).
pub fn rescore(current: &[Option<f64>]) -> Vec<Option<f64>> {
    let keep = longest_increasing(current);
    let mut out = vec![None; current.len()];
    let mut i = 0;
    while i < current.len() {
        if keep[i] {
            i += 1;
            continue;
        }
        // A run of items to re-score between two kept ones (or the ends).
        let end = (i..current.len())
            .find(|&j| keep[j])
            .unwrap_or(current.len());
        let low = i.checked_sub(1).and_then(|k| current[k]).unwrap_or(0.0);
        let high = current.get(end).copied().flatten().unwrap_or(1.0);
        let step = (high - low) / (end - i + 1) as f64;
        if step < MIN_GAP {
            return renumber(current.len());
        }
        for (k, slot) in out[i..end].iter_mut().enumerate() {
            *slot = Some(low + (k + 1) as f64 * step);
        }
        i = end;
    }
    out
}

/// Every item afresh, evenly spread over (0, 1).
fn renumber(len: usize) -> Vec<Option<f64>> {
    let step = 1.0 / (len + 1) as f64;
    (1..=len).map(|k| Some(k as f64 * step)).collect()
}

/// Which items form a longest strictly increasing run of the scores they
/// carry (items without a score never do). Patience sorting, O(n log n).
fn longest_increasing(scores: &[Option<f64>]) -> Vec<bool> {
    // tails[k]: index of the smallest last score of an increasing run of length k + 1.
    let mut tails: Vec<usize> = Vec::new();
    let mut previous: Vec<Option<usize>> = vec![None; scores.len()];
    for (i, score) in scores.iter().enumerate() {
        let Some(score) = score else { continue };
        let at = tails.partition_point(|&t| scores[t].is_some_and(|s| s < *score));
        previous[i] = at.checked_sub(1).map(|k| tails[k]);
        if at == tails.len() {
            tails.push(i);
        } else {
            tails[at] = i;
        }
    }
    let mut keep = vec![false; scores.len()];
    let mut at = tails.last().copied();
    while let Some(i) = at {
        keep[i] = true;
        at = previous[i];
    }
    keep
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scores after applying `rescore`, which must be strictly increasing.
    fn applied(current: &[Option<f64>]) -> (Vec<f64>, usize) {
        let new = rescore(current);
        let changed = new.iter().filter(|s| s.is_some()).count();
        let scores: Vec<f64> = current
            .iter()
            .zip(&new)
            .map(|(old, new)| new.or(*old).expect("every item has a score"))
            .collect();
        assert!(scores.windows(2).all(|w| w[0] < w[1]), "{scores:?}");
        assert!(scores.iter().all(|s| (0.0..=1.0).contains(s)), "{scores:?}");
        (scores, changed)
    }

    #[test]
    fn a_fresh_list_is_numbered_and_an_ordered_one_is_left_alone() {
        let (scores, changed) = applied(&[None, None, None]);
        assert_eq!((scores, changed), (vec![0.25, 0.5, 0.75], 3));
        let (_, changed) = applied(&[Some(0.1), Some(0.2), Some(0.5)]);
        assert_eq!(changed, 0);
        assert!(rescore(&[]).is_empty());
    }

    #[test]
    fn new_items_slot_between_and_around_the_old_ones_without_moving_them() {
        // This week's urgent items come first, one lands in the middle, one at the end.
        let current = [None, None, Some(0.25), None, Some(0.5), None];
        let (scores, changed) = applied(&current);
        assert_eq!(changed, 4);
        assert_eq!((scores[2], scores[4]), (0.25, 0.5));
        assert!(scores[0] > 0.0 && scores[3] > 0.25 && scores[5] > 0.5);
    }

    #[test]
    fn an_item_that_moved_is_the_only_one_rescored() {
        // An audit that jumped ahead of three older tasks.
        let (scores, changed) = applied(&[Some(0.4), Some(0.1), Some(0.2), Some(0.3)]);
        assert_eq!(changed, 1);
        assert_eq!(&scores[1..], &[0.1, 0.2, 0.3]);
    }

    #[test]
    fn a_gap_too_small_renumbers_everything() {
        let (scores, changed) = applied(&[Some(0.5), None, Some(0.5 + 1e-12)]);
        assert_eq!(changed, 3);
        assert_eq!(scores, vec![0.25, 0.5, 0.75]);
    }

    fn task(
        sample_id: i64,
        priority: i32,
        occurrences: i32,
        audit_minutes_ago: Option<i64>,
    ) -> WaitingTask {
        WaitingTask {
            task_id: sample_id + 100,
            sample_id,
            intent: "greeting".into(),
            priority,
            occurrences,
            needs_review: audit_minutes_ago.is_none() || sample_id % 2 == 0,
            audit_at: audit_minutes_ago.map(|m| {
                crate::storage::Timestamp(chrono::Utc::now() - chrono::Duration::minutes(m))
            }),
            suspect_score: None,
            order_score: None,
        }
    }

    /// Audits' share alone (no suspects waiting changes nothing).
    fn audits_at(share: u32) -> Shares {
        Shares {
            audits: share,
            suspects: 20,
        }
    }

    #[test]
    fn the_review_order_is_the_queue_with_audits_given_their_share() {
        let tasks = vec![
            task(1, 5, 1, None),
            task(2, 2, 1, None),
            task(3, 2, 9, None),
            task(5, 5, 1, Some(10)),
            task(7, 5, 1, Some(1)),
            task(4, 5, 3, Some(5)), // audited and needs review: once, as an audit
        ];
        let order: Vec<i64> = review_order(tasks, audits_at(50))
            .iter()
            .map(|t| t.sample_id)
            .collect();
        assert_eq!(order, vec![7, 3, 4, 2, 5, 1]);
        let no_audits: Vec<i64> = review_order(
            vec![task(1, 5, 1, None), task(2, 2, 1, None)],
            audits_at(20),
        )
        .iter()
        .map(|t| t.sample_id)
        .collect();
        assert_eq!(no_audits, vec![2, 1]);
    }

    #[test]
    fn suspects_lead_the_places_audits_leave_most_suspicious_first() {
        let suspect = |sample_id: i64, score: f64| WaitingTask {
            needs_review: false,
            suspect_score: Some(score),
            ..task(sample_id, 5, 1, None)
        };
        let tasks = vec![
            task(1, 5, 1, None),
            task(2, 2, 1, None),
            suspect(10, 0.4),
            suspect(11, 0.9),
            task(7, 5, 1, Some(1)),
        ];
        let shares = Shares {
            audits: 25,
            suspects: 50,
        };
        let order: Vec<i64> = review_order(tasks, shares)
            .iter()
            .map(|t| t.sample_id)
            .collect();
        assert_eq!(order, vec![7, 11, 2, 10, 1]);
    }
}

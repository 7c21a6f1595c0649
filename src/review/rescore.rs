//! The scores that hand the review order ([`super::order`]) to Label
//! Studio's labelling stream, which serves the lowest prediction score
//! first: [`rescore`] keeps them in order while changing as few as it can,
//! so a new week's items slot in between last week's without moving them.

/// Label Studio refuses prediction scores outside 0–1 (it drops them
/// silently), so the order lives inside (0, 1). Below this gap between two
/// neighbours an insert renumbers everything instead.
const MIN_GAP: f64 = 1e-9;

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
}

//! The order a human should review in: one definition for the console's
//! Review pane, `stats queue`, the Label Studio push and the order handed
//! to Label Studio's labelling stream ([`super::rescore`]).
//!
//! What waits ([`crate::storage::waiting`]) falls into parts, each in its
//! own order:
//! - the **queue**, by expected value ([`super::value`]), most first; a
//!   near-duplicate ([`crate::text::near_duplicate_key`]) of an item ahead
//!   of it, or of a sample a human labelled this week, goes behind it;
//! - **audits**, newest traffic first, holding `audit.share` percent of
//!   every stretch of the order ([`interleave`]), so the version serving
//!   now is measured whatever the backlog;
//! - **suspect labels** ([`crate::suspects`]), most suspicious first,
//!   holding `suspects.share` percent of the places audits leave (one
//!   drawn for audit too comes once, as an audit).
//!
//! Another part with a share of its own is one more lane in [`rank`]: its
//! items taken out of the queue, its inner order, its share.

use std::collections::HashMap;

use chrono::{Duration, Utc};
use serde::Serialize;

use super::value::{Reason, Weighing};
use crate::config::Config;
use crate::domain::WaitingPlace;
use crate::error::Result;
use crate::storage::samples::Sample;
use crate::storage::waiting::{Labelled, WaitingItem};
use crate::storage::{Store, Timestamp};
use crate::suspects::Suspicion;
use crate::text::near_duplicate_key;

/// A human's labels of this many days make their near-duplicates wait.
pub const LABELLED_LATELY_DAYS: i64 = 7;

/// A near-duplicate's value is multiplied by this for each item like it
/// ahead of it (or labelled lately): it only ever moves back.
const NEAR_DUPLICATE_PENALTY: f64 = 0.25;

/// One waiting item and its place in the order.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked {
    /// 1 = next.
    pub rank: usize,
    pub item: WaitingItem,
    /// Its expected value, after any near-duplicate's penalty (audits and
    /// suspects have none: they take their share, newest or most
    /// suspicious first).
    pub score: Option<f64>,
    pub reason: Reason,
}

/// The parts of the order that hold a share of it, in percent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shares {
    /// Of every stretch (`audit.share`).
    pub audits: u32,
    /// Of the places audits leave (`suspects.share`).
    pub suspects: u32,
}

impl Shares {
    pub fn of(config: &Config) -> Self {
        Self {
            audits: config.audit.share,
            suspects: config.suspects.share,
        }
    }
}

/// Everything waiting for a human label, in review order.
pub async fn review_order(store: &Store, config: &Config) -> Result<Vec<Ranked>> {
    let items = store.waiting_items().await?;
    let gold = store.gold_counts().await?;
    let since = Timestamp(Utc::now() - Duration::days(LABELLED_LATELY_DAYS));
    let labelled = store.labelled_since(since).await?;
    let weighing = Weighing::new(&gold, &items, config.auto_filter.review_confidence);
    Ok(rank(items, &weighing, &labelled, Shares::of(config)))
}

/// `items` in review order: the queue by expected value; audits (those
/// with `audit_at`, taken out of the queue) given `shares.audits` percent
/// of every stretch, newest traffic first; suspects (those with a
/// suspicion, not audits) `shares.suspects` percent of the places audits
/// leave, most suspicious first.
pub fn rank(
    items: Vec<WaitingItem>,
    weighing: &Weighing,
    labelled: &[Labelled],
    shares: Shares,
) -> Vec<Ranked> {
    let (audits, rest): (Vec<_>, Vec<_>) = items.into_iter().partition(|i| i.audit_at.is_some());
    let (suspects, queue): (Vec<_>, Vec<_>) =
        rest.into_iter().partition(|i| i.suspicion().is_some());
    let mut audits: Vec<Ranked> = audits
        .into_iter()
        .map(|item| Ranked {
            rank: 0,
            item,
            score: None,
            reason: Reason::Audit,
        })
        .collect();
    audits.sort_by(|a, b| {
        (b.item.audit_at.cmp(&a.item.audit_at)).then(a.item.sample_id.cmp(&b.item.sample_id))
    });
    let mut suspects: Vec<(f64, Ranked)> = suspects
        .into_iter()
        .filter_map(|item| {
            let suspicion = item.suspicion()?;
            let ranked = Ranked {
                rank: 0,
                item,
                score: None,
                reason: Reason::Suspect {
                    suggested: suspicion.suggested,
                },
            };
            Some((suspicion.score, ranked))
        })
        .collect();
    suspects.sort_by(|(a_score, a), (b_score, b)| {
        b_score
            .total_cmp(a_score)
            .then(a.item.sample_id.cmp(&b.item.sample_id))
    });
    let suspects = suspects.into_iter().map(|(_, ranked)| ranked).collect();
    let queue = by_value(queue, weighing, labelled);
    let mut order = interleave(
        queue,
        vec![(shares.audits, audits), (shares.suspects, suspects)],
    );
    for (i, ranked) in order.iter_mut().enumerate() {
        ranked.rank = i + 1;
    }
    order
}

/// The queue by expected value, most first (ties: the older sample), each
/// near-duplicate behind the first of its kind.
fn by_value(items: Vec<WaitingItem>, weighing: &Weighing, labelled: &[Labelled]) -> Vec<Ranked> {
    let mut ranked: Vec<Ranked> = items
        .into_iter()
        .map(|item| {
            let value = weighing.value(&item);
            Ranked {
                rank: 0,
                score: Some(value.score()),
                reason: weighing.reason(&item, &value),
                item,
            }
        })
        .collect();
    sort_by_score(&mut ranked);
    // The first of each kind: a label a human gave lately, else the item
    // of the queue that comes first; and how many of the kind are ahead.
    let mut first: HashMap<String, (i64, bool, i32)> = HashMap::new();
    for l in labelled {
        let entry = first
            .entry(near_duplicate_key(&l.normalized_text))
            .or_insert((l.id, true, 0));
        entry.2 += 1;
    }
    for r in &mut ranked {
        let key = near_duplicate_key(&r.item.normalized_text);
        match first.get_mut(&key) {
            Some((of, labelled, ahead)) => {
                r.score = r.score.map(|s| s * NEAR_DUPLICATE_PENALTY.powi(*ahead));
                r.reason = Reason::NearDuplicate {
                    of: *of,
                    labelled: *labelled,
                };
                *ahead += 1;
            }
            None => {
                first.insert(key, (r.item.sample_id, false, 1));
            }
        }
    }
    sort_by_score(&mut ranked);
    ranked
}

fn sort_by_score(ranked: &mut [Ranked]) {
    ranked.sort_by(|a, b| {
        let (a_score, b_score) = (a.score.unwrap_or(0.0), b.score.unwrap_or(0.0));
        b_score
            .total_cmp(&a_score)
            .then(a.item.sample_id.cmp(&b.item.sample_id))
    });
}

/// `queue` with each lane of `shared` holding its share (percent): the
/// first lane of every stretch of the order, each later one of every
/// stretch of the places the lanes before it leave. At each place, a
/// lane's item comes when fewer than `share` percent of the places so far
/// (rounded up) are its; the queue takes the other places, and any side
/// fills what the others cannot. So the first place goes to a shared lane
/// when it has items (a short session still measures), a lane's share
/// does not change with the lanes after it, and an item of the queue never
/// waits behind more than the lanes' shares.
pub fn interleave<T>(queue: Vec<T>, shared: Vec<(u32, Vec<T>)>) -> Vec<T> {
    shared
        .into_iter()
        .rev()
        .fold(queue, |rest, (share, lane)| with_share(rest, share, lane))
}

/// `rest` with `lane` holding `share` percent of every stretch.
fn with_share<T>(rest: Vec<T>, share: u32, lane: Vec<T>) -> Vec<T> {
    let share = share as usize;
    let mut order = Vec::with_capacity(rest.len() + lane.len());
    let (mut rest, mut lane) = (rest.into_iter(), lane.into_iter());
    let mut placed = 0;
    loop {
        let due = placed < ((order.len() + 1) * share).div_ceil(100) && lane.len() > 0;
        let next = if due { None } else { rest.next() };
        match next.or_else(|| lane.next().inspect(|_| placed += 1)) {
            Some(item) => order.push(item),
            None => return order,
        }
    }
}

/// A ranked item with its sample in full, as the faces show it.
#[derive(Debug, Clone, PartialEq)]
pub struct Queued {
    pub ranked: Ranked,
    pub sample: Sample,
}

impl Queued {
    pub fn place(&self) -> WaitingPlace {
        self.ranked.item.place
    }
}

/// The first `limit` of `order` with their samples (a sample decided since
/// the order was read is left out).
pub async fn head(store: &Store, order: &[Ranked], limit: usize) -> Result<Vec<Queued>> {
    let head = &order[..limit.min(order.len())];
    let ids: Vec<i64> = head.iter().map(|r| r.item.sample_id).collect();
    let mut samples: HashMap<i64, Sample> = store
        .samples_by_ids(&ids)
        .await?
        .into_iter()
        .map(|s| (s.id, s))
        .collect();
    Ok(head
        .iter()
        .filter_map(|r| {
            samples.remove(&r.item.sample_id).map(|sample| Queued {
                ranked: r.clone(),
                sample,
            })
        })
        .collect())
}

/// `stats queue --json`'s item: the sample's fields and its place.
impl Serialize for Queued {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Item<'a> {
            sample_id: i64,
            rank: usize,
            reason: &'a Reason,
            score: Option<f64>,
            #[serde(rename = "where")]
            place: WaitingPlace,
            /// A suspect label: what the model says instead.
            #[serde(skip_serializing_if = "Option::is_none")]
            suspect: Option<Suspicion>,
            #[serde(flatten)]
            sample: &'a Sample,
        }
        Item {
            sample_id: self.sample.id,
            rank: self.ranked.rank,
            reason: &self.ranked.reason,
            score: self.ranked.score,
            place: self.place(),
            suspect: self.ranked.item.suspicion(),
            sample: &self.sample,
        }
        .serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::waiting::GoldCount;

    /// A refund utterance waiting here (the shape `value`'s tests use),
    /// with its text and the priority bucket its confidence falls in.
    fn item(id: i64, text: &str, confidence: f64, occurrences: i32) -> WaitingItem {
        WaitingItem {
            normalized_text: text.into(),
            priority: if confidence < 0.7 { 2 } else { 5 },
            ..crate::review::value::tests::item(id, "refund", "en", Some(confidence), occurrences)
        }
    }

    fn suspected(mut item: WaitingItem, suggested: &str, score: f64) -> WaitingItem {
        item.suggested_intent = Some(suggested.into());
        item.suspect_score = Some(score);
        item
    }

    fn audited(mut item: WaitingItem, minutes_ago: i64) -> WaitingItem {
        item.audit_at = Some(Timestamp(Utc::now() - Duration::minutes(minutes_ago)));
        item
    }

    fn weighing(items: &[WaitingItem]) -> Weighing {
        let gold = [GoldCount {
            intent: "refund".into(),
            language: Some("en".into()),
            count: 50,
        }];
        Weighing::new(&gold, items, 0.70)
    }

    fn order(items: Vec<WaitingItem>, labelled: &[Labelled], share: u32) -> Vec<(i64, String)> {
        shared(
            items,
            labelled,
            Shares {
                audits: share,
                suspects: 20,
            },
        )
    }

    fn shared(
        items: Vec<WaitingItem>,
        labelled: &[Labelled],
        shares: Shares,
    ) -> Vec<(i64, String)> {
        let w = weighing(&items);
        rank(items, &w, labelled, shares)
            .into_iter()
            .enumerate()
            .map(|(i, r)| {
                assert_eq!(r.rank, i + 1);
                (r.item.sample_id, r.reason.to_string())
            })
            .collect()
    }

    #[test]
    fn the_queue_goes_by_expected_value_and_says_why() {
        let got = order(
            vec![
                item(1, "medium once", 0.75, 1),
                item(2, "urgent once", 0.30, 1),
                item(3, "medium often", 0.75, 16),
                item(4, "sure once", 0.95, 1),
            ],
            &[],
            20,
        );
        assert_eq!(
            got,
            vec![
                (3, "seen 16 times".to_string()),
                (2, "uncertain: confidence 0.30".to_string()),
                (1, "likely right: confidence 0.75".to_string()),
                (4, "likely right: confidence 0.95".to_string()),
            ]
        );
    }

    #[test]
    fn a_near_duplicate_goes_behind_the_first_of_its_kind() {
        let labelled = [Labelled {
            id: 77,
            normalized_text: "refund order 12".into(),
        }];
        let got = order(
            vec![
                item(1, "where is order 1234", 0.30, 1),
                item(2, "order 98 where is", 0.30, 2),
                item(3, "cancel it", 0.60, 1),
                item(4, "refund order 555", 0.20, 1),
            ],
            &labelled,
            0,
        );
        assert_eq!(
            got,
            vec![
                (2, "uncertain: confidence 0.30".to_string()),
                (3, "uncertain: confidence 0.60".to_string()),
                (4, "like #77, labelled this week".to_string()),
                (1, "like #2, queued ahead".to_string()),
            ]
        );
    }

    #[test]
    fn audits_hold_their_share_newest_first_and_come_once() {
        let got: Vec<i64> = order(
            vec![
                item(1, "a", 0.5, 1),
                item(2, "b", 0.4, 1),
                audited(item(3, "c", 0.3, 1), 30),
                audited(item(4, "d", 0.9, 1), 5),
                item(5, "e", 0.6, 1),
                item(6, "f", 0.65, 1),
            ],
            &[],
            40,
        )
        .into_iter()
        .map(|(id, why)| {
            assert_eq!(why == "audit", id == 3 || id == 4, "{id}: {why}");
            id
        })
        .collect();
        assert_eq!(got, vec![4, 2, 3, 1, 5, 6]);
    }

    #[test]
    fn suspects_hold_their_share_of_what_audits_leave_most_suspicious_first() {
        let got = shared(
            vec![
                item(1, "a", 0.5, 1),
                item(2, "b", 0.4, 1),
                suspected(item(3, "c", 0.9, 1), "cancel", 0.3),
                suspected(item(4, "d", 0.9, 1), "order_status", 0.8),
                audited(item(5, "e", 0.9, 1), 5),
                // Drawn for audit and suspected: once, as an audit.
                suspected(audited(item(6, "f", 0.9, 1), 1), "cancel", 0.9),
                item(7, "g", 0.6, 1),
            ],
            &[],
            Shares {
                audits: 25,
                suspects: 50,
            },
        );
        assert_eq!(
            got,
            vec![
                (6, "audit".to_string()),
                (4, "suspect: model says order_status".to_string()),
                (2, "uncertain: confidence 0.40".to_string()),
                (3, "suspect: model says cancel".to_string()),
                (5, "audit".to_string()),
                (1, "uncertain: confidence 0.50".to_string()),
                (7, "uncertain: confidence 0.60".to_string()),
            ]
        );
    }

    #[test]
    fn lanes_hold_their_share_of_every_stretch_and_either_side_fills() {
        let queue: Vec<u32> = (1..=100).collect();
        let audits: Vec<u32> = (1001..=1100).collect();
        let head = |q: Vec<u32>, lanes: Vec<(u32, Vec<u32>)>, n: usize| {
            interleave(q, lanes).into_iter().take(n).collect::<Vec<_>>()
        };
        assert_eq!(
            head(queue.clone(), vec![(20, audits.clone())], 12),
            vec![1001, 1, 2, 3, 4, 1002, 5, 6, 7, 8, 1003, 9]
        );
        // 40 %: two in every five places, the lane first.
        assert_eq!(
            head(queue.clone(), vec![(40, audits.clone())], 5),
            vec![1001, 1, 1002, 2, 3]
        );
        // Few in the lane: the queue fills the rest; an empty queue: the lane does.
        assert_eq!(
            head(queue.clone(), vec![(50, vec![1001])], 4),
            vec![1001, 1, 2, 3]
        );
        assert_eq!(
            interleave(Vec::new(), vec![(20, vec![1001, 1002, 1003])]),
            vec![1001, 1002, 1003]
        );
        assert_eq!(
            head(queue.clone(), vec![(0, audits.clone())], 3),
            vec![1, 2, 3]
        );
        // Two lanes, the first listed first; the second takes its share
        // of the places the first leaves, so the first's is unchanged.
        assert_eq!(
            head(
                queue.clone(),
                vec![(20, audits.clone()), (20, (2001..=2100).collect())],
                6
            ),
            vec![1001, 2001, 1, 2, 3, 1002]
        );
        assert_eq!(
            head(queue, vec![(40, audits), (50, (2001..=2100).collect())], 10),
            vec![1001, 2001, 1002, 1, 2002, 1003, 2, 1004, 2003, 3]
        );
        assert!(interleave(Vec::<u32>::new(), Vec::new()).is_empty());
    }
}

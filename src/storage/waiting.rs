//! What waits for review: every sample a human still has to label, and
//! where it waits. One definition, read by `status`, `stats queue`, the
//! console and `/metrics`:
//!
//! - the review queue: `needs-review` samples queued here (the rows of the
//!   seed's `training_queue` view) and `in-review` ones, pushed to Label
//!   Studio and awaiting their annotation;
//! - audits of samples the model approved ([`crate::audit`]) still awaiting
//!   their human label: here until pushed, then in Label Studio;
//! - suspect labels ([`crate::suspects`]): approved labels the model
//!   confidently disagrees with, awaiting a human's confirmation or
//!   correction, here until pushed, then in Label Studio (one also drawn
//!   for audit counts once, as an audit).
//!
//! Each split by priority (the auto-filter's buckets, 2 and 5 by default).
//! What waits is read whole by [`Store::waiting_items`], with what the
//! review order ([`crate::review::order`]) weighs beside it: the gold set
//! per intent and language, and what humans labelled lately.

use serde::Serialize;

use super::audits::awaiting_label;
use super::samples::gold_sources;
use super::suspects::live;
use super::{Store, Timestamp, db_error, on_pool};
use crate::domain::{ReviewStatus, WaitingKind, WaitingPlace};
use crate::error::Result;
use crate::suspects::Suspicion;

/// What waits, as rows of `columns` (expressions over `s`, the sample)
/// followed by `place` and `kind` ([`WaitingKind`]): the review queue,
/// then the approved samples awaiting a human ([`approved_awaiting_rows`]).
pub(super) fn waiting_rows(columns: &str) -> String {
    format!(
        "SELECT {columns}, \
             CASE WHEN s.review_status = 'in-review' THEN 'label-studio' ELSE 'here' END AS place, \
             'review' AS kind \
         FROM training_samples s WHERE s.review_status IN ('needs-review', 'in-review') \
         UNION ALL {}",
        approved_awaiting_rows(columns)
    )
}

/// The approved samples that wait for a human all the same, as rows like
/// [`waiting_rows`]': the audits of approved samples (walked from the
/// audits side, so the count never visits every approved sample), then the
/// suspect labels not among those audits (walked from `label_suspects`, `x`).
fn approved_awaiting_rows(columns: &str) -> String {
    let awaiting = awaiting_label();
    let pushed = "CASE WHEN EXISTS (SELECT 1 FROM label_studio_tasks t \
                                    WHERE t.sample_id = s.id AND t.sync_state = 'pushed') \
                       THEN 'label-studio' ELSE 'here' END";
    format!(
        "SELECT {columns}, {pushed} AS place, 'audit' AS kind \
         FROM (SELECT DISTINCT sample_id FROM audits) a CROSS JOIN training_samples s \
         WHERE s.id = a.sample_id AND s.review_status = 'approved' AND {awaiting} \
         UNION ALL \
         SELECT {columns}, {pushed}, 'suspect' \
         FROM label_suspects x CROSS JOIN training_samples s \
         WHERE s.id = x.sample_id AND {live} \
           AND NOT ({awaiting} AND EXISTS (SELECT 1 FROM audits a WHERE a.sample_id = s.id))",
        live = live()
    )
}

/// How many of one kind wait at one place and priority.
#[derive(Debug, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct WaitingBucket {
    pub place: WaitingPlace,
    pub priority: i32,
    /// The review queue, or an approved sample awaiting a human all the
    /// same: an audit or a suspect label.
    pub kind: WaitingKind,
    pub count: i64,
}

/// Everything waiting for a human label, by place and priority.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Waiting {
    pub buckets: Vec<WaitingBucket>,
    /// Priorities at or below this are urgent (`auto_filter.high_priority`).
    pub urgent_priority: i32,
}

/// One priority's share of what waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PriorityWaiting {
    pub priority: i32,
    pub count: i64,
    pub here: i64,
    pub label_studio: i64,
}

impl Waiting {
    fn sum(&self, keep: impl Fn(&WaitingBucket) -> bool) -> i64 {
        self.buckets
            .iter()
            .filter(|b| keep(b))
            .map(|b| b.count)
            .sum()
    }

    pub fn total(&self) -> i64 {
        self.sum(|_| true)
    }

    pub fn at(&self, place: WaitingPlace) -> i64 {
        self.sum(|b| b.place == place)
    }

    pub fn urgent(&self) -> i64 {
        self.sum(|b| b.priority <= self.urgent_priority)
    }

    /// Rows of the seed's `training_queue` view: `needs-review` samples.
    pub fn needs_review(&self) -> i64 {
        self.sum(|b| b.kind == WaitingKind::Review && b.place == WaitingPlace::Here)
    }

    /// `in-review` samples: pushed to Label Studio, awaiting annotation.
    pub fn in_review(&self) -> i64 {
        self.sum(|b| b.kind == WaitingKind::Review && b.place == WaitingPlace::LabelStudio)
    }

    /// Audits of samples the model approved, awaiting their label.
    pub fn approved_audits(&self) -> i64 {
        self.sum(|b| b.kind == WaitingKind::Audit)
    }

    /// Suspect labels awaiting a human (those not drawn for audit too).
    pub fn suspects(&self) -> i64 {
        self.sum(|b| b.kind == WaitingKind::Suspect)
    }

    /// Per priority, most urgent first.
    pub fn by_priority(&self) -> Vec<PriorityWaiting> {
        let mut out: Vec<PriorityWaiting> = Vec::new();
        for b in &self.buckets {
            let at = match out.iter().position(|p| p.priority == b.priority) {
                Some(at) => at,
                None => {
                    out.push(PriorityWaiting {
                        priority: b.priority,
                        count: 0,
                        here: 0,
                        label_studio: 0,
                    });
                    out.len() - 1
                }
            };
            let p = &mut out[at];
            p.count += b.count;
            match b.place {
                WaitingPlace::Here => p.here += b.count,
                WaitingPlace::LabelStudio => p.label_studio += b.count,
            }
        }
        out.sort_by_key(|p| p.priority);
        out
    }

    /// "12 here, 1200 in Label Studio" (the Label Studio part only when any).
    pub fn places(&self) -> String {
        let ls = self.at(WaitingPlace::LabelStudio);
        if ls == 0 {
            format!("{} here", self.at(WaitingPlace::Here))
        } else {
            format!("{} here, {ls} in Label Studio", self.at(WaitingPlace::Here))
        }
    }
}

impl Serialize for Waiting {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Json {
            total: i64,
            here: i64,
            label_studio: i64,
            urgent: i64,
            urgent_priority: i32,
            needs_review: i64,
            in_review: i64,
            approved_audits: i64,
            suspects: i64,
            by_priority: Vec<PriorityWaiting>,
        }
        Json {
            total: self.total(),
            here: self.at(WaitingPlace::Here),
            label_studio: self.at(WaitingPlace::LabelStudio),
            urgent: self.urgent(),
            urgent_priority: self.urgent_priority,
            needs_review: self.needs_review(),
            in_review: self.in_review(),
            approved_audits: self.approved_audits(),
            suspects: self.suspects(),
            by_priority: self.by_priority(),
        }
        .serialize(s)
    }
}

/// One sample waiting for a human label, with what places it in the
/// review order.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct WaitingItem {
    pub sample_id: i64,
    pub normalized_text: String,
    /// The label it carries now: the model's prediction.
    pub intent: String,
    pub language: Option<String>,
    /// The model's confidence in `intent` (none: no usable prediction).
    pub confidence: Option<f64>,
    pub priority: i32,
    pub occurrences: i32,
    pub place: WaitingPlace,
    /// Drawn for audit and awaiting its label: when its newest audited
    /// conversation was.
    pub audit_at: Option<Timestamp>,
    /// It has a Label Studio task (in any state, any project), so a push
    /// never takes it again.
    pub has_task: bool,
    /// A suspect label ([`crate::suspects`]): the intent the model prefers
    /// to `intent`, and by how much.
    pub suggested_intent: Option<String>,
    pub suspect_score: Option<f64>,
}

impl WaitingItem {
    /// What the model says of it when its label is a suspect.
    pub fn suspicion(&self) -> Option<Suspicion> {
        Some(Suspicion {
            suggested: self.suggested_intent.clone()?,
            score: self.suspect_score?,
        })
    }
}

/// Gold samples ([`crate::gold`]) of one intent in one language.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct GoldCount {
    pub intent: String,
    pub language: Option<String>,
    pub count: i64,
}

/// A sample a human decided, as the review order's diversity sees it.
#[derive(Debug, Clone, PartialEq, Eq, sqlx::FromRow)]
pub struct Labelled {
    pub id: i64,
    pub normalized_text: String,
}

impl Store {
    /// Everything waiting for a human label (the rows [`Store::waiting`]
    /// counts), in no particular order.
    pub async fn waiting_items(&self) -> Result<Vec<WaitingItem>> {
        let columns = format!(
            "s.id AS sample_id, s.normalized_text, s.intent, s.language, s.confidence, s.priority, \
             s.occurrences, \
             CASE WHEN {} THEN (SELECT MAX(d.conversation_at) FROM audits d WHERE d.sample_id = s.id) \
             END AS audit_at, \
             EXISTS (SELECT 1 FROM label_studio_tasks t WHERE t.sample_id = s.id) AS has_task, \
             (SELECT x.suggested_intent FROM label_suspects x WHERE x.sample_id = s.id AND {live}) \
                 AS suggested_intent, \
             (SELECT x.score FROM label_suspects x WHERE x.sample_id = s.id AND {live}) AS suspect_score",
            awaiting_label(),
            live = live()
        );
        let sql = format!(
            "SELECT sample_id, normalized_text, intent, language, confidence, priority, occurrences, \
                 place, audit_at, has_task, suggested_intent, suspect_score FROM ({}) w",
            waiting_rows(&columns)
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, WaitingItem>(&sql).fetch_all(pool).await
        })
        .map_err(|err| db_error("reading what waits for review", err))
    }

    /// The gold set's size per intent and language.
    pub async fn gold_counts(&self) -> Result<Vec<GoldCount>> {
        let sql = format!(
            "SELECT intent, language, COUNT(*) AS count FROM training_samples \
             WHERE review_status = 'approved' AND source IN ({}) GROUP BY intent, language",
            gold_sources()
        );
        on_pool!(self, |pool| {
            sqlx::query_as::<_, GoldCount>(&sql).fetch_all(pool).await
        })
        .map_err(|err| db_error("counting the gold set", err))
    }

    /// Samples a human decided (approved or rejected) since `since`, the
    /// earliest first.
    pub async fn labelled_since(&self, since: Timestamp) -> Result<Vec<Labelled>> {
        on_pool!(self, |pool| {
            sqlx::query_as::<_, Labelled>(
                "SELECT id, normalized_text FROM training_samples \
                 WHERE reviewed_at >= $1 AND source = 'human' ORDER BY reviewed_at, id",
            )
            .bind(since)
            .fetch_all(pool)
            .await
        })
        .map_err(|err| db_error("reading this week's labels", err))
    }

    /// What waits for a human label, counted by place and priority: the
    /// review queue from the running counts ([`super::counters`]: no row is
    /// counted), the approved samples awaiting a human by walking audits
    /// and suspect labels (a few per day's traffic, not the backlog).
    pub async fn waiting(&self, urgent_priority: i32) -> Result<Waiting> {
        let mut buckets: Vec<WaitingBucket> = self
            .counted_samples()
            .await?
            .into_iter()
            .filter_map(|c| {
                let place = match c.review_status {
                    ReviewStatus::NeedsReview => WaitingPlace::Here,
                    ReviewStatus::InReview => WaitingPlace::LabelStudio,
                    ReviewStatus::Approved | ReviewStatus::Rejected => return None,
                };
                Some(WaitingBucket {
                    place,
                    priority: c.priority,
                    kind: WaitingKind::Review,
                    count: c.samples,
                })
            })
            .collect();
        let sql = format!(
            "SELECT w.place, w.priority, w.kind, COUNT(*) AS count \
             FROM ({}) w GROUP BY w.place, w.priority, w.kind",
            approved_awaiting_rows("s.priority")
        );
        let approved = on_pool!(self, |pool| {
            sqlx::query_as::<_, WaitingBucket>(&sql)
                .fetch_all(pool)
                .await
        })
        .map_err(|err| db_error("counting what waits for review", err))?;
        buckets.extend(approved);
        buckets.sort_by_key(|b| (b.priority, b.place.as_str(), b.kind.as_str()));
        Ok(Waiting {
            buckets,
            urgent_priority,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket(place: WaitingPlace, priority: i32, kind: WaitingKind, count: i64) -> WaitingBucket {
        WaitingBucket {
            place,
            priority,
            kind,
            count,
        }
    }

    #[test]
    fn the_counts_split_by_place_priority_and_kind() {
        use WaitingKind::{Audit, Review, Suspect};
        use WaitingPlace::{Here, LabelStudio};
        let waiting = Waiting {
            buckets: vec![
                bucket(Here, 2, Review, 3),
                bucket(LabelStudio, 2, Review, 700),
                bucket(Here, 5, Review, 9),
                bucket(Here, 5, Audit, 4),
                bucket(LabelStudio, 5, Audit, 1),
                bucket(Here, 5, Suspect, 6),
                bucket(LabelStudio, 5, Suspect, 2),
                bucket(LabelStudio, 5, Review, 500),
            ],
            urgent_priority: 2,
        };
        assert_eq!(waiting.total(), 1225);
        assert_eq!((waiting.at(Here), waiting.at(LabelStudio)), (22, 1203));
        assert_eq!(waiting.urgent(), 703);
        assert_eq!(
            (
                waiting.needs_review(),
                waiting.in_review(),
                waiting.approved_audits(),
                waiting.suspects()
            ),
            (12, 1200, 5, 8)
        );
        let by = waiting.by_priority();
        assert_eq!(
            by.iter()
                .map(|p| (p.priority, p.count, p.here, p.label_studio))
                .collect::<Vec<_>>(),
            vec![(2, 703, 3, 700), (5, 522, 19, 503)]
        );
        assert_eq!(waiting.places(), "22 here, 1203 in Label Studio");
        let json = serde_json::to_value(&waiting).unwrap();
        assert_eq!(json["label_studio"], 1203);
        assert_eq!(json["suspects"], 8);
        assert_eq!(json["by_priority"][1]["here"], 19);
        assert_eq!(Waiting::default().places(), "0 here");
    }
}

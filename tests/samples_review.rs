//! The one review function the Label Studio pull and the console share:
//! accept, correct, reject, re-apply, stale decisions and undo, on both
//! backends; and the review order.

mod support;

use chrono::Duration;
use flywheel::domain::ReviewVerdict;
use flywheel::review::order::review_order;
use flywheel::storage::Timestamp;
use flywheel::storage::samples::{ReviewDecision, ReviewOutcome, Sample};
use support::fixtures::{capture_day, conv, conversations, insert, samples};
use support::for_each_backend_with_config;

fn decision(verdict: ReviewVerdict, who: &str, at: Timestamp) -> ReviewDecision {
    ReviewDecision {
        verdict,
        annotator: Some(who.into()),
        decided_at: at,
    }
}

fn applied(outcome: ReviewOutcome) -> Sample {
    match outcome {
        ReviewOutcome::Applied(sample) => sample,
        other => panic!("expected the decision to apply, got {other:?}"),
    }
}

#[test]
fn accept_correct_reject_reapply_stale_and_undo() {
    for_each_backend_with_config(|store, config| async move {
        insert(
            &store,
            &[
                conv(
                    "where is my order",
                    "track_order",
                    0.6,
                    "2026-03-10T08:00:00Z",
                ),
                conv(
                    "Where is my order?",
                    "track_order",
                    0.6,
                    "2026-03-10T08:30:00Z",
                ),
            ],
        )
        .await;
        capture_day(&store, &config, "2026-03-10", 10).await;
        let id = samples(&store).await[0].id;
        let t0 = Timestamp::now();
        let t1 = Timestamp::from(t0.0 + Duration::seconds(1));
        let t2 = Timestamp::from(t0.0 + Duration::seconds(2));

        // Accept: approved as predicted, by a human.
        let s = applied(
            store
                .apply_review(id, &decision(ReviewVerdict::Accept, "asha", t0))
                .await
                .unwrap(),
        );
        assert_eq!(
            (
                s.review_status.as_str(),
                s.intent.as_str(),
                s.source.as_str()
            ),
            ("approved", "track_order", "human")
        );
        assert_eq!(s.corrected_from, None);
        assert_eq!(s.annotator.as_deref(), Some("asha"));
        assert_eq!(s.reviewed_at, Some(t0));
        assert!(
            conversations(&store)
                .await
                .iter()
                .all(|c| c.1 == "reviewed")
        );

        // Re-applying the same decision changes nothing.
        let again = applied(
            store
                .apply_review(id, &decision(ReviewVerdict::Accept, "asha", t0))
                .await
                .unwrap(),
        );
        assert_eq!(
            (&again.intent, &again.review_status, again.reviewed_at),
            (&s.intent, &s.review_status, s.reviewed_at)
        );

        // A later correction overrides; corrected_from names the prediction.
        let s = applied(
            store
                .apply_review(
                    id,
                    &decision(ReviewVerdict::Choose("order_status".into()), "ravi", t1),
                )
                .await
                .unwrap(),
        );
        assert_eq!(s.review_status, "approved");
        assert_eq!(s.intent, "order_status");
        assert_eq!(s.corrected_from.as_deref(), Some("track_order"));
        assert_eq!(s.annotator.as_deref(), Some("ravi"));

        // An older decision arriving late is ignored.
        match store
            .apply_review(id, &decision(ReviewVerdict::Reject, "old", t0))
            .await
            .unwrap()
        {
            ReviewOutcome::Stale(current) => assert_eq!(current.intent, "order_status"),
            other => panic!("expected stale, got {other:?}"),
        }

        // Choosing the predicted intent is an accept: no correction recorded.
        let s = applied(
            store
                .apply_review(
                    id,
                    &decision(ReviewVerdict::Choose("track_order".into()), "ravi", t1),
                )
                .await
                .unwrap(),
        );
        assert_eq!((s.intent.as_str(), s.corrected_from), ("track_order", None));

        // Reject (skip, cancel): rejected, intent back to the prediction.
        let s = applied(
            store
                .apply_review(id, &decision(ReviewVerdict::Reject, "meena", t2))
                .await
                .unwrap(),
        );
        assert_eq!(s.review_status, "rejected");
        assert_eq!(s.intent, "track_order");
        assert_eq!(s.corrected_from, None);

        // Undo puts it back in the queue, conversations too.
        let s = store.undo_review(id).await.unwrap().expect("undone");
        assert_eq!(s.review_status, "needs-review");
        assert_eq!((s.annotator, s.reviewed_at), (None, None));
        assert_eq!(s.source, "auto");
        assert!(
            conversations(&store)
                .await
                .iter()
                .all(|c| c.1 == "needs-review")
        );
        let order = review_order(&store, &config).await.unwrap();
        assert_eq!(order[0].item.sample_id, id, "back in what waits");
        // Nothing to undo now; an unknown sample is not found.
        assert_eq!(store.undo_review(id).await.unwrap(), None);
        assert_eq!(
            store
                .apply_review(99_999, &decision(ReviewVerdict::Accept, "x", t0))
                .await
                .unwrap(),
            ReviewOutcome::NotFound
        );
        // After an undo any decision applies again, even an older one.
        let s = applied(
            store
                .apply_review(id, &decision(ReviewVerdict::Accept, "asha", t0))
                .await
                .unwrap(),
        );
        assert_eq!(s.review_status, "approved");
    });
}

#[test]
fn the_review_order_puts_the_most_valuable_label_first_and_says_why() {
    for_each_backend_with_config(|store, mut config| async move {
        config.audit.percent = 0;
        insert(
            &store,
            &[
                conv("medium once", "a", 0.75, "2026-03-10T08:00:00Z"),
                conv("urgent once", "b", 0.30, "2026-03-10T08:01:00Z"),
                conv("medium twice", "c", 0.75, "2026-03-10T08:02:00Z"),
                conv("medium twice", "c", 0.75, "2026-03-10T08:03:00Z"),
                conv("urgent thrice", "d", 0.30, "2026-03-10T08:04:00Z"),
                conv("urgent thrice", "d", 0.30, "2026-03-10T08:05:00Z"),
                conv("urgent thrice", "d", 0.30, "2026-03-10T08:06:00Z"),
                conv("approved", "e", 0.95, "2026-03-10T08:07:00Z"),
            ],
        )
        .await;
        capture_day(&store, &config, "2026-03-10", 3).await;
        let order = review_order(&store, &config).await.unwrap();
        let texts: std::collections::HashMap<i64, String> = samples(&store)
            .await
            .into_iter()
            .map(|s| (s.id, s.text))
            .collect();
        let got: Vec<(usize, &str, String)> = order
            .iter()
            .map(|r| {
                (
                    r.rank,
                    texts[&r.item.sample_id].as_str(),
                    r.reason.to_string(),
                )
            })
            .collect();
        assert_eq!(
            got,
            [
                (1, "urgent thrice", "seen 3 times".to_string()),
                (2, "urgent once", "uncertain: confidence 0.30".to_string()),
                (3, "medium twice", "seen 2 times".to_string()),
                (
                    4,
                    "medium once",
                    "likely right: confidence 0.75".to_string()
                ),
            ]
        );
    });
}

//! Daily capture through the library on both backends: the auto-filter
//! rule at its boundaries, folding of duplicates, idempotent re-runs and the
//! report's numbers.

mod support;

use flywheel::config::ROUTER_PROVIDER;
use flywheel::domain::ReviewVerdict;
use flywheel::stages::daily_report::DailyReport;
use flywheel::storage::samples::ReviewDecision;
use support::fixtures::{Conv, capture_day, conv, conversations, insert, samples};
use support::{TestDb, block_on, exec, for_each_backend_with_config};

const DAY: &str = "2026-03-10";

#[test]
fn auto_filter_boundaries_and_untrusted_providers() {
    for_each_backend_with_config(|store, config| async move {
        let untrusted = Conv {
            provider: Some("legacy-nlu"),
            ..conv(
                "cancel my order",
                "cancel_order",
                0.99,
                "2026-03-10T09:00:00Z",
            )
        };
        let ids = insert(
            &store,
            &[
                conv("pizza chahiye", "order_food", 0.85, "2026-03-10T08:00:00Z"),
                conv(
                    "track my parcel",
                    "track_order",
                    0.8499,
                    "2026-03-10T08:01:00Z",
                ),
                untrusted,
                conv("refund please", "refund", 0.70, "2026-03-10T09:01:00Z"),
                conv("hmm what", "greeting", 0.6999, "2026-03-10T09:02:00Z"),
                Conv {
                    intent: None,
                    confidence: None,
                    ..conv("no prediction here", "x", 0.0, "2026-03-10T09:03:00Z")
                },
                conv("?!?", "greeting", 0.99, "2026-03-10T09:04:00Z"),
            ],
        )
        .await;
        let report = capture_day(&store, &config, DAY, 100).await;

        let convs = conversations(&store).await;
        let statuses: Vec<&str> = convs.iter().map(|c| c.1.as_str()).collect();
        assert_eq!(
            statuses,
            [
                "auto-approved",
                "needs-review",
                "needs-review",
                "needs-review",
                "needs-review",
                "needs-review",
                "ignored"
            ]
        );
        let all = samples(&store).await;
        assert_eq!(all.len(), 6, "one sample per non-empty text");
        let by_text = |t: &str| all.iter().find(|s| s.text == t).unwrap();
        let approved = by_text("pizza chahiye");
        assert_eq!(
            (approved.review_status.as_str(), approved.source.as_str()),
            ("approved", "auto")
        );
        assert_eq!(approved.conversation_id, Some(ids[0]));
        assert_eq!(
            approved.predicted_by_version.as_deref(),
            Some("router-v1.0.0")
        );
        assert_eq!(approved.reviewed_at, None, "no human looked at it");
        let expect = [
            ("track my parcel", 5),
            ("cancel my order", 5),
            ("refund please", 5),
            ("hmm what", 2),
            ("no prediction here", 2),
        ];
        for (text, priority) in expect {
            let s = by_text(text);
            assert_eq!(s.review_status, "needs-review", "{text}");
            assert_eq!(s.priority, priority, "{text}");
        }
        assert_eq!(by_text("no prediction here").intent, "unknown");
        // Every conversation links the sample it became; ignored ones none.
        for (i, c) in convs.iter().enumerate().take(6) {
            let sample = all.iter().find(|s| Some(s.id) == c.2).unwrap();
            assert_eq!(sample.conversation_id, Some(ids[i]));
        }
        assert_eq!(convs[6].2, None);

        assert_eq!(report.counts.captured, 7);
        assert_eq!(report.counts.auto_approved, 1);
        assert_eq!(report.counts.needs_review, 5);
        assert_eq!(report.counts.ignored, 1);
        assert_eq!(report.needs_review_by_priority["5"], 3);
        assert_eq!(report.needs_review_by_priority["2"], 2);
        assert_eq!(report.new_samples.approved, 1);
        assert_eq!(report.new_samples.needs_review, 5);
        assert_eq!(report.counts.duplicates_folded, 0);
    });
}

#[test]
fn duplicates_fold_within_a_run_across_batches_runs_and_the_day_boundary() {
    for_each_backend_with_config(|store, config| async move {
        insert(
            &store,
            &[
                conv(
                    "Where is my order?",
                    "track_order",
                    0.75,
                    "2026-03-10T00:00:00Z",
                ),
                conv(
                    "where is my ORDER",
                    "track_order",
                    0.60,
                    "2026-03-10T10:00:00Z",
                ),
                conv("pizza chahiye", "order_food", 0.95, "2026-03-10T11:00:00Z"),
                conv(
                    "  where   is my order!! ",
                    "track_order",
                    0.72,
                    "2026-03-10T23:59:59.999Z",
                ),
                conv(
                    "Pizza, chahiye",
                    "order_food",
                    0.90,
                    "2026-03-10T23:59:59.999Z",
                ),
                // The next day: only the second run sees these.
                conv(
                    "where is my order",
                    "track_order",
                    0.71,
                    "2026-03-11T00:00:00Z",
                ),
            ],
        )
        .await;
        // Batches of two: the repeats arrive in different transactions.
        let first = capture_day(&store, &config, DAY, 2).await;
        assert_eq!(first.counts.captured, 5);
        let all = samples(&store).await;
        assert_eq!(all.len(), 2);
        let order = all.iter().find(|s| s.intent == "track_order").unwrap();
        assert_eq!(order.occurrences, 3);
        assert_eq!(
            order.text, "Where is my order?",
            "the first wording is kept"
        );
        assert_eq!(order.priority, 2, "the most urgent occurrence wins");
        let pizza = all.iter().find(|s| s.intent == "order_food").unwrap();
        assert_eq!(
            (pizza.occurrences, pizza.review_status.as_str()),
            (2, "approved")
        );
        assert_eq!(
            first.new_samples.approved + first.new_samples.needs_review,
            2
        );
        assert_eq!(first.counts.duplicates_folded, 3);
        let pending_next_day = conversations(&store)
            .await
            .into_iter()
            .filter(|c| c.1 == "pending")
            .count();
        assert_eq!(pending_next_day, 1, "23:59:59.999 is in, 00:00 is out");

        let second = capture_day(&store, &config, "2026-03-11", 2).await;
        assert_eq!(second.counts.captured, 1);
        assert_eq!(second.counts.duplicates_folded, 1);
        assert_eq!(second.new_samples.needs_review, 0, "no second review task");
        let all = samples(&store).await;
        assert_eq!(all.len(), 2);
        let order = all.iter().find(|s| s.intent == "track_order").unwrap();
        assert_eq!(order.occurrences, 4);
        let convs = conversations(&store).await;
        assert!(convs.iter().all(|c| c.2.is_some()));
        assert_eq!(convs[5].2, Some(order.id));
    });
}

#[test]
fn a_rerun_changes_nothing_and_keeps_the_report() {
    for_each_backend_with_config(|store, config| async move {
        insert(
            &store,
            &[
                conv("pizza chahiye", "order_food", 0.95, "2026-03-10T08:00:00Z"),
                conv("refund please", "refund", 0.5, "2026-03-10T09:00:00Z"),
                conv("REFUND please", "refund", 0.5, "2026-03-10T09:30:00Z"),
            ],
        )
        .await;
        capture_day(&store, &config, DAY, 10).await;
        let report_path = DailyReport::path_in(&config.logs_dir(), DAY.parse().unwrap());
        let report_before = std::fs::read_to_string(&report_path).unwrap();
        let samples_before = samples(&store).await;
        let convs_before = conversations(&store).await;

        let again = capture_day(&store, &config, DAY, 10).await;
        assert_eq!(again.counts.captured, 0);
        assert_eq!(samples(&store).await, samples_before);
        assert_eq!(conversations(&store).await, convs_before);
        assert_eq!(
            std::fs::read_to_string(&report_path).unwrap(),
            report_before,
            "a run with nothing to do must not erase the day's report"
        );
    });
}

#[test]
fn report_file_numbers_and_accumulation_over_runs_of_a_day() {
    for db in TestDb::all() {
        let mut config = db.config();
        config.auto_filter.ready_for_training = 2;
        block_on(async move {
            let store = flywheel::storage::open(&config).await.unwrap();
            let hinglish = |text, intent, c, at| Conv {
                language: Some("hinglish"),
                ..conv(text, intent, c, at)
            };
            insert(
                &store,
                &[
                    hinglish("pizza chahiye", "order_food", 0.95, "2026-03-10T08:00:00Z"),
                    hinglish("pizza chahiye!", "order_food", 0.93, "2026-03-10T08:05:00Z"),
                    conv(
                        "track my parcel",
                        "track_order",
                        0.80,
                        "2026-03-10T09:00:00Z",
                    ),
                    conv("asdf", "greeting", 0.10, "2026-03-10T09:10:00Z"),
                ],
            )
            .await;
            let report = capture_day(&store, &config, DAY, 10).await;
            let path = DailyReport::path_in(&config.logs_dir(), DAY.parse().unwrap());
            let on_disk: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(on_disk["date"], DAY);
            assert_eq!(on_disk["captured"], 4);
            assert_eq!(on_disk["auto_approved"], 2);
            assert_eq!(on_disk["needs_review"], 2);
            assert_eq!(on_disk["needs_review_by_priority"]["5"], 1);
            assert_eq!(on_disk["needs_review_by_priority"]["2"], 1);
            assert_eq!(on_disk["duplicates_folded"], 1);
            assert_eq!(on_disk["new_samples"]["approved"], 1);
            assert_eq!(on_disk["new_samples"]["needs_review"], 2);
            assert_eq!(on_disk["auto_approval_rate"], 50.0);
            assert_eq!(on_disk["per_language"]["hinglish"]["captured"], 2);
            assert_eq!(on_disk["per_language"]["hinglish"]["auto_approved"], 2);
            assert_eq!(on_disk["per_language"]["en"]["needs_review"], 2);
            assert_eq!(on_disk["per_intent"]["order_food"]["captured"], 2);
            assert_eq!(on_disk["per_intent"]["track_order"]["needs_review"], 1);
            assert_eq!(on_disk["approved_unused"], 1);
            assert_eq!(on_disk["ready_for_training"], false);
            assert!(!report.ready_for_training);

            // A later run the same day adds up; now 2 approved unused ≥ 2.
            insert(
                &store,
                &[conv("book a table", "reserve", 0.9, "2026-03-10T20:00:00Z")],
            )
            .await;
            let later = capture_day(&store, &config, DAY, 10).await;
            assert!(later.ready_for_training);
            let on_disk: DailyReport =
                serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
            assert_eq!(on_disk.runs, 2);
            assert_eq!(on_disk.counts.captured, 5);
            assert_eq!(on_disk.counts.auto_approved, 3);
            assert_eq!(on_disk.auto_approval_rate, Some(60.0));
            assert_eq!(on_disk.approved_unused, 2);
            assert!(on_disk.ready_for_training);
            store.close().await;
        });
    }
}

#[test]
fn a_repeat_of_a_human_decided_sample_is_marked_reviewed_not_queued() {
    for_each_backend_with_config(|store, config| async move {
        insert(
            &store,
            &[conv("refund please", "refund", 0.5, "2026-03-10T08:00:00Z")],
        )
        .await;
        capture_day(&store, &config, DAY, 10).await;
        let sample = samples(&store).await.remove(0);
        let decision = ReviewDecision {
            verdict: ReviewVerdict::Choose("refund_request".into()),
            annotator: Some("asha".into()),
            decided_at: flywheel::storage::Timestamp::now(),
        };
        store.apply_review(sample.id, &decision).await.unwrap();
        insert(
            &store,
            &[Conv {
                provider: Some(ROUTER_PROVIDER),
                ..conv("Refund please!", "refund", 0.4, "2026-03-10T12:00:00Z")
            }],
        )
        .await;
        let report = capture_day(&store, &config, DAY, 10).await;
        assert_eq!(report.counts.already_reviewed, 1);
        assert_eq!(report.counts.needs_review, 0);
        let convs = conversations(&store).await;
        assert_eq!(convs[1].1, "reviewed");
        assert_eq!(convs[1].2, Some(sample.id));
        let after = store.sample(sample.id).await.unwrap().unwrap();
        assert_eq!(after.occurrences, 2);
        assert_eq!(after.intent, "refund_request", "the human's label stays");
        assert_eq!(store.waiting(2).await.unwrap().total(), 0, "nothing waits");
    });
}

#[test]
fn a_batch_larger_than_one_upsert_statement_links_every_conversation() {
    for_each_backend_with_config(|store, config| async move {
        // 1 300 distinct texts, each twice (once shouting): more samples
        // than one multi-row upsert takes, all in one batch.
        let rows: Vec<Conv> = (0..2600)
            .map(|i| {
                let text: &'static str = if i % 2 == 0 {
                    Box::leak(format!("utterance {}", i / 2).into_boxed_str())
                } else {
                    Box::leak(format!("UTTERANCE {}!", i / 2).into_boxed_str())
                };
                conv(text, "intent", 0.9, "2026-03-10T12:00:00Z")
            })
            .collect();
        let ids = insert(&store, &rows).await;
        let report = capture_day(&store, &config, DAY, 10_000).await;
        assert_eq!(report.counts.captured, 2600);
        assert_eq!(report.new_samples.approved, 1300);
        assert_eq!(report.counts.duplicates_folded, 1300);
        let all = samples(&store).await;
        assert_eq!(all.len(), 1300);
        assert!(all.iter().all(|s| s.occurrences == 2));
        let by_id: std::collections::HashMap<i64, &flywheel::storage::samples::Sample> =
            all.iter().map(|s| (s.id, s)).collect();
        for (i, (id, status, sample)) in conversations(&store).await.into_iter().enumerate() {
            assert_eq!(id, ids[i]);
            assert_eq!(status, "auto-approved");
            let sample = by_id[&sample.expect("linked")];
            assert_eq!(sample.text, format!("utterance {}", i / 2));
        }
    });
}

#[test]
fn pending_conversations_scattered_over_many_read_spans_are_all_captured() {
    for_each_backend_with_config(|store, config| async move {
        // Reads walk spans of 20 000 ids ahead of the fold: pending rows
        // far apart, with empty spans and another day's rows between
        // them, and a repeat in the last span.
        let rows = [
            conv("track my parcel", "track", 0.95, "2026-03-10T01:00:00Z"),
            conv("old question", "track", 0.95, "2026-03-09T12:00:00Z"),
            conv("cancel my order", "cancel", 0.5, "2026-03-10T02:00:00Z"),
            conv("where is my refund", "refund", 0.95, "2026-03-10T03:00:00Z"),
            conv("Track my parcel!", "track", 0.95, "2026-03-10T04:00:00Z"),
        ];
        let ids = insert(&store, &rows).await;
        let spread = [1, 20_000, 20_001, 95_003, 140_000];
        for (id, new_id) in ids.iter().zip(spread).rev() {
            exec(
                &store,
                &format!("UPDATE conversation_logs SET id = {new_id} WHERE id = {id}"),
            )
            .await;
        }
        let report = capture_day(&store, &config, DAY, 5000).await;
        assert_eq!(report.counts.captured, 4);
        assert_eq!(report.counts.auto_approved, 3);
        assert_eq!(report.counts.needs_review, 1);
        assert_eq!(report.counts.duplicates_folded, 1);
        let convs = conversations(&store).await;
        let statuses: Vec<(i64, &str)> = convs.iter().map(|(id, s, _)| (*id, s.as_str())).collect();
        assert_eq!(
            statuses,
            [
                (1, "auto-approved"),
                (20_000, "pending"),
                (20_001, "needs-review"),
                (95_003, "auto-approved"),
                (140_000, "auto-approved"),
            ]
        );
        assert_eq!(convs[0].2, convs[4].2, "the repeat folds into one sample");
        let again = capture_day(&store, &config, DAY, 5000).await;
        assert_eq!(again.counts.captured, 0, "nothing is left pending");
        assert_eq!(samples(&store).await.len(), 3);
    });
}

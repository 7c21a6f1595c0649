//! Daily capture's fold: a round of pending conversations grouped by
//! normalised text, then cut into transactions ("chunks") of whole samples.
//!
//! Why a round and not each read batch on its own: an utterance that comes
//! back every few hours would otherwise be upserted once per batch it
//! appears in. Folding up to [`ROUND_CONVERSATIONS`] first writes each sample
//! once per round (a million conversations over 200 000 texts: 200 000
//! upserts instead of a million), which is most of the run's database work.
//!
//! A chunk carries a sample's occurrence count together with the marks of
//! exactly the conversations it counts, so a crash between chunks leaves
//! the rest `pending` for the next run and never counts a conversation
//! twice. A sample with more conversations than fit one chunk is split into
//! pieces in consecutive chunks, each piece counting its own conversations.

use std::collections::HashMap;

use super::auto_filter::{AutoFilter, Verdict};
use crate::domain::{Provenance, ReviewStatus};
use crate::storage::daily_capture::{CapturedConversation, PendingConversation};
use crate::storage::samples::NewSample;
use crate::text::normalize_for_dedup;

/// Conversations folded before anything is written. Memory is about 16
/// bytes per conversation plus one sample per distinct text.
pub const ROUND_CONVERSATIONS: usize = 1_000_000;

/// A folded conversation: its id and its report labels (interned).
#[derive(Debug, Clone, Copy)]
pub struct ConversationRef {
    pub id: i64,
    pub language: u32,
    pub intent: u32,
}

struct FoldedSample {
    sample: NewSample,
    conversations: Vec<ConversationRef>,
}

/// Distinct label strings (languages, intents) by index.
#[derive(Default)]
pub struct Labels {
    names: Vec<String>,
    index: HashMap<String, u32>,
}

impl Labels {
    fn intern(&mut self, name: Option<&str>) -> u32 {
        let name = name.unwrap_or("unknown");
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    pub fn name(&self, i: u32) -> &str {
        &self.names[i as usize]
    }
}

/// One round of conversations grouped by normalised text.
#[derive(Default)]
pub struct Fold {
    index: HashMap<String, usize>,
    samples: Vec<FoldedSample>,
    /// Conversations with nothing to learn from (empty after normalising).
    ignored: Vec<ConversationRef>,
    pub labels: Labels,
    pub conversations: usize,
}

/// One transaction's worth: distinct samples (pieces), the conversations
/// each counts, and their report labels in the same order.
#[derive(Default)]
pub struct Chunk {
    pub samples: Vec<NewSample>,
    pub conversations: Vec<CapturedConversation>,
    pub refs: Vec<ConversationRef>,
}

impl Fold {
    pub fn add(&mut self, rows: &[PendingConversation], filter: &AutoFilter) {
        for row in rows {
            self.conversations += 1;
            let conversation = ConversationRef {
                id: row.id,
                language: self.labels.intern(row.language.as_deref()),
                intent: self.labels.intern(row.nlu_intent.as_deref()),
            };
            let normalized = normalize_for_dedup(&row.user_message);
            if normalized.is_empty() {
                self.ignored.push(conversation);
                continue;
            }
            let verdict = filter.classify(
                row.nlu_intent.as_deref(),
                row.nlu_confidence,
                row.nlu_provider.as_deref(),
            );
            match self.index.get(&normalized) {
                Some(&slot) => {
                    let folded = &mut self.samples[slot];
                    folded.conversations.push(conversation);
                    let sample = &mut folded.sample;
                    match verdict {
                        // A confident repeat makes the new sample an
                        // approved one, represented by that conversation.
                        Verdict::AutoApproved if sample.review_status != ReviewStatus::Approved => {
                            *sample =
                                new_sample(row, normalized, verdict, filter.config.medium_priority);
                        }
                        Verdict::NeedsReview { priority }
                            if sample.review_status == ReviewStatus::NeedsReview
                                && priority < sample.priority =>
                        {
                            sample.priority = priority;
                        }
                        _ => {}
                    }
                }
                None => {
                    self.index.insert(normalized.clone(), self.samples.len());
                    self.samples.push(FoldedSample {
                        sample: new_sample(row, normalized, verdict, filter.config.medium_priority),
                        conversations: vec![conversation],
                    });
                }
            }
        }
    }

    /// The fold cut into chunks of at most `size` conversations, samples in
    /// the order first seen, then the ignored conversations; made one at a
    /// time, so only one chunk's copies of the samples exist at once.
    pub fn chunks(&self, size: usize) -> Chunks<'_> {
        Chunks {
            fold: self,
            size: size.max(1),
            sample: 0,
            offset: 0,
            ignored: 0,
        }
    }
}

/// Iterator over a [`Fold`]'s chunks.
pub struct Chunks<'a> {
    fold: &'a Fold,
    size: usize,
    /// The next sample, and how many of its conversations are written.
    sample: usize,
    offset: usize,
    ignored: usize,
}

impl Iterator for Chunks<'_> {
    type Item = Chunk;

    fn next(&mut self) -> Option<Chunk> {
        let mut chunk = Chunk::default();
        // A piece ends before its sample does only where the chunk is full,
        // so no chunk holds two pieces of one sample.
        while chunk.conversations.len() < self.size && self.sample < self.fold.samples.len() {
            let folded = &self.fold.samples[self.sample];
            let rest = &folded.conversations[self.offset..];
            let piece = &rest[..rest.len().min(self.size - chunk.conversations.len())];
            let slot = chunk.samples.len();
            let mut sample = folded.sample.clone();
            sample.occurrences = piece.len() as i32;
            chunk.samples.push(sample);
            for conversation in piece {
                chunk.conversations.push(CapturedConversation {
                    id: conversation.id,
                    sample: Some(slot),
                });
                chunk.refs.push(*conversation);
            }
            self.offset += piece.len();
            if self.offset == folded.conversations.len() {
                self.sample += 1;
                self.offset = 0;
            }
        }
        let ignored = &self.fold.ignored[self.ignored..];
        let take = ignored.len().min(self.size - chunk.conversations.len());
        for conversation in &ignored[..take] {
            chunk.conversations.push(CapturedConversation {
                id: conversation.id,
                sample: None,
            });
            chunk.refs.push(*conversation);
        }
        self.ignored += take;
        (!chunk.conversations.is_empty()).then_some(chunk)
    }
}

fn new_sample(
    row: &PendingConversation,
    normalized_text: String,
    verdict: Verdict,
    medium_priority: i32,
) -> NewSample {
    let (review_status, priority) = match verdict {
        Verdict::AutoApproved => (ReviewStatus::Approved, medium_priority),
        Verdict::NeedsReview { priority } => (ReviewStatus::NeedsReview, priority),
    };
    NewSample {
        text: row.user_message.trim().to_string(),
        normalized_text,
        // A sample needs an intent; reviewers replace this placeholder.
        intent: row
            .nlu_intent
            .clone()
            .filter(|i| !i.trim().is_empty())
            .unwrap_or_else(|| "unknown".into()),
        language: row.language.clone(),
        source: Provenance::Auto,
        confidence: row.nlu_confidence,
        review_status,
        priority,
        occurrences: 1,
        predicted_intent: row.nlu_intent.clone(),
        predicted_by_version: row.model_version.clone(),
        conversation_id: Some(row.id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::AutoFilterConfig;

    fn row(id: i64, text: &str, confidence: f64) -> PendingConversation {
        PendingConversation {
            id,
            user_message: text.into(),
            language: Some("en".into()),
            nlu_intent: Some("order_status".into()),
            nlu_confidence: Some(confidence),
            nlu_provider: Some(crate::config::ROUTER_PROVIDER.into()),
            model_version: Some("router-v1.0.0".into()),
        }
    }

    fn fold(rows: &[PendingConversation]) -> Fold {
        let mut fold = Fold::default();
        let config = AutoFilterConfig::default();
        fold.add(rows, &AutoFilter::floor_only(&config));
        fold
    }

    #[test]
    fn repeats_anywhere_in_the_round_fold_into_one_sample() {
        let f = fold(&[
            row(1, "Where is my order?", 0.5),
            row(2, "hello", 0.99),
            row(3, "where is my ORDER", 0.6),
            row(4, "  ", 0.9),
        ]);
        let chunks: Vec<Chunk> = f.chunks(100).collect();
        assert_eq!(chunks.len(), 1);
        let chunk = &chunks[0];
        assert_eq!(chunk.samples.len(), 2);
        assert_eq!(chunk.samples[0].occurrences, 2);
        assert_eq!(chunk.samples[0].review_status, "needs-review");
        assert_eq!(chunk.samples[1].review_status, "approved");
        let ids: Vec<(i64, Option<usize>)> = chunk
            .conversations
            .iter()
            .map(|c| (c.id, c.sample))
            .collect();
        assert_eq!(ids, [(1, Some(0)), (3, Some(0)), (2, Some(1)), (4, None)]);
    }

    #[test]
    fn a_confident_repeat_approves_the_sample_and_represents_it() {
        let f = fold(&[row(1, "hi there", 0.5), row(7, "Hi there!", 0.95)]);
        let chunk = &f.chunks(10).next().unwrap();
        assert_eq!(chunk.samples[0].review_status, "approved");
        assert_eq!(chunk.samples[0].conversation_id, Some(7));
        assert_eq!(chunk.samples[0].occurrences, 2);
    }

    #[test]
    fn chunks_hold_at_most_size_conversations_and_split_big_samples() {
        // "other" first, so the big sample starts mid-chunk
        let mut rows = vec![row(1, "other", 0.5)];
        rows.extend((2..=8).map(|i| row(i, "same text", 0.5)));
        rows.push(row(9, "", 0.5));
        let chunks: Vec<Chunk> = fold(&rows).chunks(3).collect();
        let sizes: Vec<usize> = chunks.iter().map(|c| c.conversations.len()).collect();
        assert_eq!(sizes, [3, 3, 3]);
        // every chunk's samples are distinct, and occurrences add up
        let mut total = 0;
        for chunk in &chunks {
            let mut texts: Vec<&str> = chunk
                .samples
                .iter()
                .map(|s| s.normalized_text.as_str())
                .collect();
            texts.dedup();
            assert_eq!(texts.len(), chunk.samples.len());
            total += chunk
                .samples
                .iter()
                .map(|s| s.occurrences as usize)
                .sum::<usize>();
            for c in &chunk.conversations {
                if let Some(slot) = c.sample {
                    assert!(slot < chunk.samples.len());
                }
            }
        }
        assert_eq!(total, 8);
        let all: Vec<i64> = chunks
            .iter()
            .flat_map(|c| c.conversations.iter().map(|c| c.id))
            .collect();
        assert_eq!(all, [1, 2, 3, 4, 5, 6, 7, 8, 9]);
    }
}

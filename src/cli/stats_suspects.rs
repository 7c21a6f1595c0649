//! `flywheel stats suspects`: approved labels the model confidently
//! disagrees with ([`crate::suspects`]), most suspicious first (`stats
//! queue` ranks them with everything else that waits).

use std::fmt::Write as _;

use serde_json::{Value, json};

use super::Context;
use crate::error::Result;
use crate::review::decisions::short;
use crate::storage::Store;
use crate::storage::suspects::Suspect;

/// One suspect as `--json` gives it.
fn item(s: &Suspect) -> Value {
    json!({
        "sample_id": s.sample.id,
        "text": s.sample.text,
        "intent": s.sample.intent,
        "suggested": s.suggested_intent,
        "score": s.score,
        "source": s.sample.source,
        "language": s.sample.language,
        "flagged_by": s.flagged_by,
        "flagged_at": s.flagged_at,
    })
}

/// One suspect as a line of text: score, sample, stored label → suggestion, text.
fn line(s: &Suspect) -> String {
    format!(
        "  suspect {:.2}  #{:<7} {} → model says {}  “{}”",
        s.score,
        s.sample.id,
        s.sample.intent,
        s.suggested_intent,
        short(&s.sample.text)
    )
}

/// `stats suspects [--limit N]`.
pub(super) async fn suspects(ctx: &Context, store: &Store, limit: i64) -> Result<()> {
    let total = store.suspect_count().await?;
    let items = store.suspects(limit).await?;
    let json_items: Vec<Value> = items.iter().map(item).collect();
    ctx.out.summary(
        &json!({ "ok": true, "total": total, "items": json_items }),
        || {
            if total == 0 {
                return "No suspect labels: weekly training found no approved label the model confidently disagrees with (or none is left undecided).".into();
            }
            let mut out = format!(
                "{total} suspect labels, most suspicious first: left out of training until a human confirms or corrects them (they take suspects.share of the review order)\n"
            );
            for s in &items {
                let _ = writeln!(out, "{}", line(s));
            }
            out
        },
    );
    Ok(())
}

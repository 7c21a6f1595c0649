//! The health checks' states as last notified ([`crate::monitor::notify`]).

use chrono::Utc;

use super::{Store, Timestamp, db_error, on_pool};
use crate::error::Result;

impl Store {
    /// Record `check` as `failing` (or not) and say whether that is a
    /// change worth an event: it is when the recorded state differs, or
    /// when the check is failing and was never recorded. Atomic, so of two
    /// stages recording the same change only one is told to send it.
    pub async fn claim_alert_state(&self, check: &str, failing: bool) -> Result<bool> {
        let err = |e| db_error("recording a health check's alert state", e);
        let recorded: Option<bool> = on_pool!(self, |pool| {
            sqlx::query_scalar("SELECT failing FROM alert_states WHERE check_name = $1")
                .bind(check)
                .fetch_optional(pool)
                .await
        })
        .map_err(err)?;
        if recorded == Some(failing) {
            return Ok(false);
        }
        // A first record of a healthy check is no news: recorded, not claimed.
        let sql = if recorded.is_none() && !failing {
            "INSERT INTO alert_states (check_name, failing, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (check_name) DO NOTHING"
        } else {
            "INSERT INTO alert_states (check_name, failing, changed_at) VALUES ($1, $2, $3) \
             ON CONFLICT (check_name) DO UPDATE SET failing = excluded.failing, changed_at = excluded.changed_at \
             WHERE alert_states.failing <> excluded.failing"
        };
        let changed = on_pool!(self, |pool| {
            sqlx::query(sql)
                .bind(check)
                .bind(failing)
                .bind(Timestamp(Utc::now()))
                .execute(pool)
                .await
                .map(|done| done.rows_affected() > 0)
        })
        .map_err(err)?;
        Ok(changed && (failing || recorded.is_some()))
    }
}

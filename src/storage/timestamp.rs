//! A UTC instant stored natively on each backend: `TIMESTAMPTZ` on
//! PostgreSQL, fixed-width ISO-8601 text with milliseconds on SQLite
//! (`2026-11-25T02:00:00.000Z`, the same shape as the schema's
//! `strftime('%Y-%m-%dT%H:%M:%fZ')` defaults), so that text comparison is
//! time order and operators' `created_at >= CURRENT_DATE` works on both.

use chrono::{DateTime, NaiveDateTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgTypeInfo, PgValueRef};
use sqlx::sqlite::{SqliteArgumentValue, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Postgres, Sqlite, Type};

const SQLITE_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.3fZ";

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(pub DateTime<Utc>);

impl Timestamp {
    /// Now, truncated to milliseconds so both backends store the same value.
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(3))
    }

    pub fn into_inner(self) -> DateTime<Utc> {
        self.0
    }

    fn to_sqlite_text(self) -> String {
        self.0.format(SQLITE_FORMAT).to_string()
    }

    pub(crate) fn parse_sqlite_text(text: &str) -> Result<Self, BoxDynError> {
        if let Ok(dt) = DateTime::parse_from_rfc3339(text) {
            return Ok(Self(dt.with_timezone(&Utc)));
        }
        // SQLite's own CURRENT_TIMESTAMP shape, in case a hand-written row uses it.
        let naive = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")?;
        Ok(Self(naive.and_utc()))
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(dt: DateTime<Utc>) -> Self {
        Self(dt.trunc_subsecs(3))
    }
}

impl std::fmt::Display for Timestamp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.0.format("%Y-%m-%d %H:%M:%S UTC"))
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <String as Type<Sqlite>>::compatible(ty)
    }
}

impl<'q> Encode<'q, Sqlite> for Timestamp {
    fn encode_by_ref(&self, buf: &mut Vec<SqliteArgumentValue<'q>>) -> Result<IsNull, BoxDynError> {
        <String as Encode<'q, Sqlite>>::encode(self.to_sqlite_text(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let text = <&str as Decode<Sqlite>>::decode(value)?;
        Self::parse_sqlite_text(text)
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <DateTime<Utc> as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <DateTime<Utc> as Type<Postgres>>::compatible(ty)
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut sqlx::postgres::PgArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <DateTime<Utc> as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        <DateTime<Utc> as Decode<Postgres>>::decode(value).map(Self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sqlite_text_is_fixed_width_and_sorts_as_time() {
        let a = Timestamp::from(Utc.with_ymd_and_hms(2026, 1, 2, 3, 4, 5).unwrap());
        let b = Timestamp::from(a.0 + chrono::Duration::milliseconds(7));
        assert_eq!(a.to_sqlite_text(), "2026-01-02T03:04:05.000Z");
        assert_eq!(b.to_sqlite_text(), "2026-01-02T03:04:05.007Z");
        assert!(a.to_sqlite_text() < b.to_sqlite_text());
        assert!(a.to_sqlite_text().as_str() >= "2026-01-02");
        assert_eq!(
            Timestamp::parse_sqlite_text(&b.to_sqlite_text()).unwrap(),
            b
        );
        assert_eq!(
            Timestamp::parse_sqlite_text("2026-01-02 03:04:05").unwrap(),
            a
        );
    }
}

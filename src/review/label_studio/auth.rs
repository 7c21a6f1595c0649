//! The two kinds of Label Studio API key (DESIGN §11) and the short-lived
//! access token a personal access token is traded for.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::header::HeaderValue;
use secrecy::{ExposeSecret, SecretString};

use crate::error::{Error, Result};

/// Refresh this long before the access token's `exp`, so a request never
/// leaves with a token that expires in flight.
pub(crate) const REFRESH_MARGIN: Duration = Duration::from_secs(30);
/// Assumed lifetime of an access token whose `exp` cannot be read
/// (Label Studio's default is 5 minutes).
const FALLBACK_LIFETIME: Duration = Duration::from_secs(240);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyKind {
    /// `Authorization: Token <key>`; disabled by default on new
    /// organisations.
    Legacy,
    /// A JWT refresh token, traded at `/api/token/refresh/` for 5-minute
    /// access tokens.
    PersonalAccessToken,
}

impl KeyKind {
    /// A JWT has exactly two dots (header.payload.signature); a legacy key is
    /// 40 hex characters (or any other dot-free string an admin set).
    pub fn of(key: &str) -> KeyKind {
        if key.matches('.').count() == 2 {
            KeyKind::PersonalAccessToken
        } else {
            KeyKind::Legacy
        }
    }
}

/// An access token and when to stop using it.
pub(crate) struct AccessToken {
    header: HeaderValue,
    refresh_at: SystemTime,
}

impl AccessToken {
    pub fn new(jwt: &str) -> Result<Self> {
        let lifetime_end = jwt_expiry(jwt).unwrap_or_else(|| SystemTime::now() + FALLBACK_LIFETIME);
        let refresh_at = lifetime_end
            .checked_sub(REFRESH_MARGIN)
            .unwrap_or(UNIX_EPOCH);
        Ok(Self {
            header: sensitive_header(&format!("Bearer {jwt}"))?,
            refresh_at,
        })
    }

    pub fn is_fresh(&self) -> bool {
        SystemTime::now() < self.refresh_at
    }

    pub fn header(&self) -> HeaderValue {
        self.header.clone()
    }
}

/// `exp` of a JWT, read without checking the signature (the server checks
/// it; we only need to know when to refresh).
pub(crate) fn jwt_expiry(jwt: &str) -> Option<SystemTime> {
    let payload = jwt.split('.').nth(1)?;
    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_u64()?;
    Some(UNIX_EPOCH + Duration::from_secs(exp))
}

/// The `Authorization` header for a legacy key.
pub(crate) fn legacy_header(key: &SecretString) -> Result<HeaderValue> {
    sensitive_header(&format!("Token {}", key.expose_secret()))
}

/// Marked sensitive so neither reqwest nor hyper ever prints it.
fn sensitive_header(value: &str) -> Result<HeaderValue> {
    let mut header = HeaderValue::from_str(value).map_err(|_| {
        Error::config("the Label Studio API key contains characters not allowed in an HTTP header")
    })?;
    header.set_sensitive(true);
    Ok(header)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn jwt_with_exp(exp: u64) -> String {
        let payload =
            URL_SAFE_NO_PAD.encode(format!("{{\"token_type\":\"access\",\"exp\":{exp}}}"));
        format!("eyJhbGciOiJIUzI1NiJ9.{payload}.c2lnbmF0dXJl")
    }

    #[test]
    fn key_kind_is_told_by_the_dots() {
        assert_eq!(KeyKind::of(&jwt_with_exp(1)), KeyKind::PersonalAccessToken);
        assert_eq!(
            KeyKind::of("0123456789abcdef0123456789abcdef01234567"),
            KeyKind::Legacy
        );
        assert_eq!(KeyKind::of("a.b"), KeyKind::Legacy);
    }

    #[test]
    fn access_token_is_refreshed_thirty_seconds_before_exp() {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs();
        assert!(
            AccessToken::new(&jwt_with_exp(now + 300))
                .unwrap()
                .is_fresh()
        );
        // 20 s left is inside the margin: treat as stale.
        assert!(
            !AccessToken::new(&jwt_with_exp(now + 20))
                .unwrap()
                .is_fresh()
        );
        assert_eq!(
            jwt_expiry(&jwt_with_exp(now)),
            Some(UNIX_EPOCH + Duration::from_secs(now))
        );
    }

    #[test]
    fn unreadable_jwt_gets_a_conservative_lifetime() {
        assert_eq!(jwt_expiry("not.a.jwt"), None);
        let t = AccessToken::new("not.a.jwt").unwrap();
        assert!(t.is_fresh());
        assert!(t.refresh_at < SystemTime::now() + FALLBACK_LIFETIME);
    }

    #[test]
    fn headers_are_sensitive() {
        let h = legacy_header(&SecretString::from("abc123")).unwrap();
        assert!(h.is_sensitive());
        assert!(legacy_header(&SecretString::from("bad\nkey")).is_err());
    }
}

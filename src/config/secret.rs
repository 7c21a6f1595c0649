//! Values that must never reach a log, a report or `config show` in clear.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

const MASK: &str = "********";

/// A secret string (API key, bearer token). `Debug`, `Display` and
/// `Serialize` all print a mask; only [`Secret::expose`] gives the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// The value itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({MASK})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(MASK)
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(MASK)
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

/// A database URL whose password is masked whenever it is shown.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The URL with any password replaced by a mask, safe for logs.
    pub fn redacted(&self) -> String {
        redact_url_password(&self.0)
    }
}

/// `scheme://user:password@host/db` → `scheme://user:********@host/db`; a
/// `password=` query parameter is masked too.
pub fn redact_url_password(url: &str) -> String {
    let mut out = url.to_string();
    if let Some(scheme_end) = out.find("://") {
        let rest_start = scheme_end + 3;
        let authority_end = out[rest_start..]
            .find(['/', '?'])
            .map_or(out.len(), |i| rest_start + i);
        if let Some(at) = out[rest_start..authority_end].rfind('@') {
            let userinfo = &out[rest_start..rest_start + at];
            if let Some(colon) = userinfo.find(':') {
                let start = rest_start + colon + 1;
                out.replace_range(start..rest_start + at, MASK);
            }
        }
    }
    if let Some(pos) = out.find("password=") {
        let start = pos + "password=".len();
        let end = out[start..].find('&').map_or(out.len(), |i| start + i);
        out.replace_range(start..end, MASK);
    }
    out
}

impl fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DatabaseUrl({})", self.redacted())
    }
}

impl fmt::Display for DatabaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for DatabaseUrl {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.redacted())
    }
}

impl<'de> Deserialize<'de> for DatabaseUrl {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(DatabaseUrl)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print() {
        let key = Secret::new("abc123supersecret");
        assert!(!format!("{key:?} {key}").contains("abc123"));
        assert!(!serde_json::to_string(&key).unwrap().contains("abc123"));
        assert_eq!(key.expose(), "abc123supersecret");
    }

    #[test]
    fn database_passwords_are_masked() {
        let url =
            DatabaseUrl::new("postgres://flywheel:hunter2@db.internal:5432/fw?sslmode=require");
        assert_eq!(
            url.redacted(),
            "postgres://flywheel:********@db.internal:5432/fw?sslmode=require"
        );
        assert!(!format!("{url:?}").contains("hunter2"));
        assert_eq!(
            redact_url_password("postgres://localhost/fw?user=a&password=pw&x=1"),
            "postgres://localhost/fw?user=a&password=********&x=1"
        );
        assert_eq!(
            redact_url_password("postgres://root@127.0.0.1/x"),
            "postgres://root@127.0.0.1/x"
        );
        assert_eq!(
            redact_url_password("sqlite:///tmp/a.db"),
            "sqlite:///tmp/a.db"
        );
    }
}

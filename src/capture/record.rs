//! Validation of what callers send: classify requests, conversation records
//! (bulk `POST /v1/conversations` and `flywheel ingest` share one shape,
//! DESIGN §6) and feedback. Each error names the field; unknown fields are
//! ignored so newer senders keep working.
//!
//! Text containing U+0000 is refused (PostgreSQL cannot store it in `TEXT`;
//! SQLite could, but both backends must take the same data), never stripped:
//! a changed message would be logged as something the user never said.

use std::fmt;

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::user_hash::UserHasher;
use crate::dataset::intent_name;
use crate::lang::Language;
use crate::storage::Timestamp;
use crate::storage::conversations::NewConversation;

/// Longest utterance accepted, in bytes. Real utterances are a few hundred.
pub const MAX_TEXT_BYTES: usize = 16 * 1024;
/// Longest identifier-like field (provider, session id, …); intents follow
/// [`crate::dataset::intent_name`].
pub const MAX_FIELD_BYTES: usize = 256;
/// Clock skew tolerated on `created_at` before it counts as "in the future".
const MAX_FUTURE_SKEW: Duration = Duration::minutes(5);

/// A field that failed validation and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }

    /// Prefix the field with where it sits (`records[3].`).
    pub fn within(self, prefix: &str) -> Self {
        Self {
            field: format!("{prefix}{}", self.field),
            message: self.message,
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "`{}` {}", self.field, self.message)
    }
}

type Fields = Map<String, Value>;

fn as_object<'a>(value: &'a Value, what: &str) -> Result<&'a Fields, FieldError> {
    value
        .as_object()
        .ok_or_else(|| FieldError::new(what, format!("must be a JSON object, not {}", kind(value))))
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn optional_text(map: &Fields, name: &str, max: usize) -> Result<Option<String>, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) if s.len() > max => Err(FieldError::new(
            name,
            format!("is {} bytes long; the limit is {max}", s.len()),
        )),
        Some(Value::String(s)) if s.contains('\0') => Err(FieldError::new(
            name,
            "contains U+0000 (the NUL character), which cannot be stored; remove it",
        )),
        Some(Value::String(s)) => Ok(Some(s.trim().to_string())),
        Some(other) => Err(FieldError::new(
            name,
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn required_text(map: &Fields, name: &str, max: usize) -> Result<String, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Err(FieldError::new(name, "is required")),
        Some(Value::String(s)) if s.trim().is_empty() => {
            Err(FieldError::new(name, "must not be empty"))
        }
        _ => Ok(optional_text(map, name, max)?.expect("checked non-empty")),
    }
}

/// An intent field: the one intent-name rule every reader shares
/// ([`crate::dataset::intent_name`]); blank counts as absent.
fn optional_intent(map: &Fields, name: &str) -> Result<Option<String>, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) if s.trim().is_empty() => Ok(None),
        Some(Value::String(s)) => intent_name(s)
            .map(|intent| Some(intent.to_string()))
            .map_err(|reason| FieldError::new(name, reason)),
        Some(other) => Err(FieldError::new(
            name,
            format!("must be a string, not {}", kind(other)),
        )),
    }
}

fn required_intent(map: &Fields, name: &str) -> Result<String, FieldError> {
    optional_intent(map, name)?.ok_or_else(|| match map.get(name) {
        Some(Value::String(_)) => FieldError::new(name, "must not be empty"),
        _ => FieldError::new(name, "is required"),
    })
}

fn required_confidence(map: &Fields, name: &str) -> Result<f64, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Err(FieldError::new(name, "is required")),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(c) if (0.0..=1.0).contains(&c) => Ok(c),
            _ => Err(FieldError::new(
                name,
                format!("must be between 0 and 1, got {n}"),
            )),
        },
        Some(other) => Err(FieldError::new(
            name,
            format!("must be a number, not {}", kind(other)),
        )),
    }
}

fn optional_bool(map: &Fields, name: &str) -> Result<Option<bool>, FieldError> {
    match map.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(FieldError::new(
            name,
            format!("must be true or false, not {}", kind(other)),
        )),
    }
}

/// A language code of DESIGN's set (`en`, `hinglish`, `hi`, `mr`, `other`).
pub fn optional_language(map: &Fields, name: &str) -> Result<Option<Language>, FieldError> {
    match optional_text(map, name, MAX_FIELD_BYTES)? {
        None => Ok(None),
        Some(code) => Language::parse(&code).map(Some).ok_or_else(|| {
            FieldError::new(
                name,
                format!("`{code}` is not one of en, hinglish, hi, mr, other"),
            )
        }),
    }
}

fn optional_created_at(
    map: &Fields,
    name: &str,
    now: DateTime<Utc>,
) -> Result<Option<Timestamp>, FieldError> {
    let Some(text) = optional_text(map, name, MAX_FIELD_BYTES)? else {
        return Ok(None);
    };
    let parsed = DateTime::parse_from_rfc3339(&text).map_err(|err| {
        FieldError::new(
            name,
            format!("`{text}` is not an RFC 3339 timestamp ({err})"),
        )
    })?;
    let at = parsed.with_timezone(&Utc);
    if at > now + MAX_FUTURE_SKEW {
        return Err(FieldError::new(name, format!("`{text}` is in the future")));
    }
    Ok(Some(Timestamp::from(at)))
}

fn user_hash(map: &Fields, name: &str, hasher: &UserHasher) -> Result<Option<String>, FieldError> {
    match optional_text(map, name, MAX_FIELD_BYTES)? {
        None => Ok(None),
        // The message never repeats the number.
        Some(phone) => hasher
            .hash(&phone)
            .map(Some)
            .ok_or_else(|| FieldError::new(name, "contains no digits")),
    }
}

/// A conversation record from another NLU service (DESIGN §6).
pub fn conversation_record(
    value: &Value,
    hasher: &UserHasher,
    now: DateTime<Utc>,
) -> Result<NewConversation, FieldError> {
    let map = as_object(value, "record")?;
    Ok(NewConversation {
        user_message: required_text(map, "user_message", MAX_TEXT_BYTES)?,
        nlu_intent: Some(required_intent(map, "nlu_intent")?),
        nlu_confidence: Some(required_confidence(map, "nlu_confidence")?),
        nlu_provider: Some(required_text(map, "nlu_provider", MAX_FIELD_BYTES)?),
        language: optional_language(map, "language")?.map(|l| l.as_str().to_string()),
        session_id: optional_text(map, "session_id", MAX_FIELD_BYTES)?,
        user_hash: user_hash(map, "phone_number", hasher)?,
        routing_decision: optional_text(map, "routing_decision", MAX_FIELD_BYTES)?,
        classify_ms: None,
        classify_error: None,
        model_version: optional_text(map, "model_version", MAX_FIELD_BYTES)?,
        fallback: optional_bool(map, "fallback")?.unwrap_or(false),
        created_at: optional_created_at(map, "created_at", now)?.unwrap_or_else(Timestamp::now),
    })
}

/// A bulk record's optional `request_id`: its idempotency key.
pub fn record_request_id(value: &Value) -> Result<Option<String>, FieldError> {
    optional_text(as_object(value, "record")?, "request_id", MAX_FIELD_BYTES)
}

/// `POST /nlu/classify`.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifyRequest {
    pub text: String,
    pub user_hash: Option<String>,
    pub session_id: Option<String>,
    pub language: Option<Language>,
}

impl ClassifyRequest {
    pub fn parse(value: &Value, hasher: &UserHasher) -> Result<Self, FieldError> {
        let map = as_object(value, "body")?;
        Ok(Self {
            text: required_text(map, "text", MAX_TEXT_BYTES)?,
            user_hash: user_hash(map, "phoneNumber", hasher)?,
            session_id: optional_text(map, "sessionId", MAX_FIELD_BYTES)?,
            language: optional_language(map, "language")?,
        })
    }

    /// What keeps one user on one model when a canary runs.
    pub fn sticky_key(&self) -> Option<&str> {
        self.session_id.as_deref().or(self.user_hash.as_deref())
    }
}

/// `POST /v1/feedback`.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackRequest {
    pub conversation_id: i64,
    pub feedback: &'static str,
    pub correct_intent: Option<String>,
}

impl FeedbackRequest {
    pub fn parse(value: &Value) -> Result<Self, FieldError> {
        let map = as_object(value, "body")?;
        let conversation_id = match map.get("conversation_id") {
            None | Some(Value::Null) => {
                return Err(FieldError::new("conversation_id", "is required"));
            }
            Some(Value::Number(n)) => n.as_i64().filter(|id| *id > 0).ok_or_else(|| {
                FieldError::new(
                    "conversation_id",
                    format!("must be a positive integer, got {n}"),
                )
            })?,
            Some(other) => {
                return Err(FieldError::new(
                    "conversation_id",
                    format!("must be an integer, not {}", kind(other)),
                ));
            }
        };
        let feedback = match required_text(map, "feedback", MAX_FIELD_BYTES)?.as_str() {
            "positive" => "positive",
            "negative" => "negative",
            other => {
                return Err(FieldError::new(
                    "feedback",
                    format!("must be \"positive\" or \"negative\", got `{other}`"),
                ));
            }
        };
        Ok(Self {
            conversation_id,
            feedback,
            correct_intent: optional_intent(map, "correct_intent")?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn hasher() -> UserHasher {
        UserHasher::from_key([7; 32])
    }

    fn record(value: Value) -> Result<NewConversation, FieldError> {
        conversation_record(&value, &hasher(), Utc::now())
    }

    fn good() -> Value {
        json!({"user_message": "pizza please", "nlu_intent": "order_food", "nlu_confidence": 0.9,
               "nlu_provider": "other-nlu", "phone_number": "+91 98765 43210", "extra": [1]})
    }

    #[test]
    fn a_good_record_is_accepted_with_the_phone_hashed() {
        let row = record(good()).unwrap();
        assert_eq!(row.user_message, "pizza please");
        assert_eq!(row.user_hash, hasher().hash("919876543210"));
        assert!(!format!("{row:?}").contains("98765"));
    }

    #[test]
    fn each_bad_field_is_named() {
        let cases = [
            ("user_message", json!("  ")),
            ("user_message", json!(5)),
            ("user_message", json!("x".repeat(MAX_TEXT_BYTES + 1))),
            ("nlu_confidence", json!(1.5)),
            ("nlu_confidence", json!(-0.1)),
            ("nlu_confidence", json!("0.5")),
            ("nlu_intent", json!(null)),
            ("language", json!("klingon")),
            ("created_at", json!("yesterday")),
            (
                "created_at",
                json!((Utc::now() + Duration::days(1)).to_rfc3339()),
            ),
            ("phone_number", json!("n/a")),
            ("fallback", json!("yes")),
            ("user_message", json!("a\u{0}b")),
            ("session_id", json!("\u{0}")),
            ("phone_number", json!("98765\u{0}")),
        ];
        for (field, bad) in cases {
            let mut value = good();
            value[field] = bad.clone();
            let err = record(value).unwrap_err();
            assert_eq!(err.field, field, "{bad}: {err}");
        }
        assert_eq!(record(json!([1])).unwrap_err().field, "record");
    }

    #[test]
    fn classify_and_feedback_requests() {
        let req = ClassifyRequest::parse(
            &json!({"text": "hi", "sessionId": "s1", "language": "hinglish"}),
            &hasher(),
        )
        .unwrap();
        assert_eq!(req.language, Some(Language::Hinglish));
        assert_eq!(req.sticky_key(), Some("s1"));
        assert_eq!(
            ClassifyRequest::parse(&json!({"text": ""}), &hasher())
                .unwrap_err()
                .field,
            "text"
        );
        assert_eq!(
            ClassifyRequest::parse(&json!({"text": 1}), &hasher())
                .unwrap_err()
                .field,
            "text"
        );
        let fb = FeedbackRequest::parse(
            &json!({"conversation_id": 3, "feedback": "negative", "correct_intent": "greet"}),
        )
        .unwrap();
        assert_eq!((fb.conversation_id, fb.feedback), (3, "negative"));
        assert_eq!(
            FeedbackRequest::parse(&json!({"conversation_id": 3, "feedback": "meh"}))
                .unwrap_err()
                .field,
            "feedback"
        );
        assert_eq!(
            FeedbackRequest::parse(&json!({"conversation_id": "3", "feedback": "positive"}))
                .unwrap_err()
                .field,
            "conversation_id"
        );
    }
}

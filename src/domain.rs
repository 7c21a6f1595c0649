//! The loop's states as types, each with the spelling the database stores
//! (and operators' hand-written SQL uses: DESIGN §2). Storage reads and
//! writes them through sqlx as text; JSON output spells them the same way;
//! the faces and the pipeline match on them instead of on strings.

use std::fmt;

/// Declares a state enum stored as text: its variants and their stored
/// spellings, `as_str`, parsing, `Display`, serde and sqlx (both backends).
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident => $spelling:literal, )+
        }
    ) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name {
            $( $(#[$vmeta])* $variant, )+
        }

        impl $name {
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The stored spelling.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $spelling, )+
                }
            }

            /// The state a stored spelling names.
            pub fn parse(text: &str) -> Option<Self> {
                match text {
                    $( $spelling => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownState;
            fn from_str(text: &str) -> Result<Self, UnknownState> {
                Self::parse(text).ok_or_else(|| UnknownState {
                    kind: stringify!($name),
                    value: text.to_string(),
                })
            }
        }

        /// Tests and filters compare with the stored spelling directly.
        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.as_str() == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.as_str() == *other
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                text.parse().map_err(serde::de::Error::custom)
            }
        }

        stored_enum!(@sqlx $name, sqlx::Sqlite);
        stored_enum!(@sqlx $name, sqlx::Postgres);
    };
    (@sqlx $name:ident, $db:ty) => {
        impl sqlx::Type<$db> for $name {
            fn type_info() -> <$db as sqlx::Database>::TypeInfo {
                <str as sqlx::Type<$db>>::type_info()
            }
            fn compatible(ty: &<$db as sqlx::Database>::TypeInfo) -> bool {
                <&str as sqlx::Type<$db>>::compatible(ty)
            }
        }

        impl<'q> sqlx::Encode<'q, $db> for $name {
            fn encode_by_ref(
                &self,
                buf: &mut <$db as sqlx::Database>::ArgumentBuffer<'q>,
            ) -> Result<sqlx::encode::IsNull, sqlx::error::BoxDynError> {
                <&str as sqlx::Encode<'q, $db>>::encode_by_ref(&self.as_str(), buf)
            }
        }

        impl<'r> sqlx::Decode<'r, $db> for $name {
            fn decode(
                value: <$db as sqlx::Database>::ValueRef<'r>,
            ) -> Result<Self, sqlx::error::BoxDynError> {
                let text = <&str as sqlx::Decode<'r, $db>>::decode(value)?;
                Ok(text.parse::<$name>()?)
            }
        }
    };
}

/// A stored spelling no variant has (a row written by a newer Flywheel, or
/// by hand).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnknownState {
    pub kind: &'static str,
    pub value: String,
}

impl fmt::Display for UnknownState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "unknown {}: {:?}", self.kind, self.value)
    }
}

impl std::error::Error for UnknownState {}

stored_enum! {
    /// `conversation_logs.review_status`: where daily capture put a conversation.
    pub enum ConversationStatus {
        /// Not yet seen by daily capture.
        Pending => "pending",
        /// Its sample is approved without a human (confident, or labelled by an import).
        AutoApproved => "auto-approved",
        /// Its sample waits for a human.
        NeedsReview => "needs-review",
        /// A human decided its sample.
        Reviewed => "reviewed",
        /// No letters or digits to learn from.
        Ignored => "ignored",
    }
}

stored_enum! {
    /// `training_samples.review_status`.
    pub enum ReviewStatus {
        NeedsReview => "needs-review",
        /// Pushed to Label Studio, awaiting annotation.
        InReview => "in-review",
        Approved => "approved",
        Rejected => "rejected",
    }
}

stored_enum! {
    /// Where a sample waiting for a human label waits (not a column: the
    /// spelling of `status`, `stats queue --json`, the console and the
    /// `where` label of `/metrics`).
    pub enum WaitingPlace {
        /// Queued here: the console can label it, the next sync pushes it.
        Here => "here",
        /// A Label Studio task awaiting its annotation.
        LabelStudio => "label-studio",
    }
}

stored_enum! {
    /// Why a sample waits for a human label (not a column: the part of
    /// [`crate::storage::waiting`] it is counted in).
    pub enum WaitingKind {
        /// In the review queue: `needs-review` here, `in-review` in Label
        /// Studio (one drawn for audit too counts here).
        Review => "review",
        /// An audit of a sample the model approved, awaiting its label.
        Audit => "audit",
        /// An approved label the model confidently disagrees with
        /// ([`crate::suspects`]), not also an audit.
        Suspect => "suspect",
    }
}

stored_enum! {
    /// `training_samples.source`: where a sample's label came from.
    pub enum Provenance {
        /// The model's own prediction (auto-approved or awaiting review).
        Auto => "auto",
        /// A human review, in Label Studio or the console.
        Human => "human",
        /// The built-in synthetic seed set.
        Synthetic => "synthetic",
        /// Labelled data a team imported.
        Import => "import",
    }
}

impl Provenance {
    /// The sources whose labels judge models (see [`crate::gold`]): a
    /// human said so, or a team imported data it already trusts. A
    /// model's own answers and the synthetic seed set train but never judge.
    pub const GOLD: [Provenance; 2] = [Provenance::Human, Provenance::Import];

    pub fn is_gold(self) -> bool {
        Self::GOLD.contains(&self)
    }
}

stored_enum! {
    /// `model_versions.status` (DESIGN §1 lifecycle). A version registered
    /// without saying otherwise is `Testing`.
    #[derive(Default)]
    pub enum ModelStatus {
        Training => "training",
        #[default]
        Testing => "testing",
        Canary => "canary",
        Production => "production",
        Archived => "archived",
        Failed => "failed",
        Rejected => "rejected",
    }
}

stored_enum! {
    /// `job_runs.status`.
    pub enum JobStatus {
        Running => "running",
        Succeeded => "succeeded",
        Failed => "failed",
        /// The process died; ended at its last heartbeat.
        Crashed => "crashed",
        /// Stopped by an operator, or its output was closed.
        Cancelled => "cancelled",
    }
}

stored_enum! {
    /// The stages that record job runs and must not overlap (`job_runs.stage`).
    pub enum Stage {
        DailyCapture => "daily-capture",
        LabelStudioSync => "label-studio-sync",
        Export => "export",
        WeeklyTraining => "weekly-training",
        SamplesImport => "samples-import",
        Ingest => "ingest",
        Prune => "prune",
        CanaryCheck => "canary-check",
    }
}

stored_enum! {
    /// Who started a run (`job_runs.trigger`).
    #[derive(Default)]
    pub enum Trigger {
        #[default]
        Cli => "cli",
        Cron => "cron",
        Tui => "tui",
    }
}

/// A human's decision on one sample, wherever it was made (the console,
/// Label Studio, an audit): the one verdict type of review.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReviewVerdict {
    /// The model's prediction is right.
    Accept,
    /// This intent is right (the same as the prediction counts as accept).
    Choose(String),
    /// Not a usable sample: an explicit reject, a skip or a cancelled annotation.
    Reject,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spellings_round_trip_and_unknown_ones_are_named() {
        for status in ModelStatus::ALL {
            assert_eq!(ModelStatus::parse(status.as_str()), Some(*status));
            let json = serde_json::to_string(status).unwrap();
            assert_eq!(json, format!("\"{status}\""));
            assert_eq!(serde_json::from_str::<ModelStatus>(&json).unwrap(), *status);
        }
        assert_eq!(ConversationStatus::AutoApproved.as_str(), "auto-approved");
        assert!(ReviewStatus::InReview == "in-review");
        let err = "shipped".parse::<ModelStatus>().unwrap_err();
        assert_eq!(err.to_string(), "unknown ModelStatus: \"shipped\"");
    }
}

//! What background tasks (pane loads, review decisions, jobs) send the UI
//! loop; [`crate::tui::app::App::apply`] folds each into the state.

use chrono::{DateTime, Utc};

use super::data::{Connection, ConversationDetail, GapDetail, Pane, PaneData};
use super::job::Job;
use crate::progress::ProgressEvent;

/// Results and progress arriving from background tasks.
#[derive(Debug, Clone, PartialEq)]
pub enum UiEvent {
    Loaded {
        data: PaneData,
        at: DateTime<Utc>,
    },
    LoadFailed {
        pane: Pane,
        message: String,
    },
    Connection(Connection),
    GapLoaded(Result<GapDetail, String>),
    ConversationLoaded(Result<Box<ConversationDetail>, String>),
    Reviewed {
        sample_id: i64,
        result: Result<String, String>,
    },
    Undone {
        sample_id: i64,
        result: Result<String, String>,
    },
    Progress(ProgressEvent),
    JobFinished {
        job: Job,
        result: Result<String, String>,
    },
}

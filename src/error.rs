//! One error type for the library; its kind decides the process exit code
//! (sysexits, as cron tools expect — DESIGN §5).

use std::fmt;

/// What went wrong, in the terms an operator (or cron) acts on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Anything else: exit 1.
    Failure,
    /// Wrong use of the command line: exit 2.
    Usage,
    /// Bad input data (a JSONL line, a request body, an artifact): exit 65.
    BadInput,
    /// An external service (database, Label Studio) is unavailable: exit 69.
    Unavailable,
    /// Another run of the stage holds the lock: exit 75.
    Locked,
    /// Configuration is missing or malformed: exit 78.
    Config,
    /// Whoever read stdout went away (`flywheel export | head -1`): exit
    /// 141, as a process killed by SIGPIPE, with nothing on stderr. A stage
    /// that was writing there records its run `cancelled`.
    OutputClosed,
    /// An operator stopped the run (the console's cancel): exit 1, as the
    /// failure it was reported as before, but recorded `cancelled`.
    Cancelled,
}

impl ErrorKind {
    pub fn exit_code(self) -> u8 {
        match self {
            ErrorKind::Failure => 1,
            ErrorKind::Usage => 2,
            ErrorKind::BadInput => 65,
            ErrorKind::Unavailable => 69,
            ErrorKind::Locked => 75,
            ErrorKind::Config => 78,
            ErrorKind::OutputClosed => 141,
            ErrorKind::Cancelled => 1,
        }
    }
}

/// An error with a message written for the operator: what failed, where,
/// and (when known) what to do about it.
#[derive(Debug)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
        }
    }
    pub fn failure(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failure, message)
    }
    pub fn usage(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Usage, message)
    }
    pub fn bad_input(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::BadInput, message)
    }
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Unavailable, message)
    }
    pub fn locked(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Locked, message)
    }
    pub fn config(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Config, message)
    }
    /// Writing `what` (stdout, an export file) failed: a reader that went
    /// away is [`ErrorKind::OutputClosed`], anything else a failure.
    pub fn writing(what: impl fmt::Display, err: &std::io::Error) -> Self {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            Self::new(
                ErrorKind::OutputClosed,
                format!("writing {what}: its reader closed it"),
            )
        } else {
            Self::failure(format!("writing {what}: {err}"))
        }
    }
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }
    pub fn message(&self) -> &str {
        &self.message
    }
    /// Prefix the message with where it happened ("reading model.json: …").
    pub fn context(self, context: impl fmt::Display) -> Self {
        Self {
            kind: self.kind,
            message: format!("{context}: {}", self.message),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Error {}

impl From<std::io::Error> for Error {
    fn from(err: std::io::Error) -> Self {
        Error::failure(err.to_string())
    }
}

impl From<anyhow::Error> for Error {
    fn from(err: anyhow::Error) -> Self {
        // Keep a typed Error that travelled through anyhow intact.
        match err.downcast::<Error>() {
            Ok(e) => e,
            Err(err) => Error::failure(format!("{err:#}")),
        }
    }
}

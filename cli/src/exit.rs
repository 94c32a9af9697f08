//! Turning failures into one clear line (or one JSON object) and an exit code.
//!
//! The codes are documented in `main.rs` and the README; scripts rely on them.

use std::process::ExitCode;

use serde_json::{Value, json};

/// The thing inspected or pushed has errors (it was read, and it is wrong).
pub const PROBLEMS: u8 = 1;
/// Bad flags, arguments, references or configuration.
pub const USAGE: u8 = 2;
/// The input could not be read.
pub const UNREADABLE: u8 = 3;
/// The server could not be reached, answered with a server error, or refused the request.
pub const SERVER: u8 = 4;
/// Conflict: the version exists with other content, or the destination holds other files.
pub const CONFLICT: u8 = 5;
/// The repository, version or blob does not exist.
pub const NOT_FOUND: u8 = 6;
/// Verification failed: a downloaded or uploaded file does not have its recorded digest/size,
/// or a locked manifest digest differs.
pub const VERIFY: u8 = 7;
/// The server refused the credentials (401/403).
pub const AUTH: u8 = 8;
/// An alias moved meanwhile: the expected version is stale (412 `alias_conflict`).
pub const ALIAS_CONFLICT: u8 = 9;
/// An alias gate refused the move (409 `gate_failed`).
pub const GATE_FAILED: u8 = 10;
/// `validate`: the adapter is incompatible with the base (the verdict, with its reasons).
pub const INCOMPATIBLE: u8 = 11;
/// A waited-for job ended `failed` or `cancelled`.
pub const JOB_FAILED: u8 = 12;

/// A failure that ends the command.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
    /// The server's machine code (`version_exists`, …) when the failure came from it.
    pub api_code: Option<String>,
    pub details: Value,
    /// The command printed its own answer already (e.g. an `incompatible` verdict): only
    /// the exit code remains to be given.
    pub quiet: bool,
}

impl Failure {
    pub fn new(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            code,
            error: error.into(),
            api_code: None,
            details: Value::Null,
            quiet: false,
        }
    }

    /// Exit with `code`, printing nothing more.
    pub fn quiet(code: u8, error: impl Into<anyhow::Error>) -> Self {
        Self {
            quiet: true,
            ..Self::new(code, error)
        }
    }

    pub fn unreadable(error: impl Into<anyhow::Error>) -> Self {
        Self::new(UNREADABLE, error)
    }

    pub fn usage(error: impl Into<anyhow::Error>) -> Self {
        Self::new(USAGE, error)
    }

    /// Prefix the message with what was being done.
    pub fn context(mut self, what: impl std::fmt::Display + Send + Sync + 'static) -> Self {
        self.error = self.error.context(what);
        self
    }

    fn code_name(&self) -> &str {
        if let Some(c) = &self.api_code {
            return c;
        }
        match self.code {
            PROBLEMS => "problems_found",
            USAGE => "usage",
            UNREADABLE => "unreadable_input",
            SERVER => "server_error",
            CONFLICT => "conflict",
            NOT_FOUND => "not_found",
            VERIFY => "verification_failed",
            AUTH => "unauthorized",
            ALIAS_CONFLICT => "alias_conflict",
            GATE_FAILED => "gate_failed",
            INCOMPATIBLE => "incompatible",
            JOB_FAILED => "job_failed",
            _ => "error",
        }
    }

    /// The error and its causes on one line.
    pub fn message(&self) -> String {
        self.error
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ")
    }

    /// Print the error and its causes on one line (no backtrace, whatever RUST_BACKTRACE says).
    pub fn report(self, json: bool) -> ExitCode {
        if self.quiet {
            return ExitCode::from(self.code);
        }
        let message = self.message();
        if json {
            let mut details = match &self.details {
                Value::Object(m) => m.clone(),
                Value::Null => serde_json::Map::new(),
                other => {
                    let mut m = serde_json::Map::new();
                    m.insert("server".into(), other.clone());
                    m
                }
            };
            details.insert("exit_code".into(), json!(self.code));
            println!(
                "{}",
                json!({"error": {"code": self.code_name(), "message": message, "details": details}})
            );
        } else if let Some(code) = &self.api_code {
            eprintln!("error: {message} ({code})");
        } else {
            eprintln!("error: {message}");
        }
        ExitCode::from(self.code)
    }
}

impl From<anyhow::Error> for Failure {
    /// An unclassified failure: the local input could not be read or written.
    fn from(error: anyhow::Error) -> Self {
        Self::unreadable(error)
    }
}

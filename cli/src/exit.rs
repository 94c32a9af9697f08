//! Turning failures into one clear line (or one JSON object) and an exit code.

use std::process::ExitCode;

use serde_json::json;

/// The thing inspected has errors.
pub const PROBLEMS: u8 = 1;
/// The input could not be read.
pub const UNREADABLE: u8 = 3;

/// A failure that ends the command.
#[derive(Debug)]
pub struct Failure {
    pub code: u8,
    pub error: anyhow::Error,
}

impl Failure {
    pub fn unreadable(error: impl Into<anyhow::Error>) -> Self {
        Self {
            code: UNREADABLE,
            error: error.into(),
        }
    }

    /// Print the error and its causes on one line (no backtrace, whatever RUST_BACKTRACE says).
    pub fn report(self, json: bool) -> ExitCode {
        let message = self
            .error
            .chain()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(": ");
        if json {
            let code = match self.code {
                PROBLEMS => "problems_found",
                _ => "unreadable_input",
            };
            println!(
                "{}",
                json!({"error": {"code": code, "message": message, "details": {"exit_code": self.code}}})
            );
        } else {
            eprintln!("error: {message}");
        }
        ExitCode::from(self.code)
    }
}

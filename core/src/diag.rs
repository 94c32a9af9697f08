//! Findings: the problems a check reports, each with a stable machine code.

use serde::Serialize;

/// One problem found by a check. `code` is stable and machine-readable
/// (`lora_b_missing`, `nan_in_tensor`, …); `message` is for people.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    pub code: &'static str,
    pub message: String,
    /// The tensor, module or file the finding is about, when there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject: Option<String>,
}

impl Finding {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            subject: None,
        }
    }

    pub fn about(mut self, subject: impl Into<String>) -> Self {
        self.subject = Some(subject.into());
        self
    }
}

/// Errors (the thing is unusable or wrong) and warnings (probably a mistake, still usable).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
}

impl Findings {
    pub fn error(&mut self, finding: Finding) {
        self.errors.push(finding);
    }

    pub fn warn(&mut self, finding: Finding) {
        self.warnings.push(finding);
    }

    pub fn extend(&mut self, other: Findings) {
        self.errors.extend(other.errors);
        self.warnings.extend(other.warnings);
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

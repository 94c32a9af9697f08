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
///
/// At most [`Findings::LISTED`] of each are kept; the rest are counted (a hostile file with
/// 100,000 broken tensors gets a readable report, not 100,000 messages in memory and on
/// the wire).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Findings {
    pub errors: Vec<Finding>,
    pub warnings: Vec<Finding>,
    /// Errors found beyond the first [`Findings::LISTED`].
    #[serde(skip_serializing_if = "is_zero")]
    pub errors_not_listed: u64,
    /// Warnings found beyond the first [`Findings::LISTED`].
    #[serde(skip_serializing_if = "is_zero")]
    pub warnings_not_listed: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl Findings {
    /// How many errors, and how many warnings, are kept with their messages.
    pub const LISTED: usize = 100;

    pub fn error(&mut self, finding: Finding) {
        if self.errors.len() < Self::LISTED {
            self.errors.push(finding);
        } else {
            self.errors_not_listed += 1;
        }
    }

    pub fn warn(&mut self, finding: Finding) {
        if self.warnings.len() < Self::LISTED {
            self.warnings.push(finding);
        } else {
            self.warnings_not_listed += 1;
        }
    }

    pub fn extend(&mut self, other: Findings) {
        for f in other.errors {
            self.error(f);
        }
        for f in other.warnings {
            self.warn(f);
        }
        self.errors_not_listed += other.errors_not_listed;
        self.warnings_not_listed += other.warnings_not_listed;
    }

    pub fn has_errors(&self) -> bool {
        !self.errors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::{Finding, Findings};

    #[test]
    fn findings_beyond_the_listed_ones_are_counted() {
        let mut f = Findings::default();
        for i in 0..Findings::LISTED + 5 {
            f.error(Finding::new("e", format!("{i}")));
        }
        f.warn(Finding::new("w", "one"));
        assert!(f.has_errors());
        assert_eq!(f.errors.len(), Findings::LISTED);
        assert_eq!(f.errors_not_listed, 5);
        let mut all = Findings::default();
        all.extend(f.clone());
        all.extend(f);
        assert_eq!(all.errors.len(), Findings::LISTED);
        assert_eq!(all.errors_not_listed, Findings::LISTED as u64 + 10);
        assert_eq!(all.warnings.len(), 2);
        let json = serde_json::to_value(&all).unwrap();
        assert_eq!(json["errors_not_listed"], 110);
        assert!(json.get("warnings_not_listed").is_none());
    }
}

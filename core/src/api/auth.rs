//! Tokens, the caller's identity and the audit log: `/v1/tokens`, `/v1/whoami`, `/v1/audit`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// What a token may do. Each scope implies the ones before it: `admin` ⊃ `write` ⊃ `read`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "lowercase")]
pub enum Scope {
    /// Read catalogue entries and blobs of its namespaces.
    Read,
    /// Also publish, tag, yank and add evals in its namespaces.
    Write,
    /// Also manage tokens and read the audit log (an admin token must cover all namespaces).
    Admin,
}

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Read => "read",
            Self::Write => "write",
            Self::Admin => "admin",
        }
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "read" => Ok(Self::Read),
            "write" => Ok(Self::Write),
            "admin" => Ok(Self::Admin),
            other => Err(format!(
                "unknown scope `{}`; expected read, write or admin",
                other.escape_debug()
            )),
        }
    }
}

/// `POST /v1/tokens`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct TokenCreate {
    /// A label for people (`ci-bot`, `alice`): 1–64 characters, letters, digits, `._-`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[A-Za-z0-9._-]{1,64}$"))]
    pub name: String,
    pub scope: Scope,
    /// Namespaces the token is limited to (1 to 100 names); absent or null: all namespaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(min_items = 1, max_items = 100))]
    pub namespaces: Option<Vec<String>>,
    /// Unix time (seconds) after which the token stops working; absent: never. Must be in
    /// the future.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
}

/// A token as listed (never its secret).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenInfo {
    /// Public identifier (`tok_…`), used to revoke.
    pub id: String,
    pub name: String,
    pub scope: Scope,
    /// Null: all namespaces.
    pub namespaces: Option<Vec<String>>,
    pub created_at: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_by: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub revoked_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<i64>,
}

/// The answer to a token creation: the secret is shown here once and never again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenCreated {
    /// The bearer secret (`art_…`). The registry stores only its sha256.
    pub token: String,
    pub info: TokenInfo,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<TokenInfo>,
}

/// `GET /v1/whoami`: who the registry takes the caller for.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WhoAmI {
    /// `anonymous`, or `NAME (tok_…)`: what the audit log records.
    pub actor: String,
    /// Absent for an anonymous caller.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<TokenInfo>,
    /// Whether this server lets anonymous callers read (`--public-read`).
    pub public_read: bool,
}

/// One audited mutation.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    /// Unix time (seconds).
    pub created_at: i64,
    pub actor: String,
    /// `publish`, `alias.move`, `yank`, `eval.add`, `token.create`, … (docs/API.md).
    pub action: String,
    pub method: String,
    /// The request path.
    pub target: String,
    /// The HTTP status of the answer.
    pub status: u16,
    /// `ok`, or the error code the request was refused with.
    pub outcome: String,
    #[serde(default, skip_serializing_if = "Value::is_null")]
    pub details: Value,
}

/// `GET /v1/audit`: newest first.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditList {
    pub entries: Vec<AuditEntry>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<String>,
}

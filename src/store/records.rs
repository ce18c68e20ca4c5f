//! The records the store persists, as plain serde types.
//!
//! They hold metadata only: a session record has no token field, so no code path can put a
//! token into sled.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::checks::{CheckOutcome, Verdict};

/// What `status` shows for a shop's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Valid,
    Renewing,
    KeyRejected,
    #[default]
    Unknown,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Renewing => "renewing",
            Self::KeyRejected => "key_rejected",
            Self::Unknown => "unknown",
        }
    }
}

/// Session metadata per shop; never the token itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub state: SessionState,
    pub minted_at: Option<Timestamp>,
    pub expires_at: Option<Timestamp>,
    pub company_id: Option<i64>,
    pub employee_id: Option<i64>,
    /// Why the state is not `valid`, in operator words.
    pub detail: Option<String>,
}

/// The latest outcome of one check of one shop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultRecord {
    pub outcome: CheckOutcome,
    pub checked_at: Timestamp,
    /// When the current verdict began (unchanged verdicts keep the earlier instant).
    pub since: Timestamp,
}

impl ResultRecord {
    /// The record for `outcome`, carrying `since` over from `previous` when the verdict is unchanged.
    pub fn next(previous: Option<&ResultRecord>, outcome: CheckOutcome, now: Timestamp) -> Self {
        let since = match previous {
            Some(p) if p.outcome.verdict == outcome.verdict => p.since,
            _ => now,
        };
        Self {
            outcome,
            checked_at: now,
            since,
        }
    }

    pub fn verdict(&self) -> Verdict {
        self.outcome.verdict
    }
}

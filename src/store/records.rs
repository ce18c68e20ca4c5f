//! The records the store persists, as plain serde types.
//!
//! They hold metadata only: a session record has no token field, so no code path can put a
//! token into sled.
//!
//! They are a schema shared with other releases: every field a record may lack takes its default
//! (`#[serde(default)]`) and unknown fields are ignored, so a record written before or after a
//! field was added still reads. A new field must have a default that means "not known". Since
//! schema 7 a field that holds nothing (`null`, `[]`) is not written at all (`Batch`): it reads
//! back as its default.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::checks::{CheckKind, CheckOutcome, Verdict};

/// What `status` shows for a shop's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum SessionState {
    Valid,
    Renewing,
    KeyRejected,
    /// The daemon deleted the session token when the shop's task stopped (at shutdown, or when
    /// a reload stopped the shop); no expiry is kept, and the next pass mints a new session.
    /// Releases before it read it as `Unknown` (see below), so it needs no migration.
    Revoked,
    /// Also what a state added by a newer release reads as.
    #[default]
    #[serde(other)]
    Unknown,
}

impl SessionState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Valid => "valid",
            Self::Renewing => "renewing",
            Self::KeyRejected => "key_rejected",
            Self::Revoked => "revoked",
            Self::Unknown => "unknown",
        }
    }
}

/// Session metadata per shop; never the token itself.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default)]
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
    /// When the check last ran. Stored in the result only as of its last rewrite; the shop's
    /// cursor holds the newer one (schema 6), and `Store::result` reads that one into it.
    #[serde(default)]
    pub checked_at: Timestamp,
    /// When the current verdict began (unchanged verdicts keep the earlier instant).
    #[serde(default)]
    pub since: Timestamp,
    /// The whole pass failed (it panicked or could not be recorded), not just this check: the
    /// outcome is an `error` naming why. `check` beside the daemon exits 2 on it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_failed: bool,
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
            pass_failed: false,
        }
    }

    /// The record of a pass that failed as a whole: an `error` outcome saying why.
    pub fn pass_failed(
        previous: Option<&ResultRecord>,
        kind: CheckKind,
        reason: &str,
        now: Timestamp,
    ) -> Self {
        let outcome = crate::checks::could_not_run(kind, &format!("the pass failed: {reason}"));
        Self {
            pass_failed: true,
            ..Self::next(previous, outcome, now)
        }
    }

    /// Whether `self` says what `other` does, when each was checked aside: then only the time of
    /// the check needs writing (into the shop's cursor, see `pass::Recording`).
    pub fn same_apart_from_checked_at(&self, other: &Self) -> bool {
        self.outcome == other.outcome
            && self.since == other.since
            && self.pass_failed == other.pass_failed
    }

    pub fn verdict(&self) -> Verdict {
        self.outcome.verdict
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `revoked` reads back; a state from a newer release reads as `unknown`, as `revoked` does
    /// in releases before it (so neither needs a migration).
    #[test]
    fn session_states_read_back_tolerantly() {
        let record = SessionRecord {
            state: SessionState::Revoked,
            ..Default::default()
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains(r#""state":"revoked""#), "{json}");
        assert_eq!(
            serde_json::from_str::<SessionRecord>(&json).unwrap(),
            record
        );
        let newer: SessionRecord = serde_json::from_str(r#"{"state":"paused_by_2030"}"#).unwrap();
        assert_eq!(newer.state, SessionState::Unknown);
    }
}

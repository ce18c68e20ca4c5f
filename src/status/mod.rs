//! What operators see: the `status --json` shape, its views for people (`table`: the default
//! one line per check that fits the terminal, and the full table), the `status` command itself
//! (`show`), and `STATE_DIR/status.json`.
//!
//! The JSON shape is a contract: fields are added, never renamed; reading takes defaults for
//! missing fields and ignores unknown ones, so `status` reads a file another release wrote. One
//! unreadable stored record makes that shop's entry say so; it never stops the report.
//! `status.json` is written atomically (buffered temp file, fsync, rename) so `status` can read it while the daemon holds
//! the database: by `check` after its passes, and by the daemon from its per-shop view
//! (`daemon/view.rs`, built from [`ShopStatus::collect`]). Nothing here ever sees a token.

mod show;
mod table;
#[cfg(test)]
mod tests;

pub use show::{Request, Shown, StatusError, show, stale_after, terminal_width};
pub use table::{Attention, CheckFacts, View};

use std::fs::File;
use std::io::{BufWriter, Write as _};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::checks::{self, CheckKind, Evidence, PerKind, Verdict};
use crate::config::{Config, ShopConfig};
use crate::notify::Backlog;
use crate::store::{ResultRecord, SessionRecord, SessionState, Store, StoreError};

pub const STATUS_FILE: &str = "status.json";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct StatusReport {
    pub generated_at: Timestamp,
    /// "i/n" when this instance handles one shard of the shops (config `shard`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<String>,
    /// Set while the daemon's state store cannot write (one line naming the folder and the fix):
    /// no pass is recorded, and every enabled check shows `error` with that reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_error: Option<String>,
    /// Notifications to the platform (`[notify]`), as the running daemon's outbox stands;
    /// absent while notify is off and nothing is left in the outbox (and in what `check`
    /// writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notify: Option<Backlog>,
    pub shops: Vec<ShopStatus>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct ShopStatus {
    pub name: String,
    pub enabled: bool,
    pub session: SessionStatus,
    pub checks: ChecksStatus,
    /// Tripletex webhooks, as the running daemon sees them; absent while they are off (and in
    /// what a one-shot `check` writes).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub push: Option<PushStatus>,
}

/// Whether a shop's webhook subscriptions are all active (so pushed changes arrive), and when
/// its last callback arrived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct PushStatus {
    pub active: bool,
    pub last_callback_at: Option<Timestamp>,
}

impl ShopStatus {
    /// What the store holds for `shop` (a few reads, whatever the number of shops).
    pub fn collect(store: Option<&Store>, shop: &ShopConfig) -> Result<Self, StoreError> {
        let session = match store.map(|s| s.session(&shop.name)) {
            Some(Err(e @ (StoreError::Corrupt { .. } | StoreError::RecordMalformed { .. }))) => {
                SessionRecord {
                    detail: Some(e.to_string()),
                    ..Default::default()
                }
            }
            Some(read) => read?.unwrap_or_default(),
            None => Default::default(),
        };
        // The checks' times are in the shop's cursor: read it once, not once per check.
        let cursor = store.map(|s| s.cursor(&shop.name)).transpose()?;
        Self::assemble(shop, session, |kind| match (store, &cursor) {
            (Some(store), Some(cursor)) => store.result_with(&shop.name, kind, cursor),
            _ => Ok(None),
        })
    }

    /// What a pass just recorded for `shop`: its session and results as committed, so nothing
    /// is read again; a result the pass did not record (a check it did not run) is read from
    /// `store`.
    pub fn recorded(
        store: &Store,
        shop: &ShopConfig,
        session: SessionRecord,
        mut results: Vec<ResultRecord>,
    ) -> Result<Self, StoreError> {
        Self::assemble(shop, session, |kind| {
            match results.iter().position(|r| r.outcome.kind == kind) {
                Some(i) => Ok(Some(results.swap_remove(i))),
                None => store.result(&shop.name, kind),
            }
        })
    }

    /// `shop`'s status from its session and each enabled check's result as `result` reads it
    /// (an unreadable one shows as such).
    fn assemble(
        shop: &ShopConfig,
        session: SessionRecord,
        mut result: impl FnMut(CheckKind) -> Result<Option<ResultRecord>, StoreError>,
    ) -> Result<Self, StoreError> {
        let mut check = |kind: CheckKind, on: bool| -> Result<CheckStatus, StoreError> {
            if !on {
                return Ok(CheckStatus {
                    verdict: Verdict::Unknown,
                    summary: format!(
                        "disabled (`{}.enabled = false` in {})",
                        kind.as_str(),
                        shop.source.display()
                    ),
                    checked_at: None,
                    since: None,
                    fix: None,
                    evidence: None,
                    disabled: true,
                    pass_failed: false,
                });
            }
            let recorded = match result(kind) {
                Err(e @ (StoreError::Corrupt { .. } | StoreError::RecordMalformed { .. })) => {
                    return Ok(unreadable(kind, &e));
                }
                read => read?,
            };
            Ok(match recorded {
                Some(r) => CheckStatus {
                    verdict: r.outcome.verdict,
                    summary: r.outcome.summary,
                    checked_at: Some(r.checked_at),
                    since: Some(r.since),
                    fix: r.outcome.fix,
                    evidence: Some(r.outcome.evidence),
                    disabled: false,
                    pass_failed: r.pass_failed,
                },
                None => {
                    let o = checks::not_yet_checked(kind);
                    CheckStatus {
                        verdict: o.verdict,
                        summary: o.summary,
                        checked_at: None,
                        since: None,
                        fix: None,
                        evidence: None,
                        disabled: false,
                        pass_failed: false,
                    }
                }
            })
        };
        Ok(Self {
            name: shop.name.clone(),
            enabled: shop.enabled,
            session: SessionStatus::from(&session),
            checks: ChecksStatus::try_from_fn(|kind| check(kind, shop.checks[kind].is_some()))?,
            push: None,
        })
    }

    /// What a shop shows while its passes cannot be recorded (`store_error`): each enabled check
    /// `error` with that reason as of `at` (so `check` beside the daemon sees the failure at
    /// once), `since` when the failure began; the last figures stay as evidence.
    pub fn store_failing(&mut self, store_error: &str, at: Timestamp, since: Timestamp) {
        if !self.enabled {
            return;
        }
        for kind in CheckKind::ALL {
            let c = &mut self.checks[kind];
            if c.disabled {
                continue;
            }
            let o = checks::could_not_run(
                kind,
                &format!("the state store cannot record passes: {store_error}"),
            );
            c.verdict = o.verdict;
            c.summary = o.summary;
            c.fix = None;
            c.checked_at = Some(at);
            c.since = Some(since);
            c.pass_failed = true;
        }
    }

    /// The verdict the shop is counted by: its worst check.
    pub fn worst(&self) -> Verdict {
        CheckKind::ALL
            .map(|k| self.checks.get(k).verdict)
            .into_iter()
            .max()
            .unwrap_or(Verdict::Unknown)
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct SessionStatus {
    pub state: SessionState,
    pub expires_at: Option<Timestamp>,
    pub company_id: Option<i64>,
    /// As recorded; [`SessionStatus::detail`] is what to show.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

/// What `revoked` means, shown for a revoked session that says nothing else: the stop revokes
/// every shop's session at once, so neither its records nor status.json repeat the sentence
/// (README says what `revoked` means).
const REVOKED_DETAIL: &str =
    "session token deleted when this shop's task stopped; the next pass mints a new one";

impl SessionStatus {
    /// Why the state is not `valid`, in operator words, when there is something to say.
    pub fn detail(&self) -> Option<&str> {
        match (&self.detail, self.state) {
            (None, SessionState::Revoked) => Some(REVOKED_DETAIL),
            (detail, _) => detail.as_deref(),
        }
    }
}

impl From<&SessionRecord> for SessionStatus {
    fn from(record: &SessionRecord) -> Self {
        Self {
            state: record.state,
            expires_at: record.expires_at,
            company_id: record.company_id,
            detail: record.detail.clone(),
        }
    }
}

/// `{"customer_numbers": {…}, "invoice_numbers": {…}}`: one entry per check kind, in kind order.
pub type ChecksStatus = PerKind<CheckStatus>;

impl ChecksStatus {
    pub fn get(&self, kind: CheckKind) -> &CheckStatus {
        &self[kind]
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(default)]
pub struct CheckStatus {
    pub verdict: Verdict,
    pub summary: String,
    pub checked_at: Option<Timestamp>,
    /// When the current verdict began.
    #[serde(default)]
    pub since: Option<Timestamp>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<Evidence>,
    /// The shop file turns this check off (`enabled = false`); its verdict stays `unknown`.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// The shop's whole pass failed (panicked, or could not be recorded); the summary says why.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub pass_failed: bool,
}

/// A check whose stored result cannot be read: `error` (nothing vouches for the numbers) until
/// the next pass overwrites it.
fn unreadable(kind: CheckKind, e: &StoreError) -> CheckStatus {
    let o = checks::could_not_run(kind, &format!("{e} (the next pass rewrites it)"));
    CheckStatus {
        verdict: o.verdict,
        summary: o.summary,
        ..Default::default()
    }
}

impl StatusReport {
    /// Reads what the store holds for every configured shop; without a store, nothing is
    /// recorded yet and every shop shows `unknown`.
    pub fn collect(
        store: Option<&Store>,
        config: &Config,
        now: Timestamp,
    ) -> Result<Self, StoreError> {
        let shops = config
            .shops
            .iter()
            .map(|shop| ShopStatus::collect(store, shop))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            generated_at: now,
            shard: config.shard.map(|s| s.to_string()),
            store_error: None,
            notify: None,
            shops,
        })
    }

    /// Lines this report (read from status.json) up with `config`: shops in config order, new
    /// shops as not yet checked (or, while the store fails, as failing), removed shops dropped.
    pub fn aligned_to(self, config: &Config) -> Self {
        let at = self.generated_at;
        let blank = Self::collect(None, config, at).expect("no store, no errors");
        let shops = blank
            .shops
            .into_iter()
            .map(|mut b| match self.shops.iter().find(|s| s.name == b.name) {
                Some(s) => s.clone(),
                None => {
                    if let Some(e) = &self.store_error {
                        b.store_failing(e, at, at);
                    }
                    b
                }
            })
            .collect();
        Self {
            generated_at: at,
            shard: blank.shard,
            store_error: self.store_error,
            notify: self.notify,
            shops,
        }
    }

    pub fn path(state_dir: &Path) -> PathBuf {
        state_dir.join(STATUS_FILE)
    }

    /// Replaces `STATE_DIR/status.json` atomically.
    pub fn write(&self, state_dir: &Path) -> std::io::Result<()> {
        write_atomically(state_dir, |out| {
            serde_json::to_writer_pretty(&mut *out, self)?;
            out.write_all(b"\n")
        })
    }

    /// Overwrites the existing status.json in place with this report, when that needs no new
    /// space: for a full file system, where the atomic write cannot get the space for its temp
    /// file. Not atomic, so only for a report short enough to fit (a reader that catches it
    /// half-written fails to parse it and reads again); false when it did not fit.
    pub fn overwrite_in_place(&self, state_dir: &Path) -> std::io::Result<bool> {
        let text = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .open(Self::path(state_dir))?;
        if file.metadata()?.len() < text.len() as u64 + 1 {
            return Ok(false);
        }
        file.write_all(&text)?;
        file.write_all(b"\n")?;
        file.set_len(text.len() as u64 + 1)?;
        file.sync_all()?;
        Ok(true)
    }

    pub fn read(state_dir: &Path) -> std::io::Result<Self> {
        let text = std::fs::read(Self::path(state_dir))?;
        serde_json::from_slice(&text).map_err(std::io::Error::other)
    }
}

/// The `StatusReport` document from its parts, one shop (already serialised) per line: what the
/// daemon writes to status.json from its view, and what its status page serves.
pub fn write_document<'a>(
    out: &mut impl std::io::Write,
    generated_at: Timestamp,
    shard: Option<&str>,
    store_error: Option<&str>,
    notify: Option<&Backlog>,
    shops: impl IntoIterator<Item = &'a str>,
) -> std::io::Result<()> {
    let head = serde_json::to_string(&generated_at).map_err(std::io::Error::other)?;
    write!(out, "{{\"generated_at\":{head},")?;
    if let Some(shard) = shard {
        let shard = serde_json::to_string(shard).map_err(std::io::Error::other)?;
        write!(out, "\"shard\":{shard},")?;
    }
    if let Some(error) = store_error {
        let error = serde_json::to_string(error).map_err(std::io::Error::other)?;
        write!(out, "\"store_error\":{error},")?;
    }
    if let Some(notify) = notify {
        let notify = serde_json::to_string(notify).map_err(std::io::Error::other)?;
        write!(out, "\"notify\":{notify},")?;
    }
    out.write_all(b"\"shops\":[")?;
    for (i, shop) in shops.into_iter().enumerate() {
        out.write_all(if i == 0 { b"\n" } else { b",\n" })?;
        out.write_all(shop.as_bytes())?;
    }
    out.write_all(b"\n]}\n")
}

/// Replaces `STATE_DIR/status.json` with what `fill` writes: into a buffered temp file, fsynced,
/// then renamed over the old one, so a reader sees the old file or the new one, never a part.
pub(crate) fn write_atomically(
    state_dir: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = StatusReport::path(state_dir);
    let tmp = state_dir.join(format!(".{STATUS_FILE}.tmp"));
    // Group-readable, so operators in the service's group can run `status` (UMask=0077).
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    let written = (|| {
        // serde_json writes a few bytes at a time: unbuffered, that is one syscall per token.
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        fill(&mut out)?;
        let file = out.into_inner().map_err(|e| e.into_error())?;
        file.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        // A half-written temp file would hold space a full file system needs back.
        let _ = std::fs::remove_file(&tmp);
    }
    written?;
    if let Ok(dir) = File::open(state_dir) {
        // Best effort: the rename is already visible; this makes it durable too.
        let _ = dir.sync_all();
    }
    Ok(())
}

const WRITE_BUFFER: usize = 256 * 1024;

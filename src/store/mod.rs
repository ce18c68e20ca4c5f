//! The sled database in `state_dir`: session metadata, latest results, result history, mirrors.
//!
//! Invariants: one process holds the database at a time, enforced by an OS file lock taken before
//! sled opens (a second opener fails at once with [`StoreError::Locked`], never hangs); anything a
//! caller reports as recorded has been flushed ([`Store::commit`] and the `put_*` calls flush before
//! returning); keys are `kind/shop/...` with shop names that cannot contain `/`; values are JSON so
//! an operator can inspect them. The store knows keys and bytes, not HTTP.

mod group;
mod mirror;
mod records;

use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::Serialize;
use serde::de::DeserializeOwned;

pub use mirror::{CustomerEntry, InvoiceEntry, SyncCursor};
pub use records::{ResultRecord, SessionRecord, SessionState};

use crate::checks::{CheckKind, HistoryPoint};

/// Bumped when a key or value layout changes incompatibly.
pub const SCHEMA_VERSION: u32 = 1;
/// sled's default cache is 1 GiB; a few MiB hold every shop's hot keys.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
const LOCK_FILE: &str = "tripletex-sync.lock";
const DB_DIR: &str = "db";

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another tripletex-sync is running on {} ({holder})", state_dir.display())]
    Locked { state_dir: PathBuf, holder: String },
    #[error("{} belongs to uid {owner}, not to this user (fix: run as the service user, e.g. `sudo -u tripletex-sync tripletex-sync …`)", state_dir.display())]
    NotOwner { state_dir: PathBuf, owner: u32 },
    #[error("cannot use state_dir {}: {source} (fix: create it and make it writable by the service user)", path.display())]
    StateDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("database in {} has schema {found}, this build uses {SCHEMA_VERSION} (fix: use a matching tripletex-sync, or move the db folder away to start afresh)", path.display())]
    Schema { path: PathBuf, found: u32 },
    #[error("sled: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored value under {key} is unreadable: {source}")]
    Corrupt {
        key: String,
        source: serde_json::Error,
    },
}

/// Who holds the lock, written into the lock file so `check` and `status` can find the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Daemon,
    OneShot,
}

pub struct Store {
    db: sled::Db,
    group: group::FlushGroup,
    state_dir: PathBuf,
    // Held for the life of the store: dropping it releases the lock.
    _lock: File,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store")
            .field("state_dir", &self.state_dir)
            .finish()
    }
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir`, failing at once if another process
    /// holds it.
    pub fn open(state_dir: &Path, role: Role) -> Result<Self, StoreError> {
        let io = |source| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            source,
        };
        std::fs::create_dir_all(state_dir).map_err(io)?;
        if let Some(owner) = foreign_owner(state_dir).map_err(io)? {
            return Err(StoreError::NotOwner {
                state_dir: state_dir.to_path_buf(),
                owner,
            });
        }
        let lock_path = state_dir.join(LOCK_FILE);
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock_path)
            .map_err(io)?;
        if let Err(e) = lock.try_lock() {
            return match e {
                std::fs::TryLockError::WouldBlock => Err(StoreError::Locked {
                    state_dir: state_dir.to_path_buf(),
                    holder: read_holder(state_dir).map_or_else(
                        || "holder unknown".to_owned(),
                        |(role, pid)| format!("{} pid {pid}", role_name(role)),
                    ),
                }),
                std::fs::TryLockError::Error(e) => Err(io(e)),
            };
        }
        lock.set_len(0).map_err(io)?;
        writeln!(lock, "{} {}", role_name(role), std::process::id()).map_err(io)?;

        let db = sled::Config::new()
            .path(state_dir.join(DB_DIR))
            .cache_capacity(CACHE_BYTES)
            .open()?;
        let store = Self {
            db,
            group: group::FlushGroup::new(),
            state_dir: state_dir.to_path_buf(),
            _lock: lock,
        };
        store.check_schema()?;
        Ok(store)
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    fn check_schema(&self) -> Result<(), StoreError> {
        const KEY: &[u8] = b"meta/schema_version";
        match self.db.get(KEY)? {
            None => {
                self.db.insert(KEY, &SCHEMA_VERSION.to_be_bytes())?;
                self.db.flush()?;
                Ok(())
            }
            Some(v) => {
                let found = v
                    .as_ref()
                    .try_into()
                    .map(u32::from_be_bytes)
                    .unwrap_or(u32::MAX);
                if found == SCHEMA_VERSION {
                    Ok(())
                } else {
                    Err(StoreError::Schema {
                        path: self.state_dir.join(DB_DIR),
                        found,
                    })
                }
            }
        }
    }

    pub fn session(&self, shop: &str) -> Result<Option<SessionRecord>, StoreError> {
        self.get_json(&session_key(shop))
    }

    pub fn result(&self, shop: &str, kind: CheckKind) -> Result<Option<ResultRecord>, StoreError> {
        self.get_json(&result_key(shop, kind))
    }

    /// The recorded history of one check, oldest first.
    pub fn history(&self, shop: &str, kind: CheckKind) -> Result<Vec<HistoryPoint>, StoreError> {
        let prefix = history_prefix(shop, kind);
        self.db
            .scan_prefix(prefix.as_bytes())
            .map(|kv| {
                let (k, v) = kv?;
                decode(&k, &v)
            })
            .collect()
    }

    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Applies `batch` atomically and flushes; only then is anything in it "recorded". Commits
    /// of many shops at once share flushes (see `group.rs`).
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.db.apply_batch(batch.inner)?;
        let ticket = self.group.ticket();
        self.group.flushed(ticket, &self.db).await
    }

    /// Removes history of `shop`/`kind` older than `cutoff` (into `batch`).
    pub fn prune_history(
        &self,
        batch: &mut Batch,
        shop: &str,
        kind: CheckKind,
        cutoff: Timestamp,
    ) -> Result<(), StoreError> {
        let prefix = history_prefix(shop, kind);
        let end = history_key(shop, kind, cutoff);
        for kv in self.db.range(prefix.as_bytes().to_vec()..end) {
            let (k, _) = kv?;
            batch.inner.remove(k);
        }
        Ok(())
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.db
            .get(key.as_bytes())?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }
}

/// Writes to apply together; see [`Store::commit`].
#[derive(Default)]
pub struct Batch {
    inner: sled::Batch,
}

impl Batch {
    pub fn put_session(&mut self, shop: &str, record: &SessionRecord) {
        self.put_json(session_key(shop).into_bytes(), record);
    }

    pub fn put_result(&mut self, shop: &str, kind: CheckKind, record: &ResultRecord) {
        self.put_json(result_key(shop, kind).into_bytes(), record);
    }

    pub fn push_history(&mut self, shop: &str, kind: CheckKind, point: &HistoryPoint) {
        self.put_json(history_key(shop, kind, point.at), point);
    }

    fn put_json(&mut self, key: Vec<u8>, value: &impl Serialize) {
        let bytes = serde_json::to_vec(value).expect("records serialize");
        self.inner.insert(key, bytes);
    }
}

/// The owner of `state_dir` when that is not us. Files another user (typically root) created in
/// the database would lock the service user out of it, so only the owner may open it.
fn foreign_owner(state_dir: &Path) -> std::io::Result<Option<u32>> {
    use std::os::unix::fs::MetadataExt as _;
    let owner = std::fs::metadata(state_dir)?.uid();
    // SAFETY: geteuid(2) has no preconditions and cannot fail.
    let me = unsafe { libc::geteuid() };
    Ok((owner != me).then_some(owner))
}

fn session_key(shop: &str) -> String {
    format!("session/{shop}")
}

fn result_key(shop: &str, kind: CheckKind) -> String {
    format!("result/{shop}/{}", kind.as_str())
}

fn history_prefix(shop: &str, kind: CheckKind) -> String {
    format!("history/{shop}/{}/", kind.as_str())
}

/// Big-endian milliseconds after the prefix, so keys sort by time.
fn history_key(shop: &str, kind: CheckKind, at: Timestamp) -> Vec<u8> {
    let mut key = history_prefix(shop, kind).into_bytes();
    let millis = u64::try_from(at.as_millisecond()).unwrap_or(0);
    key.extend_from_slice(&millis.to_be_bytes());
    key
}

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|source| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        source,
    })
}

fn role_name(role: Role) -> &'static str {
    match role {
        Role::Daemon => "daemon",
        Role::OneShot => "one-shot",
    }
}

/// The role and pid recorded in the lock file by whoever holds it.
pub fn read_holder(state_dir: &Path) -> Option<(Role, u32)> {
    let text = std::fs::read_to_string(state_dir.join(LOCK_FILE)).ok()?;
    let (role, pid) = text.trim().split_once(' ')?;
    let role = match role {
        "daemon" => Role::Daemon,
        "one-shot" => Role::OneShot,
        _ => return None,
    };
    Some((role, pid.parse().ok()?))
}

#[cfg(test)]
mod tests;

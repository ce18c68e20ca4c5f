//! The sled database in `state_dir`: session metadata, latest results, result history, mirrors.
//!
//! Invariants: one process holds the database at a time, enforced by an OS file lock taken before
//! sled opens (a second opener fails at once with [`StoreError::Locked`], never hangs); anything a
//! caller reports as recorded has been flushed (the `put_*` calls only add to a [`Batch`];
//! [`Store::commit`] applies it atomically and flushes before returning); each shop's records are
//! under `shop/{name}/` (see `keys`: one pass touches one or two sled leaves) and packed binary,
//! since every pass reads them (`mirror_value`, `history_value`, `cursor_value`, `result_value`,
//! `session_value`; `status --json` shows what they hold); the outbox's messages are JSON, as the
//! platform is sent them. The store knows keys and bytes, not HTTP.
//!
//! Files are private whatever the umask: `state_dir` at most 0750 (its group may read
//! status.json, see docs/operating.md), `db/` 0700, the database files and the lock 0600. Opening narrows
//! the process umask to 077 because sled creates files (snapshots) long after opening.
//! A record that cannot be rebuilt (session, result) that fails to read is reported
//! ([`StoreError::Corrupt`]); one whose loss only costs work (a cursor: full resync; a history:
//! the forecast starts again) is skipped with a `store.corrupt` warning.
//!
//! A check's time is in the shop's sync cursor (`cursor`, since schema 6; see `mirror`) beside
//! its result (`result/{kind}`, outcome and evidence), so a pass whose outcome did not change
//! rewrites one small record, the cursor it moves anyway, and not the result; [`Store::result`]
//! joins the two (every recording writes both; a result without a time elsewhere keeps its own).
//! Schemas 3 to 5 kept the time as a record of its own
//! (`result/{kind}/checked`): it is read while the cursor has no time for the kind, and removed
//! by the kind's next check ([`Batch::remove_old_checked`]).

mod batch;
mod cursor_value;
mod error;
mod group;
mod health;
mod history_value;
mod keys;
mod mirror;
mod mirror_value;
mod outbox;
mod packed;
mod records;
mod repack;
mod result_value;
mod schema;
mod session_value;

use std::fs::File;
use std::io::Write as _;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use serde::de::DeserializeOwned;

pub use batch::Batch;
pub use error::StoreError;
use error::sled_at;
pub use mirror::{KindCursor, SyncCursor};
pub use outbox::{DEAD_KEPT, DeadRecord, OutboxRecord, Pending};
pub use packed::Malformed;
pub use records::{ResultRecord, SessionRecord, SessionState};
pub use schema::SCHEMA_VERSION;

use crate::checks::{CheckKind, HistoryPoint};

/// sled's default cache is 1 GiB; a few MiB hold every shop's hot keys.
const CACHE_BYTES: u64 = 4 * 1024 * 1024;
const LOCK_FILE: &str = "tripletex-sync.lock";
const DB_DIR: &str = "db";

/// Who holds the lock, written into the lock file so `check` and `status` can find the daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Daemon,
    OneShot,
}

pub struct Store {
    db: sled::Db,
    group: group::FlushGroup,
    /// Whether a write broke `db` (see `health`). Boxed: `Store` is moved around by value
    /// (`check` opening it) and this is its biggest part.
    health: Box<health::Health>,
    /// The outbox's counts and the delivery task's wake-up.
    outbox: outbox::Counts,
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

/// Opens sled, waiting up to a second while its own file lock is still held. We hold the OS lock,
/// so no other tripletex-sync has the database: a held sled lock can only be this process's
/// previous handle, whose I/O threads let go of it a moment after the handle is dropped.
fn open_sled(db_dir: &Path) -> sled::Result<sled::Db> {
    let open = || {
        sled::Config::new()
            .path(db_dir)
            .cache_capacity(CACHE_BYTES)
            .open()
    };
    for _ in 0..50 {
        match open() {
            Err(sled::Error::Io(e)) if e.to_string().contains("could not acquire lock") => {
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
            other => return other,
        }
    }
    open()
}

impl Store {
    /// Opens (creating if needed) the database in `state_dir`, failing at once if another process
    /// holds it.
    pub fn open(state_dir: &Path, role: Role) -> Result<Self, StoreError> {
        Self::open_migrating(state_dir, role, &mut |_| {})
    }

    /// [`Store::open`], calling `progress` with the keys moved so far after each batch of a
    /// migration that moves keys (see `schema`; the store logs `store.migrating` itself): at
    /// 100 000 shops the move to schema 5 takes about a minute, and the daemon tells systemd it
    /// is still starting.
    pub fn open_migrating(
        state_dir: &Path,
        role: Role,
        progress: &mut dyn FnMut(usize),
    ) -> Result<Self, StoreError> {
        let io = |cause| StoreError::StateDir {
            path: state_dir.to_path_buf(),
            cause,
        };
        // SAFETY: umask(2) cannot fail; OR-ing only ever makes new files more private.
        unsafe {
            let old = libc::umask(0o077);
            libc::umask(old | 0o077);
        }
        let fresh = !state_dir.exists();
        std::fs::DirBuilder::new()
            .recursive(true)
            .create(state_dir)
            .map_err(io)?;
        if fresh {
            // Not through the umask: the service's group reads status.json in it (docs/operating.md).
            std::fs::set_permissions(state_dir, std::fs::Permissions::from_mode(0o750))
                .map_err(io)?;
        }
        if let Some(owner) = foreign_owner(state_dir).map_err(io)? {
            return Err(StoreError::NotOwner {
                state_dir: state_dir.to_path_buf(),
                owner,
            });
        }
        narrow_mode(state_dir, 0o750).map_err(io)?;
        let lock_path = state_dir.join(LOCK_FILE);
        let lock_io = |cause| StoreError::StateDir {
            path: lock_path.clone(),
            cause,
        };
        let mut lock = File::options()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&lock_path)
            .map_err(lock_io)?;
        narrow_mode(&lock_path, 0o600).map_err(lock_io)?;
        if let Err(e) = lock.try_lock() {
            return match e {
                std::fs::TryLockError::WouldBlock => Err(StoreError::Locked {
                    state_dir: state_dir.to_path_buf(),
                    holder: read_holder(state_dir).map_or_else(
                        || "holder unknown".to_owned(),
                        |(role, pid)| format!("{} pid {pid}", role_name(role)),
                    ),
                }),
                std::fs::TryLockError::Error(e) => Err(lock_io(e)),
            };
        }
        lock.set_len(0).map_err(lock_io)?;
        writeln!(lock, "{} {}", role_name(role), std::process::id()).map_err(lock_io)?;

        let db_dir = state_dir.join(DB_DIR);
        let db_io = |cause| StoreError::StateDir {
            path: db_dir.clone(),
            cause,
        };
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&db_dir)
            .or_else(|e| match e.kind() {
                std::io::ErrorKind::AlreadyExists => Ok(()),
                _ => Err(e),
            })
            .map_err(db_io)?;
        let db = open_sled(&db_dir).map_err(sled_at(&db_dir))?;
        // Databases written before files were made private (or under another umask).
        make_private(&db_dir).map_err(db_io)?;
        schema::migrate(&db, &db_dir, progress)?;
        let outbox = outbox::Counts::count(&db).map_err(sled_at(&db_dir))?;
        Ok(Self {
            db,
            group: group::FlushGroup::new(),
            health: Box::new(health::Health::new(db_dir)),
            outbox,
            state_dir: state_dir.to_path_buf(),
            _lock: lock,
        })
    }

    /// While writes fail (see `health`): the error, one line naming the database folder and
    /// the fix. Each call counts as one refused write or pass in the rate-limited
    /// `store.failing` line, so call it only for work that is refused.
    pub fn refuse(&self) -> Option<StoreError> {
        self.health.refuse().map(self.sled())
    }

    /// Whether writes fail, and why (one line naming the folder and the fix). Once they do, they
    /// do until the process ends: sled's handle cannot be trusted again (see `health`).
    pub fn failing(&self) -> Option<String> {
        self.health.error().map(|e| self.health.describe(&e))
    }

    /// Changes when the store breaks; see [`Store::failing`].
    pub fn watch_health(&self) -> tokio::sync::watch::Receiver<Option<sled::Error>> {
        self.health.watch()
    }

    /// Whether the database's file system has room again (at least [`ROOM`] free): what a
    /// restart needs to open the database and write.
    pub fn has_room(&self) -> Result<(), StoreError> {
        let db_dir = self.state_dir.join(DB_DIR);
        room_to_write(&db_dir).map_err(|cause| StoreError::StateDir {
            path: db_dir,
            cause,
        })
    }

    pub fn state_dir(&self) -> &Path {
        &self.state_dir
    }

    /// Names the database folder in a sled error.
    fn sled(&self) -> impl Fn(sled::Error) -> StoreError + use<> {
        sled_at(&self.state_dir.join(DB_DIR))
    }

    pub fn session(&self, shop: &str) -> Result<Option<SessionRecord>, StoreError> {
        let key = keys::session(shop);
        let Some(value) = self.db.get(key.as_bytes()).map_err(self.sled())? else {
            return Ok(None);
        };
        let record = if value.first() == Some(&session_value::PACKED) {
            session_value::unpack(&value).map_err(|why| StoreError::RecordMalformed { key, why })?
        } else {
            decode(key.as_bytes(), &value)?
        };
        Ok(Some(record))
    }

    pub fn result(&self, shop: &str, kind: CheckKind) -> Result<Option<ResultRecord>, StoreError> {
        self.result_with(shop, kind, &self.cursor(shop)?)
    }

    /// [`Store::result`] for a caller that holds the shop's stored `cursor` already.
    pub fn result_with(
        &self,
        shop: &str,
        kind: CheckKind,
        cursor: &SyncCursor,
    ) -> Result<Option<ResultRecord>, StoreError> {
        let key = keys::result(shop, kind);
        let Some(value) = self.db.get(key.as_bytes()).map_err(self.sled())? else {
            return Ok(None);
        };
        let mut record = if value.first() == Some(&result_value::PACKED) {
            result_value::unpack(&value, kind)
                .map_err(|why| StoreError::RecordMalformed { key, why })?
        } else {
            decode(key.as_bytes(), &value)?
        };
        let checked = match cursor.of(kind).checked {
            Some(at) => Some(at),
            // Losing the time costs only its precision: the result's own is when it was written.
            None => match self.get_json::<Timestamp>(&keys::checked(shop, kind)) {
                Ok(at) => at,
                Err(e @ StoreError::Corrupt { .. }) => {
                    skip_corrupt(&e);
                    None
                }
                Err(e) => return Err(e),
            },
        };
        if let Some(at) = checked {
            record.checked_at = at;
        }
        Ok(Some(record))
    }

    /// The recorded history of one check, oldest first. A value that cannot be read is logged
    /// (`store.corrupt`) and read as no history: the forecast starts again, and the check's next
    /// point replaces it.
    pub fn history(&self, shop: &str, kind: CheckKind) -> Result<Vec<HistoryPoint>, StoreError> {
        let key = keys::history(shop, kind);
        let Some(value) = self.db.get(key.as_bytes()).map_err(self.sled())? else {
            return Ok(Vec::new());
        };
        Ok(history_value::unpack(&value).unwrap_or_else(|why| {
            skip_corrupt(&StoreError::HistoryMalformed { key, why });
            Vec::new()
        }))
    }

    /// The newest `at_most` points of one check's recorded history, oldest first: what a view
    /// that keeps only a few needs.
    pub fn recent_history(
        &self,
        shop: &str,
        kind: CheckKind,
        at_most: usize,
    ) -> Result<Vec<HistoryPoint>, StoreError> {
        let mut points = self.history(shop, kind)?;
        points.drain(..points.len().saturating_sub(at_most));
        Ok(points)
    }

    pub fn batch(&self) -> Batch {
        Batch::default()
    }

    /// Applies `batch` atomically and flushes; only then is anything in it "recorded". Commits
    /// of many shops at once share flushes (see `group.rs`).
    /// While the store is failing, refused at once (see `health`); a sled I/O error marks it
    /// failing. Batches and flushes never run beside each other, and flushes run on the blocking
    /// pool (see `group.rs`): a write error cannot wedge the async workers.
    pub async fn commit(&self, batch: Batch) -> Result<(), StoreError> {
        self.commit_as(batch, Applied::Together).await
    }

    /// Applies each write of `batch` on its own (each atomic, not all together) and flushes,
    /// for writes that need no atomicity between them: many shops' records at once (a stop's
    /// `revoked` sessions). Cheaper in memory than [`Store::commit`] (see `group.rs`).
    pub async fn commit_each(&self, batch: Batch) -> Result<(), StoreError> {
        self.commit_as(batch, Applied::EachAlone).await
    }

    async fn commit_as(&self, batch: Batch, applied: Applied) -> Result<(), StoreError> {
        if let Some(e) = self.refuse() {
            return Err(e);
        }
        let written = async {
            let ticket = match applied {
                Applied::Together => self.group.apply(&self.db, batch.inner).await?,
                Applied::EachAlone => self.group.apply_each(&self.db, batch.inner).await?,
            };
            self.group.flushed(ticket, &self.db).await
        };
        written.await.map_err(|e| {
            self.health.failed(&e);
            self.sled()(e)
        })?;
        self.outbox.committed(&batch.outbox);
        Ok(())
    }

    fn get_json<T: DeserializeOwned>(&self, key: &str) -> Result<Option<T>, StoreError> {
        self.db
            .get(key.as_bytes())
            .map_err(self.sled())?
            .map(|v| decode(key.as_bytes(), &v))
            .transpose()
    }
}

/// How a commit applies its batch's writes.
#[derive(Clone, Copy)]
enum Applied {
    Together,
    EachAlone,
}

/// Free space a restart needs: a few of sled's 512 KiB segments, so that a file system with
/// only crumbs free is not reopened only to fail at once again.
const ROOM: u64 = 4 * 1024 * 1024;

/// Fails with `StorageFull` while the file system of `dir` has less than [`ROOM`] free.
fn room_to_write(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: `path` is NUL-terminated and `stat` a plain struct statvfs(3) fills in.
    let free = unsafe {
        let mut stat: libc::statvfs = std::mem::zeroed();
        if libc::statvfs(path.as_ptr(), &mut stat) != 0 {
            return Err(std::io::Error::last_os_error());
        }
        stat.f_bavail.saturating_mul(stat.f_frsize)
    };
    if free < ROOM {
        return Err(std::io::Error::from(std::io::ErrorKind::StorageFull));
    }
    Ok(())
}

/// Drops the permission bits of `path` outside `allowed` (never widens).
fn narrow_mode(path: &Path, allowed: u32) -> std::io::Result<()> {
    let mode = std::fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & !allowed != 0 {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode & allowed))?;
    }
    Ok(())
}

/// `dir` and the folders in it 0700, its files 0600 (sled nests at most one level: `blobs/`).
fn make_private(dir: &Path) -> std::io::Result<()> {
    narrow_mode(dir, 0o700)?;
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let kind = entry.file_type()?;
        if kind.is_dir() {
            make_private(&entry.path())?;
        } else if kind.is_file() {
            narrow_mode(&entry.path(), 0o600)?;
        }
    }
    Ok(())
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

fn decode<T: DeserializeOwned>(key: &[u8], value: &[u8]) -> Result<T, StoreError> {
    serde_json::from_slice(value).map_err(|cause| StoreError::Corrupt {
        key: String::from_utf8_lossy(key).into_owned(),
        cause,
    })
}

/// Logs a record that is dropped because it cannot be read (see the module doc).
fn skip_corrupt(e: &StoreError) {
    tracing::warn!(event = "store.corrupt", error = %e, "unreadable record skipped");
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
mod error_tests;
#[cfg(test)]
mod full_disk_tests;
#[cfg(test)]
mod mirror_tests;
#[cfg(test)]
mod tests;

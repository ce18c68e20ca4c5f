//! The live sled handle, and what happens when a write breaks it.
//!
//! Why a handle can break for good: sled 0.34 keeps the first error of any log write (an iobuf
//! that cannot be written or fsynced, a segment it cannot allocate) in its `global_error`
//! (`Config::set_global_error`, `pagecache/iobuf.rs`, `logger.rs`), and from then on every
//! reservation (`Log::reserve`) and every flush (`iobuf::make_stable`) of that handle fails with
//! it. Nothing but opening the database anew clears it (`PageCache::start` calls
//! `reset_global_error`), so freeing space leaves the old handle failing. A failed blob write
//! (a big mirror) does not set it, but leaves its io buffer with a writer that never leaves, so
//! that handle's later flushes wait forever. sled never reports a flush error it recovers from:
//! every I/O error of a write or flush is one of these.
//!
//! Invariants: the first sled I/O error of a commit marks the store failing, logged once
//! (`store.broken`, ERROR, naming the database folder and the fix); while it fails, commits and
//! passes are refused at once without touching sled, and refusals and failed reopens are counted
//! and logged at most once per [`REPEAT_LOG`] (`store.failing`, with the counts); reads keep
//! being answered by the broken handle (sled serves them from its cache and files) until a
//! reopen drops it. Each handle has its own flush group, so a commit applied to a broken handle
//! is never reported flushed by the next handle's flush.

use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use super::group::FlushGroup;

/// How often a failure that goes on is logged again, with what it cost since.
pub(super) const REPEAT_LOG: Duration = Duration::from_secs(60);

/// One opened database: the sled handle and the group commits share flushes in.
#[derive(Clone)]
pub(super) struct Live {
    pub db: sled::Db,
    pub group: Arc<FlushGroup>,
}

impl Live {
    pub fn new(db: sled::Db) -> Self {
        Self {
            db,
            group: Arc::new(FlushGroup::new()),
        }
    }
}

pub(super) struct Handle {
    /// `None` between dropping a broken handle and opening the next.
    live: RwLock<Option<Live>>,
    /// The error that broke the handle, while it is broken; also what `Store::health` watches.
    broken: watch::Sender<Option<sled::Error>>,
    repeats: Mutex<Repeats>,
    /// The database folder, named in every log line.
    path: PathBuf,
}

/// What a failure cost since it was last logged.
#[derive(Default)]
struct Repeats {
    refused: u64,
    reopen_failed: u64,
    last_error: Option<String>,
    logged: Option<Instant>,
}

impl Handle {
    pub fn new(db: sled::Db, path: PathBuf) -> Self {
        Self {
            live: RwLock::new(Some(Live::new(db))),
            broken: watch::Sender::new(None),
            repeats: Mutex::default(),
            path,
        }
    }

    /// The handle to use now; while there is none (a reopen failed), the error that broke it.
    pub fn current(&self) -> sled::Result<Live> {
        match &*self.live.read().unwrap_or_else(|e| e.into_inner()) {
            Some(live) => Ok(live.clone()),
            None => Err(self.error().unwrap_or_else(closed)),
        }
    }

    /// A read of one key (also what `mirror` reads through).
    pub fn get(&self, key: impl AsRef<[u8]>) -> sled::Result<Option<sled::IVec>> {
        self.current()?.db.get(key)
    }

    pub fn error(&self) -> Option<sled::Error> {
        self.broken.borrow().clone()
    }

    pub fn watch(&self) -> watch::Receiver<Option<sled::Error>> {
        self.broken.subscribe()
    }

    /// A commit met `cause`: an I/O error marks the handle broken (logged once).
    pub fn failed(&self, cause: &sled::Error) {
        if !matches!(cause, sled::Error::Io(_)) {
            return;
        }
        let first = self.broken.send_if_modified(|broken| {
            let first = broken.is_none();
            broken.get_or_insert_with(|| cause.clone());
            first
        });
        if first {
            *self.repeats() = Repeats {
                logged: Some(Instant::now()),
                ..Repeats::default()
            };
            tracing::error!(
                event = "store.broken",
                path = %self.path.display(),
                error = %self.describe(cause),
                "the state store cannot write: passes are not recorded, status shows error and /healthz 503 until it is reopened (retried with backoff, no restart needed)"
            );
        }
    }

    /// While broken: counts one refused write or pass, and says why.
    pub fn refuse(&self) -> Option<sled::Error> {
        let error = self.error()?;
        self.repeats().refused += 1;
        self.log_repeats(None);
        Some(error)
    }

    /// A reopen that failed with `error` (one line).
    pub fn reopen_failed(&self, error: String) {
        self.repeats().reopen_failed += 1;
        self.log_repeats(Some(error));
    }

    /// Takes the broken handle out, so that it can be dropped before the folder is opened again.
    pub fn take(&self) -> Option<Live> {
        self.live.write().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Puts a freshly opened handle in place; the store writes again.
    pub fn install(&self, live: Live) {
        *self.live.write().unwrap_or_else(|e| e.into_inner()) = Some(live);
        self.broken.send_replace(None);
        let repeats = std::mem::take(&mut *self.repeats());
        tracing::info!(
            event = "store.recovered",
            path = %self.path.display(),
            refused = repeats.refused,
            "the state store writes again (reopened without a restart)"
        );
    }

    /// Logs `store.failing` if the last log of this failure is [`REPEAT_LOG`] old.
    fn log_repeats(&self, latest: Option<String>) {
        let mut r = self.repeats();
        if latest.is_some() {
            r.last_error = latest;
        }
        if r.logged.is_some_and(|at| at.elapsed() < REPEAT_LOG) {
            return;
        }
        let Some(cause) = self.error() else {
            return;
        };
        let repeats = std::mem::replace(
            &mut *r,
            Repeats {
                logged: Some(Instant::now()),
                ..Repeats::default()
            },
        );
        drop(r);
        tracing::error!(
            event = "store.failing",
            path = %self.path.display(),
            error = %self.describe(&cause),
            reopen_error = repeats.last_error.as_deref().unwrap_or("none yet"),
            refused = repeats.refused,
            reopen_failed = repeats.reopen_failed,
            "the state store still cannot write (counts since the last such line)"
        );
    }

    /// The one line an operator reads: the folder, the cause and the fix.
    pub fn describe(&self, cause: &sled::Error) -> String {
        super::sled_at(&self.path)(cause.clone()).to_string()
    }

    fn repeats(&self) -> std::sync::MutexGuard<'_, Repeats> {
        // Only counters: a panic while holding them leaves them usable.
        self.repeats.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// What a handle-less store answers when, oddly, nothing is recorded as having broken it.
fn closed() -> sled::Error {
    sled::Error::Io(std::io::Error::other("the database is being reopened"))
}

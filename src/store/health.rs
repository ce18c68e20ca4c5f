//! Whether the store can write, and what happens when a write breaks sled's handle.
//!
//! Why a handle breaks for good (sled 0.34): the first error of any log write (an io buffer
//! that cannot be written or fsynced, a segment it cannot allocate) is kept in the handle's
//! `global_error` (`Config::set_global_error` in `pagecache/iobuf.rs` and `logger.rs`), and from
//! then on every reservation (`Log::reserve`) and every flush (`iobuf::make_stable`) of that
//! handle fails with it; only opening the database anew clears it (`PageCache::start` calls
//! `reset_global_error`). Freeing space leaves the handle failing. sled never reports a flush
//! error it recovers from: every I/O error of a write or a flush is this one. Worse, an error met
//! by the write spawned from `Log::exit_reservation` sets `global_error` without waking a flush
//! that waits for that buffer (`make_stable` waits on `interval_updated` without a timeout), and
//! that flush holds sled's process-wide `concurrency_control` read lock, which every
//! `apply_batch` of every handle in the process needs exclusively: a handle opened anew in the
//! same process can be wedged by the old one. So the store is not reopened in-process: the
//! daemon exits for systemd to restart it once there is room again (see `daemon/recover.rs`).
//!
//! Invariants: the first sled I/O error of a commit marks the store failing, logged once
//! (`store.broken`, ERROR, naming the database folder and the fix); while it fails, commits and
//! passes are refused at once without touching sled, and the refusals are counted and logged at
//! most once per [`REPEAT_LOG`] (`store.failing`, with the count); it never goes back to healthy
//! (that takes a new process).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

/// How often a failure that goes on is logged again, with what it cost since.
pub(super) const REPEAT_LOG: Duration = Duration::from_secs(60);

pub(super) struct Health {
    /// The error that broke the handle, once it is broken.
    broken: watch::Sender<Option<sled::Error>>,
    repeats: Mutex<Repeats>,
    /// The database folder, named in every log line.
    path: PathBuf,
}

/// What the failure cost since it was last logged.
#[derive(Default)]
struct Repeats {
    refused: u64,
    logged: Option<Instant>,
}

impl Health {
    pub fn new(path: PathBuf) -> Self {
        Self {
            broken: watch::Sender::new(None),
            repeats: Mutex::default(),
            path,
        }
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
        // Held across the change, so that a refusal right after it sees `logged` set and does
        // not log `store.failing` before `store.broken`.
        let mut repeats = self.repeats();
        let first = self.broken.send_if_modified(|broken| {
            let first = broken.is_none();
            broken.get_or_insert_with(|| cause.clone());
            first
        });
        if first {
            repeats.logged = Some(Instant::now());
            drop(repeats);
            tracing::error!(
                event = "store.broken",
                path = %self.path.display(),
                error = %self.describe(cause),
                "the state store cannot write: passes are not recorded, status shows error and /healthz 503; once the file system has room again tripletex-sync exits (code 75) for systemd to restart it"
            );
        }
    }

    /// While broken: counts one refused write or pass, and says why.
    pub fn refuse(&self) -> Option<sled::Error> {
        let error = self.error()?;
        let mut r = self.repeats();
        r.refused += 1;
        if r.logged.is_some_and(|at| at.elapsed() < REPEAT_LOG) {
            return Some(error);
        }
        let refused = std::mem::take(&mut r.refused);
        r.logged = Some(Instant::now());
        drop(r);
        tracing::error!(
            event = "store.failing",
            path = %self.path.display(),
            error = %self.describe(&error),
            refused,
            "the state store still cannot write (refused: passes and writes since the last such line)"
        );
        Some(error)
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

//! The store's errors: each one line naming the file or folder and the fix, with its cause once.
//!
//! Invariants: no variant has a `source()`, so an error chain (`{:#}`, `one_line`) never repeats
//! the cause; sled's I/O errors print in the OS's words, however many times sled cloned them.

use std::path::{Path, PathBuf};

use super::SCHEMA_VERSION;

/// Every variant prints as one line naming the file and the fix, with its cause in that line;
/// none has a `source()`, so an error chain (`{:#}`, `one_line`) never repeats the cause.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("another tripletex-sync is running on {} ({holder})", state_dir.display())]
    Locked { state_dir: PathBuf, holder: String },
    #[error("{} belongs to uid {owner}, not to this user (fix: run as the service user, e.g. `sudo -u tripletex-sync tripletex-sync …`)", state_dir.display())]
    NotOwner { state_dir: PathBuf, owner: u32 },
    /// `path` is the file or folder in state_dir that could not be used.
    #[error("cannot use {}: {cause} (fix: {})", path.display(), io_fix(cause.kind()))]
    StateDir {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("database in {} has schema {found}, newer than this build's {SCHEMA_VERSION}: it was written by a newer tripletex-sync (fix: run that release or newer; this one leaves the database untouched)", path.display())]
    Schema { path: PathBuf, found: u32 },
    /// `path` is the database folder.
    #[error("database {}: {} (fix: {})", path.display(), sled_cause(cause), sled_fix(cause))]
    Sled { path: PathBuf, cause: sled::Error },
    #[error("stored value under {key} is unreadable: {cause}")]
    Corrupt {
        key: String,
        cause: serde_json::Error,
    },
    /// A packed sync cursor that cannot be read whole.
    #[error("stored sync cursor under {key} is unreadable: {why} (the next sync reads in full)")]
    CursorMalformed { key: String, why: super::Malformed },
    /// A packed result or session that cannot be read whole: like [`StoreError::Corrupt`], it
    /// cannot be rebuilt but by the check's next run (the next mint).
    #[error("stored record under {key} is unreadable: {why}")]
    RecordMalformed { key: String, why: super::Malformed },
    /// A check's history that cannot be read whole.
    #[error("stored history under {key} is unreadable: {why} (the check's next point replaces it)")]
    HistoryMalformed { key: String, why: super::Malformed },
    /// A mirror value that cannot be read whole: reading on would silently lose its tail.
    #[error(
        "stored mirror under {key} ({len} bytes) is unreadable: {why} (a full resync replaces it)"
    )]
    MirrorMalformed {
        key: String,
        len: usize,
        why: super::Malformed,
    },
}

impl StoreError {
    /// Whether the cause is a full file system (or quota): room, not a fix in the configuration.
    pub fn storage_full(&self) -> bool {
        use std::io::ErrorKind as K;
        let kind = match self {
            Self::StateDir { cause, .. } => cause.kind(),
            Self::Sled {
                cause: sled::Error::Io(e),
                ..
            } => e.kind(),
            _ => return false,
        };
        matches!(kind, K::StorageFull | K::QuotaExceeded)
    }
}

fn io_fix(kind: std::io::ErrorKind) -> &'static str {
    use std::io::ErrorKind as K;
    match kind {
        K::PermissionDenied | K::ReadOnlyFilesystem => {
            "make state_dir and everything in it owned and writable by the service user, e.g. `chown -R tripletex-sync: STATE_DIR`"
        }
        K::NotADirectory | K::IsADirectory | K::AlreadyExists | K::NotFound => {
            "move it away: state_dir holds only tripletex-sync's own files, which it creates"
        }
        K::StorageFull | K::QuotaExceeded => "free space on that file system",
        _ => "make state_dir a local folder the service user owns and can write",
    }
}

/// sled's own text, without its `IO error: ` prefix.
fn sled_cause(cause: &sled::Error) -> String {
    match cause {
        sled::Error::Io(e) => plain_io(e),
        other => other.to_string(),
    }
}

/// The OS's words for `e`. sled hands out clones of the I/O error that broke a handle, and each
/// clone wraps the Debug text of the one before (`Os { code: 28, …`, then `Custom { kind:
/// StorageFull, error: "Os { code: 28, …` and so on); that is unwrapped to the OS error it began
/// as, or to its kind.
fn plain_io(e: &std::io::Error) -> String {
    let text = e.to_string();
    let wrapped = ["Os {", "Custom {", "Kind("]
        .iter()
        .any(|debug| text.starts_with(debug));
    if e.raw_os_error().is_some() || !wrapped {
        return text;
    }
    let code = text
        .split("code: ")
        .nth(1)
        .and_then(|rest| rest.split(|c: char| !c.is_ascii_digit()).next())
        .and_then(|digits| digits.parse().ok());
    match code {
        Some(code) => std::io::Error::from_raw_os_error(code).to_string(),
        None => std::io::Error::from(e.kind()).to_string(),
    }
}

fn sled_fix(cause: &sled::Error) -> &'static str {
    match cause {
        sled::Error::Io(e) => io_fix(e.kind()),
        sled::Error::Corruption { .. } | sled::Error::Unsupported(_) => {
            "stop tripletex-sync and move the db folder away; the next pass re-reads every number from Tripletex (verdict history starts again)"
        }
        _ => "restart tripletex-sync; if it happens again, move the db folder away",
    }
}

pub(super) fn sled_at(db_dir: &Path) -> impl Fn(sled::Error) -> StoreError + use<> {
    let path = db_dir.to_path_buf();
    move |cause| StoreError::Sled {
        path: path.clone(),
        cause,
    }
}

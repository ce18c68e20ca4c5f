//! A store whose writes fail: on a real full file system (a 2 MiB tmpfs, where the test may mount
//! one) and with the failure injected where it cannot.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

/// A tmpfs mounted for one test, unmounted when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    /// `None` (with a note on stderr) where mounting is not possible: not root, no mount(8).
    fn mount(at: &Path, size: &str) -> Option<Self> {
        // SAFETY: geteuid(2) has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            eprintln!("NOTE: not root, so no tmpfs: the full-disk test is skipped");
            return None;
        }
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("NOTE: cannot mount a tmpfs here: the full-disk test is skipped");
            return None;
        }
        Some(Self(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success(), "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// A batch of `n` values sled cannot compress away.
fn filler(n: usize, round: usize) -> Batch {
    let mut batch = Batch::default();
    for i in 0..n {
        let value: Vec<u8> = (0..4096).map(|_| fastrand::u8(..)).collect();
        batch
            .inner
            .insert(format!("filler/{round}/{i}").into_bytes(), value);
    }
    batch
}

/// The issue "Trust": 2 MiB state disk, filled, then grown to 64 MiB. sled's handle stays broken
/// after the space returns (so the store stays failing); a new handle, as a restart opens, writes
/// again and has kept what was recorded before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_breaks_the_handle_for_good_and_a_new_one_writes_once_there_is_room() {
    let dir = tempfile::tempdir().unwrap();
    let Some(tmpfs) = Tmpfs::mount(&dir.path().join("fs"), "2m") else {
        return;
    };
    let state = dir.path().join("fs").join("state");
    let store = Store::open(&state, Role::Daemon).unwrap();
    let mut early = store.batch();
    early.put_checked("acme", CheckKind::CustomerNumbers, Timestamp::UNIX_EPOCH);
    store.commit(early).await.unwrap();

    let mut round = 0;
    let err = loop {
        round += 1;
        assert!(round < 1000, "2 MiB never filled");
        if let Err(e) = store.commit(filler(16, round)).await {
            break e;
        }
    };
    let text = err.to_string();
    let db_dir = state.join(DB_DIR).display().to_string();
    assert!(text.contains(&db_dir), "{text}");
    assert!(
        text.contains(
            ": No space left on device (os error 28) (fix: free space on that file system)"
        ),
        "{text}"
    );
    assert_eq!(store.failing().as_deref(), Some(text.as_str()));

    // Refused at once while failing (reads may fail too: sled reads pages it lost from its cache
    // through the same broken log).
    assert_eq!(
        store.commit(store.batch()).await.unwrap_err().to_string(),
        text
    );
    let checked = checked_key("acme", CheckKind::CustomerNumbers);
    let full = store.has_room().unwrap_err();
    assert!(
        matches!(&full, StoreError::StateDir { cause, .. } if cause.kind() == ErrorKind::StorageFull),
        "{full:?}"
    );

    tmpfs.resize("64m");
    store.has_room().unwrap();
    // What sled does on its own once the space is back: its handle still fails every write.
    let _ = store.db.insert("probe", "x");
    let stuck = store.db.flush().unwrap_err();
    assert!(
        matches!(&stuck, sled::Error::Io(e) if e.kind() == ErrorKind::StorageFull),
        "{stuck:?}"
    );
    assert!(store.failing().is_some());

    // What the restart does: a new handle, which writes and has what was recorded before.
    drop(store);
    let store = Store::open(&state, Role::Daemon).unwrap();
    assert_eq!(store.failing(), None);
    let mut after = store.batch();
    after.put_checked("acme", CheckKind::InvoiceNumbers, Timestamp::UNIX_EPOCH);
    store.commit(after).await.unwrap();
    assert!(store.db.get(&checked).unwrap().is_some());
    drop(store);
    drop(tmpfs);
}

/// Where no tmpfs can be mounted: the same failure injected as sled reports it.
#[tokio::test]
async fn an_io_error_marks_the_store_failing_and_refuses_writes_from_then_on() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    let health = store.watch_health();

    // Not an I/O error: not a broken handle.
    store.health.failed(&sled::Error::Unsupported("x".into()));
    assert_eq!(store.failing(), None);
    assert!(!health.has_changed().unwrap());
    // What sled hands out: a clone of a clone of the OS error.
    let os = std::io::Error::from_raw_os_error(28);
    let cloned = sled::Error::Io(os).clone().clone();
    store.health.failed(&cloned);
    assert!(health.has_changed().unwrap());
    let failing = store.failing().unwrap();
    assert_eq!(
        failing,
        format!(
            "database {}: No space left on device (os error 28) (fix: free space on that file system)",
            dir.path().join(DB_DIR).display()
        )
    );
    let mut batch = store.batch();
    batch.put_checked("acme", CheckKind::InvoiceNumbers, Timestamp::UNIX_EPOCH);
    assert_eq!(store.commit(batch).await.unwrap_err().to_string(), failing);
    assert!(
        store
            .db
            .get(checked_key("acme", CheckKind::InvoiceNumbers))
            .unwrap()
            .is_none()
    );
    // A later error does not replace the first.
    store
        .health
        .failed(&sled::Error::Io(ErrorKind::PermissionDenied.into()));
    assert_eq!(store.failing().unwrap(), failing);
}

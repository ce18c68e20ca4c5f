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
/// after the space returns; the store reopens it in-process and writes again, keeping what was
/// recorded before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_file_system_breaks_the_handle_and_a_reopen_recovers_once_there_is_room() {
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
    assert!(
        text.contains(&state.join(DB_DIR).display().to_string()),
        "{text}"
    );
    assert!(
        text.contains("(fix: free space on that file system)"),
        "{text}"
    );
    assert_eq!(store.failing().as_deref(), Some(text.as_str()));

    // Refused at once while failing; reads still answered.
    assert_eq!(
        store.commit(store.batch()).await.unwrap_err().to_string(),
        text
    );
    assert!(
        store
            .live()
            .unwrap()
            .db
            .get(checked_key("acme", CheckKind::CustomerNumbers))
            .unwrap()
            .is_some()
    );
    // Still full: no reopen.
    let still = store.reopen().unwrap_err();
    assert!(
        matches!(&still, StoreError::StateDir { cause, .. } if cause.kind() == ErrorKind::StorageFull),
        "{still:?}"
    );
    assert!(store.failing().is_some());

    tmpfs.resize("64m");
    // What sled does on its own once the space is back: its handle still fails every flush.
    let old = store.live().unwrap().db;
    old.insert("probe", "x").unwrap_or_default();
    let stuck = old.flush().unwrap_err();
    assert!(
        matches!(&stuck, sled::Error::Io(e) if e.kind() == ErrorKind::StorageFull),
        "{stuck:?}"
    );
    drop(old);

    store.reopen().unwrap();
    assert_eq!(store.failing(), None);
    let mut after = store.batch();
    after.put_checked("acme", CheckKind::InvoiceNumbers, Timestamp::UNIX_EPOCH);
    store.commit(after).await.unwrap();
    for kind in [CheckKind::CustomerNumbers, CheckKind::InvoiceNumbers] {
        let key = checked_key("acme", kind);
        assert!(
            store.live().unwrap().db.get(key).unwrap().is_some(),
            "{kind:?}"
        );
    }
    drop(store);
    drop(tmpfs);
}

/// Where no tmpfs can be mounted: the same failure injected as sled reports it. The reopen drops
/// the handle and opens the same folder again in this process.
#[tokio::test]
async fn a_broken_handle_refuses_writes_and_is_reopened_in_process() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path(), Role::Daemon).unwrap();
    let mut before = store.batch();
    before.put_checked("acme", CheckKind::CustomerNumbers, Timestamp::UNIX_EPOCH);
    store.commit(before).await.unwrap();
    let mut health = store.watch_health();

    // Not an I/O error: not a broken handle.
    store.db.failed(&sled::Error::Unsupported("x".into()));
    assert_eq!(store.failing(), None);
    store
        .db
        .failed(&sled::Error::Io(ErrorKind::StorageFull.into()));
    assert!(health.has_changed().unwrap());
    let failing = store.failing().unwrap();
    assert!(
        failing.contains("(fix: free space on that file system)"),
        "{failing}"
    );
    let refused = store.commit(store.batch()).await.unwrap_err();
    assert_eq!(refused.to_string(), failing);

    store.reopen().unwrap();
    assert_eq!(store.failing(), None);
    health.borrow_and_update();
    let mut after = store.batch();
    after.put_checked("acme", CheckKind::InvoiceNumbers, Timestamp::UNIX_EPOCH);
    store.commit(after).await.unwrap();
    assert!(
        store
            .result("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .is_none()
    );
    for kind in [CheckKind::CustomerNumbers, CheckKind::InvoiceNumbers] {
        let key = checked_key("acme", kind);
        assert!(store.db.get(key).unwrap().is_some(), "{kind:?}");
    }
    // A healthy store is not reopened.
    store.reopen().unwrap();
}

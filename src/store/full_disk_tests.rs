//! A store whose writes fail, the failure injected as sled reports it. (On a real full file
//! system, a 2 MiB tmpfs, see tests/full_disk.rs: mounting forks a process, which must not
//! happen in this binary while other tests open and drop stores, since a forked child holds
//! their lock files' descriptors for a moment.)

use std::io::ErrorKind;

use super::*;

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
    batch.put_session("acme", &SessionRecord::default());
    assert_eq!(store.commit(batch).await.unwrap_err().to_string(), failing);
    assert!(
        store
            .db
            .get(super::keys::session("acme"))
            .unwrap()
            .is_none()
    );
    // A later error does not replace the first.
    store
        .health
        .failed(&sled::Error::Io(ErrorKind::PermissionDenied.into()));
    assert_eq!(store.failing().unwrap(), failing);
}

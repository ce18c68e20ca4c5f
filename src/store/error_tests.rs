//! Store errors as an operator meets them: one line naming the file and the fix, the cause once.

use super::*;

/// Each store error is one line naming the file and the fix, and prints its cause once however
/// it is printed: alone, in an error chain (`{:#}`), or inside a pass error.
#[test]
fn store_errors_are_one_line_naming_the_file_and_the_fix_with_the_cause_once() {
    fn assert_one_line(err: StoreError, path: &std::path::Path, cause: &str) {
        let text = err.to_string();
        assert!(!text.contains('\n'), "one line: {text}");
        assert!(text.contains(&path.display().to_string()), "{text}");
        assert!(text.contains("(fix: "), "{text}");
        assert_eq!(text.matches(cause).count(), 1, "{text}");
        assert!(std::error::Error::source(&err).is_none(), "{err:?}");
        let pass = crate::pass::PassError::from(err);
        assert!(std::error::Error::source(&pass).is_none(), "{pass:?}");
        let chain = format!("{:#}", anyhow::Error::from(pass));
        assert_eq!(chain.matches(cause).count(), 1, "{chain}");
    }
    let dir = tempfile::tempdir().unwrap();

    let state = dir.path().join("db-is-a-file");
    std::fs::create_dir(&state).unwrap();
    std::fs::write(state.join(DB_DIR), "x").unwrap();
    let err = Store::open(&state, Role::OneShot).unwrap_err();
    assert!(matches!(err, StoreError::Sled { .. }), "{err:?}");
    assert_one_line(err, &state.join(DB_DIR), "Not a directory");

    let state = dir.path().join("lock-is-a-folder");
    std::fs::create_dir_all(state.join(LOCK_FILE)).unwrap();
    let err = Store::open(&state, Role::OneShot).unwrap_err();
    assert!(matches!(err, StoreError::StateDir { .. }), "{err:?}");
    assert_one_line(err, &state.join(LOCK_FILE), "Is a directory");

    // Not creatable, whoever runs the test (root included): its parent is a file.
    let state = dir.path().join("db-is-a-file").join(DB_DIR).join("state");
    let err = Store::open(&state, Role::OneShot).unwrap_err();
    assert!(matches!(err, StoreError::StateDir { .. }), "{err:?}");
    assert_one_line(err, &state, "Not a directory");

    let state = dir.path().join("newer");
    drop(Store::open(&state, Role::OneShot).unwrap());
    {
        // As the store opens it: the dropped store's sled threads let go of its lock a moment
        // after the drop.
        let db = open_sled(&state.join(DB_DIR)).unwrap();
        db.insert(b"meta/schema_version", &(SCHEMA_VERSION + 1).to_be_bytes())
            .unwrap();
        db.flush().unwrap();
    }
    let err = Store::open(&state, Role::OneShot).unwrap_err();
    assert!(matches!(err, StoreError::Schema { .. }), "{err:?}");
    assert_one_line(err, &state.join(DB_DIR), "newer than this build");
}

/// As a service user without write access (only testable when not root: root writes anyway).
#[test]
fn a_state_dir_the_user_cannot_write_names_the_folder_and_the_owner_fix() {
    use std::os::unix::fs::PermissionsExt as _;
    // SAFETY: geteuid(2) has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        eprintln!("root writes read-only folders; skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    drop(Store::open(dir.path(), Role::OneShot).unwrap());
    std::fs::set_permissions(
        dir.path().join(DB_DIR),
        std::fs::Permissions::from_mode(0o500),
    )
    .unwrap();
    let err = Store::open(dir.path(), Role::OneShot).unwrap_err();
    std::fs::set_permissions(
        dir.path().join(DB_DIR),
        std::fs::Permissions::from_mode(0o700),
    )
    .unwrap();
    let text = err.to_string();
    assert!(
        text.contains("Permission denied") && text.contains("chown"),
        "{text}"
    );
    assert!(std::error::Error::source(&err).is_none());
}

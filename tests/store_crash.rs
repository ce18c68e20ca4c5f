//! What `Store::commit` reports as recorded survives the process dying without any destructor.
//!
//! A test binary of its own: the child is this binary re-run, and a fork while another test of the
//! same process holds a store would let the child inherit (until its exec) the lock's open file
//! description, so a concurrent reopen in that other test would find it still locked.

use jiff::Timestamp;
use tripletex_sync::checks::{self, CheckKind};
use tripletex_sync::store::{ResultRecord, Role, Store};

fn ts(s: &str) -> Timestamp {
    s.parse().unwrap()
}

const CRASH_DIR_ENV: &str = "TRIPLETEX_SYNC_CRASH_DIR";
const CRASH_SHOP: &str = "crashco";
const CRASH_MARKER: &str = "crash-child: committed, exiting without drop";

fn crash_record() -> ResultRecord {
    let outcome = checks::could_not_run(CheckKind::CustomerNumbers, "recorded before the crash");
    ResultRecord::next(None, outcome, ts("2026-03-10T11:00:00Z"))
}

/// The child half of [`committed_data_survives_a_crash_without_drop`]: a no-op in a normal run.
#[tokio::test]
async fn crash_child_commits_then_dies_without_drop() {
    let Some(dir) = std::env::var_os(CRASH_DIR_ENV) else {
        return;
    };
    let store = Store::open(std::path::Path::new(&dir), Role::Daemon).unwrap();
    let mut batch = store.batch();
    batch.put_result(CRASH_SHOP, CheckKind::CustomerNumbers, &crash_record());
    store.commit(batch).await.unwrap();
    println!("{CRASH_MARKER}");
    // SAFETY: _exit(2) ends the process at once: no destructor runs, so sled gets no chance to
    // flush on drop and only what `commit` made durable is on disk.
    unsafe { libc::_exit(0) };
}

#[test]
fn committed_data_survives_a_crash_without_drop() {
    use std::process::{Command, Stdio};
    use std::time::{Duration, Instant};

    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let out_path = dir.path().join("child.out");
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash_child_commits_then_dies_without_drop",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CRASH_DIR_ENV, &state)
        .stdout(std::fs::File::create(&out_path).unwrap())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the crash child did not exit");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let out = std::fs::read_to_string(&out_path).unwrap();
    assert!(status.success(), "{status}: {out}");
    assert!(out.contains(CRASH_MARKER), "the child committed: {out}");
    assert!(
        !out.contains("test result:"),
        "the child must die in _exit, not finish its test run: {out}"
    );

    // The child's lock died with it; what it committed is there. (Nothing is assumed about data it
    // had not committed.)
    let store = Store::open(&state, Role::OneShot).unwrap();
    assert_eq!(
        store
            .result(CRASH_SHOP, CheckKind::CustomerNumbers)
            .unwrap(),
        Some(crash_record())
    );
}

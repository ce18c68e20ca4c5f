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

/// Where [`crash_child_commits_then_dies_without_drop`] keeps its store; set only by the parent.
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
    // Many shops committing at once share flushes (group commit); each is durable when its
    // commit returns.
    let shops = std::iter::once(CRASH_SHOP.to_owned()).chain((0..CRASH_GROUP).map(crash_shop));
    let commits = shops.map(|shop| {
        let mut batch = store.batch();
        batch.put_result(&shop, CheckKind::CustomerNumbers, &crash_record());
        store.commit(batch)
    });
    for result in futures_join_all(commits).await {
        result.unwrap();
    }
    println!("{CRASH_MARKER}");
    // SAFETY: _exit(2) ends the process at once: no destructor runs, so sled gets no chance to
    // flush on drop and only what `commit` made durable is on disk.
    unsafe { libc::_exit(0) };
}

#[tokio::test]
async fn committed_data_survives_a_crash_without_drop() {
    use std::process::Stdio;
    use std::time::Duration;
    use tokio::process::Command;

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
        // A child that outlives the bound below is killed as the test fails.
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("the crash child did not exit")
        .unwrap();
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
    for i in 0..CRASH_GROUP {
        assert_eq!(
            store
                .result(&crash_shop(i), CheckKind::CustomerNumbers)
                .unwrap(),
            Some(crash_record()),
            "{}",
            crash_shop(i)
        );
    }
}

const CRASH_GROUP: usize = 32;

fn crash_shop(i: usize) -> String {
    format!("crash-group-{i}")
}

/// Polls every future on this task until all are done, so their commits overlap.
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.into_iter().map(Box::pin).map(Some).collect();
    let mut outputs: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut all = true;
        for (slot, out) in pending.iter_mut().zip(outputs.iter_mut()) {
            if let Some(f) = slot {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => {
                        *out = Some(v);
                        *slot = None;
                    }
                    std::task::Poll::Pending => all = false,
                }
            }
        }
        if all {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    outputs
        .into_iter()
        .map(|o| o.expect("polled to completion"))
        .collect()
}

//! The commands beside a running daemon: `status` and `check` work, a second daemon is refused,
//! and a shop the daemon failed is named.

use std::time::Duration;

use serde_json::Value;
use tokio::process::Command;
use tripletex_sync_fixture::poll::Poll;
use tripletex_sync_fixture::spec;

use crate::{BIN, code, run, stderr, two_shops};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn beside_a_running_daemon_status_and_check_work_and_a_second_daemon_is_refused() {
    let f = two_shops().await;
    let daemon = Command::new(BIN)
        .arg("--config")
        .arg(&f.config_path)
        .arg("run")
        .env("RUST_LOG", "info")
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let status_file = f.path("state/status.json");
    // Longer than the default bound: the daemon is a child process, started cold.
    let wait = Poll::within(Duration::from_secs(30)).every(Duration::from_millis(50));
    wait.until("bolt's conflict in status.json", || {
        std::fs::read(&status_file)
            .ok()
            .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
            .is_some_and(|v| v["shops"][1]["checks"]["customer_numbers"]["verdict"] == "conflict")
    })
    .await;

    let status = run(&f, &["status", "--json"]).await;
    assert_eq!(code(&status), 0, "{}", stderr(&status));
    let json: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(
        json["shops"][0]["checks"]["customer_numbers"]["verdict"],
        "ok"
    );

    let second = run(&f, &["run"]).await;
    assert_eq!(code(&second), 2);
    let err = stderr(&second);
    assert!(
        err.contains("another tripletex-sync is running on") && err.contains("state"),
        "{err}"
    );

    // `check` asks the daemon for a pass (SIGUSR1) and reports it.
    let check = run(&f, &["check", "--shop", "acme"]).await;
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    assert!(
        stderr(&check).contains("asking it for a pass"),
        "{}",
        stderr(&check)
    );
    let check = run(&f, &["check"]).await;
    assert_eq!(code(&check), 1, "{}", stderr(&check));

    // A shop dropped into shops.d without a reload is not the daemon's yet: say so, exit 2.
    f.add_shop("newbie", 1003, "");
    let check = run(&f, &["check", "--shop", "newbie"]).await;
    assert_eq!(code(&check), 2, "{}", stderr(&check));
    assert!(
        stderr(&check).contains("does not check newbie")
            && stderr(&check).contains("systemctl reload"),
        "{}",
        stderr(&check)
    );
    // After a reload (SIGHUP) the daemon lists it at once and checks it on request.
    let pid = daemon.id().unwrap() as i32;
    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    let check = run(&f, &["check", "--shop", "newbie"]).await;
    assert_eq!(code(&check), 0, "{}", stderr(&check));
    assert!(String::from_utf8_lossy(&check.stdout).contains("newbie"));

    // SAFETY: signalling our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = tokio::time::timeout(Duration::from_secs(20), daemon.wait_with_output())
        .await
        .expect("the daemon stops promptly on SIGTERM")
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(
        log.contains("daemon.pass_requested") && log.contains("daemon.stopped"),
        "{log}"
    );
    spec::assert_conforms(&f.sim.request_log());
}

/// `check` beside a daemon whose pass of a shop failed (here: panicked) names the shop and the
/// reason and exits 2 at once. The "daemon" is this test holding the lock, with a stand-in
/// process to receive SIGUSR1, and the status.json such a daemon writes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_beside_a_daemon_whose_shop_failed_names_it_and_exits_2() {
    use tripletex_sync::checks::{CheckKind, Verdict};
    use tripletex_sync::status::StatusReport;
    use tripletex_sync::store::{Role, Store};

    let f = two_shops().await;
    let config = f.config();
    let _held = Store::open(&config.state_dir, Role::Daemon).unwrap();
    let mut stand_in = Command::new("sleep")
        .arg("30")
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = stand_in.id().unwrap();
    std::fs::write(
        config.state_dir.join("tripletex-sync.lock"),
        format!("daemon {pid}\n"),
    )
    .unwrap();
    // The retry the pass-now triggers failed too (recorded after `check` asked).
    let mut report = StatusReport::collect(None, &config, f.now()).unwrap();
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    for shop in &mut report.shops {
        for kind in CheckKind::ALL {
            let check = &mut shop.checks[kind];
            check.checked_at = Some(later);
            check.verdict = Verdict::Ok;
            if shop.name == "clash" {
                check.verdict = Verdict::Error;
                check.pass_failed = true;
                check.summary = "error: the pass failed: panicked: bad row".to_owned();
            }
        }
    }
    report.write(&config.state_dir).unwrap();

    let out = tokio::time::timeout(Duration::from_secs(20), run(&f, &["check"]))
        .await
        .expect("check does not wait out its timeout");
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("the daemon could not pass clash: error: the pass failed: panicked: bad row"),
        "{err}"
    );
    assert!(!err.contains("acme:"), "{err}");
    let got_usr1 = tokio::time::timeout(Duration::from_secs(5), stand_in.wait())
        .await
        .expect("the stand-in got SIGUSR1")
        .unwrap();
    use std::os::unix::process::ExitStatusExt as _;
    assert_eq!(got_usr1.signal(), Some(libc::SIGUSR1));
}

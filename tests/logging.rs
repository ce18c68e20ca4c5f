//! Logs as an operator's tools see them: the binary's text log written to a file carries no
//! escape byte and only this service's events by default; under a (fake) journal, `auto` speaks
//! journald's native protocol with priorities and EVENT/SHOP fields.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt as _;
use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};

use tripletex_sync_fixture::daemon::Fixture;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");

/// A healthy shop and one whose customer numbers collide with Tripletex's series.
async fn two_shops() -> Fixture {
    let f = Fixture::new().await;
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 20, false);
    f.add_shop("bolt", 1002, "");
    f.sim.add_customers(1002, 1, 10, false);
    f.sim.add_customers(1002, 10_000, 3, false);
    f
}

/// `check` with stderr sent to `stderr`, and a terminal-like environment that must not matter.
fn check(f: &Fixture, stderr: std::fs::File) -> Command {
    let mut cmd = Command::new(BIN);
    cmd.arg("--config")
        .arg(&f.config_path)
        .arg("check")
        .env_remove("RUST_LOG")
        .env_remove("NO_COLOR")
        .env_remove("JOURNAL_STREAM")
        .env("TERM", "xterm-256color")
        .env("CLICOLOR_FORCE", "1")
        .stdout(Stdio::null())
        .stderr(stderr);
    cmd
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_text_log_in_a_file_has_no_escape_codes_and_no_dependency_noise() {
    let f = two_shops().await;
    let log_path = f.path("stderr.log");
    let mut cmd = check(&f, std::fs::File::create(&log_path).unwrap());
    let status = tokio::task::spawn_blocking(move || cmd.status().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "bolt is in conflict");
    let log = std::fs::read(&log_path).unwrap();
    let text = String::from_utf8_lossy(&log);
    assert!(text.contains("session.minted"), "{text}");
    assert!(text.contains("check.verdict"), "{text}");
    assert!(!log.contains(&0x1b), "an escape byte in a file log: {text}");
    assert!(
        text.lines()
            .all(|l| !l.contains(" DEBUG ") && !l.contains(" TRACE ")),
        "the default filter is info for us, warn for dependencies: {text}"
    );
}

/// One native-protocol datagram as field → values (a field may repeat: SHOP from span and event).
fn parse_entry(mut data: &[u8]) -> HashMap<String, Vec<String>> {
    let mut fields: HashMap<String, Vec<String>> = HashMap::new();
    while !data.is_empty() {
        let end = data
            .iter()
            .position(|&b| b == b'=' || b == b'\n')
            .expect("a field name");
        let name = String::from_utf8_lossy(&data[..end]).into_owned();
        let value;
        if data[end] == b'=' {
            let rest = &data[end + 1..];
            let nl = rest.iter().position(|&b| b == b'\n').expect("a newline");
            value = &rest[..nl];
            data = &rest[nl + 1..];
        } else {
            let rest = &data[end + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            value = &rest[8..8 + len];
            assert_eq!(rest[8 + len], b'\n');
            data = &rest[8 + len + 1..];
        }
        fields
            .entry(name)
            .or_default()
            .push(String::from_utf8_lossy(value).into_owned());
    }
    fields
}

/// The binary runs in a private mount namespace whose /run is a temporary folder holding our
/// socket at systemd/journal/socket (tracing-journald's path is fixed), with `JOURNAL_STREAM`
/// naming its stderr as systemd would. Needs root and `unshare`; skips with a message otherwise.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn under_the_journal_auto_logs_natively_with_priorities_and_fields() {
    let f = two_shops().await;
    let run = f.path("run");
    std::fs::create_dir_all(run.join("systemd/journal")).unwrap();
    let journal = UnixDatagram::bind(run.join("systemd/journal/socket")).unwrap();
    let probe = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!("mount --bind '{}' /run", run.display()))
        .output();
    if !probe.as_ref().is_ok_and(|o| o.status.success()) {
        eprintln!(
            "SKIPPED: cannot make a private mount namespace (needs root and unshare): {probe:?}"
        );
        return;
    }

    let stderr_path = f.path("stderr.log");
    let stderr = std::fs::File::create(&stderr_path).unwrap();
    let meta = stderr.metadata().unwrap();
    let mut cmd = Command::new("unshare");
    cmd.args(["--mount", "--propagation", "private", "sh", "-c"])
        .arg(format!(
            "mount --bind '{}' /run && exec '{BIN}' --config '{}' check",
            run.display(),
            f.config_path.display()
        ))
        .env_remove("RUST_LOG")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(stderr);
    let status = tokio::task::spawn_blocking(move || cmd.status().unwrap())
        .await
        .unwrap();
    assert_eq!(status.code(), Some(1), "bolt is in conflict");

    journal.set_nonblocking(true).unwrap();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 1 << 16];
    while let Ok(n) = journal.recv(&mut buf) {
        if n > 0 {
            entries.push(parse_entry(&buf[..n]));
        }
    }
    let find = |event: &str, shop: &str| {
        entries
            .iter()
            .find(|e| {
                e.get("EVENT").is_some_and(|v| v.iter().any(|v| v == event))
                    && e.get("SHOP").is_some_and(|v| v.iter().any(|v| v == shop))
            })
            .unwrap_or_else(|| panic!("no {event} for {shop} in the journal: {entries:?}"))
    };
    let minted = find("session.minted", "acme");
    assert_eq!(minted["PRIORITY"], ["6"], "info");
    assert_eq!(minted["SYSLOG_IDENTIFIER"], ["tripletex-sync"]);
    assert!(!minted["MESSAGE"][0].is_empty());
    let conflict = find("check.verdict", "bolt");
    assert_eq!(conflict["PRIORITY"], ["3"], "a conflict is an error");
    assert_eq!(conflict["VERDICT"], ["conflict"]);
    assert!(
        entries.iter().all(|e| e["PRIORITY"][0].as_str() <= "6"),
        "nothing below info by default"
    );
    let stderr = std::fs::read_to_string(&stderr_path).unwrap();
    assert!(
        !stderr.contains("session.minted"),
        "logs went to the journal, not stderr: {stderr}"
    );
}

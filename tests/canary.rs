//! The secret canary: unique consumer and employee tokens are planted, the program is driven
//! through minting, renewal, revocation, rejections, transport faults, the CLI and the daemon
//! (`run` with a SIGHUP reload and a SIGTERM shutdown), and neither the canaries nor any session
//! token Tripletex (the simulator) minted may appear in any log line (TRACE, every crate, `log`
//! crate records included), error message, `Debug` output or file the program writes. A binary of
//! its own so its tracing subscriber can be global.

use std::path::Path;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tripletex_sim::{Fault, FaultKind};
use tripletex_sync::daemon;
use tripletex_sync_fixture::capture::capture_trace;
use tripletex_sync_fixture::daemon::{Fixture, write_private};
use tripletex_sync_fixture::poll;

/// Every session token the simulator mints is base64 of `{"tokenId":N,"token":"…"}` (as
/// Tripletex's are), so each starts with the encoding of `{"tokenId`: finding it finds any of them.
const SESSION_TOKEN_PREFIX: &str = "eyJ0b2tlbklk";

fn canary(kind: &str) -> String {
    format!("CANARY{kind}{:016x}", fastrand::u64(..))
}

/// Every file below `dir` except the token files themselves.
fn files_written(dir: &Path, skip: &[&Path], out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files_written(&path, skip, out);
        } else if !skip.iter().any(|s| *s == path) {
            out.push(path);
        }
    }
}

fn assert_clean(what: &str, text: &[u8], canaries: &[&str]) {
    let text = String::from_utf8_lossy(text);
    for c in canaries {
        assert!(!text.contains(c), "a token leaked into {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_appear_in_no_log_error_debug_output_or_file() {
    let captured = capture_trace();
    // sled, rustls and others log through the `log` crate: route it into the captured trace.
    tracing_log::LogTracer::init().expect("the only logger in this test binary");

    let (consumer, good, revoked) = (canary("C"), canary("E"), canary("R"));
    let f = Fixture::new().await;
    f.sim.add_consumer_token(&consumer);
    write_private(&f.path("consumer-token"), &consumer);
    for (name, company, token) in [("good", 1001, &good), ("gone", 1002, &revoked)] {
        f.sim.add_company(company, name, true);
        f.sim.add_employee_token(token, company, 1);
        write_private(&f.path(&format!("{name}.token")), token);
        std::fs::write(
            f.path(&format!("shops.d/{name}.toml")),
            format!("employee_token_file = \"../{name}.token\"\n"),
        )
        .unwrap();
    }
    f.sim.add_customers(1001, 1, 50, false);
    f.sim.revoke_employee_token(&revoked);
    let canaries = [
        consumer.as_str(),
        good.as_str(),
        revoked.as_str(),
        SESSION_TOKEN_PREFIX,
    ];
    let config = f.config();
    let store = f.open_store();
    let env = f.env();
    let mut errors = Vec::new();

    // Mint, sync, reject; then renewal (and revocation of the old token) by moving the clock; a
    // 401 storm; transport faults on every path.
    for step in 0..4 {
        let reports = daemon::check_once(
            config.clone(),
            store.clone(),
            &env,
            &[],
            CancellationToken::new(),
        )
        .await
        .unwrap();
        for r in &reports {
            errors.push(format!("{r:?}"));
            errors.extend(
                r.outcomes()
                    .iter()
                    .map(|o| format!("{} {:?}", o.summary, o.fix)),
            );
        }
        match step {
            0 => f.clock.advance(Duration::from_secs(6 * 86_400 + 3600)),
            1 => f.sim.drop_all_sessions(),
            _ => f.sim.inject(Fault::always(FaultKind::ConnectionReset)),
        }
    }
    // A long-lived client renews and revokes its superseded token.
    let api = f.api();
    let client = f.client(&api, "good", &CancellationToken::new());
    f.sim.clear_faults();
    client.connect().await.unwrap();
    f.clock.advance(Duration::from_secs(6 * 86_400 + 1800));
    client.connect().await.unwrap();
    errors.push(format!("{:?}", client.session_info()));

    // Refusals that name token files must not quote them.
    std::fs::set_permissions(
        f.path("good.token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o644),
    )
    .unwrap();
    let shop = config.shop("good").unwrap();
    errors.push(shop.employee_token.load_with(None).unwrap_err().to_string());
    errors.push(format!("{config:?}"));
    errors.push(format!("{:?}", shop.employee_token));
    drop(store);

    // The binary, at TRACE, through validate (refusing the 644 file), check and status.
    let bin = env!("CARGO_BIN_EXE_tripletex-sync");
    let mut cli_output = Vec::new();
    for args in [&["validate"][..], &["check"], &["status", "--json"]] {
        let out = tokio::process::Command::new(bin)
            .arg("--config")
            .arg(&f.config_path)
            .args(args)
            .env("RUST_LOG", "trace")
            .output()
            .await
            .unwrap();
        cli_output.extend(out.stdout);
        cli_output.extend(out.stderr);
    }
    std::fs::set_permissions(
        f.path("good.token"),
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let out = tokio::process::Command::new(bin)
        .arg("--config")
        .arg(&f.config_path)
        .arg("check")
        .env("RUST_LOG", "trace")
        .output()
        .await
        .unwrap();
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("session.minted"),
        "the CLI run really minted"
    );
    cli_output.extend(out.stdout);
    cli_output.extend(out.stderr);

    // The daemon at TRACE: passes, a reload that adds a shop (SIGHUP), shutdown (SIGTERM).
    let late = canary("L");
    f.sim.add_company(1003, "late", true);
    f.sim.add_employee_token(&late, 1003, 1);
    write_private(&f.path("late.token"), &late);
    cli_output.extend(run_daemon_with_reload(&f).await);

    let log = captured.bytes();
    assert!(
        String::from_utf8_lossy(&log).contains("session.renewed"),
        "the traced run really renewed"
    );
    assert!(
        String::from_utf8_lossy(&log).contains("sled::pagecache"),
        "`log` crate records (sled's) were captured too"
    );
    let minted = base64::Engine::encode(
        &base64::engine::general_purpose::STANDARD,
        r#"{"tokenId":7,"token":"x"}"#,
    );
    assert!(minted.starts_with(SESSION_TOKEN_PREFIX));
    assert_clean("the trace log", &log, &canaries);
    assert_clean("the trace log", &log, &[&late]);
    assert_clean("the daemon's output", &cli_output, &[&late]);
    assert_clean("the CLI's output and logs", &cli_output, &canaries);
    assert_clean(
        "error messages and Debug output",
        errors.join("\n").as_bytes(),
        &canaries,
    );
    let mut files = Vec::new();
    let tokens = [
        f.path("consumer-token"),
        f.path("good.token"),
        f.path("gone.token"),
        f.path("late.token"),
    ];
    let skip: Vec<&Path> = tokens.iter().map(|p| p.as_path()).collect();
    files_written(f.dir.path(), &skip, &mut files);
    assert!(files.iter().any(|p| p.ends_with("status.json")));
    assert!(
        files.len() > 5,
        "the sled database is among them: {files:?}"
    );
    for file in files {
        assert_clean(
            &file.display().to_string(),
            &std::fs::read(&file).unwrap(),
            &canaries,
        );
    }
}

/// `run` at TRACE until its first passes are recorded; then `late.toml` appears and SIGHUP reloads
/// (the late shop mints); then SIGTERM. Returns its stdout and stderr.
async fn run_daemon_with_reload(f: &Fixture) -> Vec<u8> {
    let stderr_path = f.path("daemon.log");
    let daemon = tokio::process::Command::new(env!("CARGO_BIN_EXE_tripletex-sync"))
        .arg("--config")
        .arg(&f.config_path)
        .arg("run")
        .env("RUST_LOG", "trace")
        .stdout(std::process::Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = i32::try_from(daemon.id().unwrap()).unwrap();
    let log = || std::fs::read_to_string(&stderr_path).unwrap_or_default();
    poll::until("pass.done in the daemon's log", || {
        log().contains("pass.done")
    })
    .await;
    std::fs::write(
        f.path("shops.d/late.toml"),
        "employee_token_file = \"../late.token\"\n",
    )
    .unwrap();
    // SAFETY: kill(2) on our own child with plain signal numbers.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGHUP) }, 0);
    poll::until("config.reloaded in the daemon's log", || {
        log().contains("config.reloaded")
    })
    .await;
    poll::until(
        "the reload to start the late shop (its session.minted)",
        || {
            log()
                .lines()
                .any(|l| l.contains("session.minted") && l.contains("shop=late"))
        },
    )
    .await;
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let out = tokio::time::timeout(Duration::from_secs(30), daemon.wait_with_output())
        .await
        .expect("the daemon stops on SIGTERM")
        .unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, log());
    let text = log();
    assert!(text.contains("daemon.stopped"), "{text}");
    let mut all = out.stdout;
    all.extend(text.into_bytes());
    all
}

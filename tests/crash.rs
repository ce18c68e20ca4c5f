//! The real binary under SIGKILL: `run` against the simulator (in-process, 127.0.0.1:0, the demo
//! world: one ok shop, one conflict, one rejected key) is killed at random points of its passes
//! and restarted, again and again within a bounded budget. Every verdict status.json showed
//! before a kill is still there after the restart (the same pass or a later one), and every start
//! is clean: no lock error, nothing unreadable. Also: the files it writes are private under
//! umask 022. And with `[notify]`: every verdict change recorded across 20 kills (during passes
//! and deliveries, the platform failing at times) reaches the platform, in order per shop and
//! check, duplicates only under one `webhook-id`.

use std::collections::HashMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tripletex_sim::{DEMO_SCENARIO, Fault, FaultKind, RunningSim, Scenario, Simulator};
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::clock::SystemClock;
use tripletex_sync::status::StatusReport;
use tripletex_sync_fixture::daemon::write_private;
use tripletex_sync_fixture::platform;
use tripletex_sync_fixture::poll::Poll;
use tripletex_sync_fixture::receiver::Receiver;
use tripletex_sync_fixture::sim::start_on_loopback;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");
const KILLS: usize = 20;
/// The whole test's budget; each wait below is bounded by it. A bound, not a timing: alone a test
/// takes ~15 s, and once, beside the rest of the suite on 2 cores, over 60 s.
const BUDGET: Duration = Duration::from_secs(120);

/// The simulator with the demo world, slowed so passes take a good part of each second.
async fn simulator() -> (Simulator, RunningSim) {
    let scenario = Scenario::from_toml_str(DEMO_SCENARIO).unwrap();
    let sim = Simulator::from_scenario(scenario, Arc::new(SystemClock));
    sim.set_rate_limit(100_000, Duration::from_secs(10));
    for path in ["/customer", "/invoice"] {
        sim.inject(Fault {
            kind: FaultKind::Delay(Duration::from_millis(60)),
            path_prefix: Some(path.into()),
            employee_token: None,
            times: None,
        });
    }
    let running = start_on_loopback(&sim).await;
    (sim, running)
}

/// config.toml (1 s interval), the consumer token and one shop per demo company, in `dir`.
fn write_config(dir: &Path, base_url: &str) -> PathBuf {
    std::fs::create_dir(dir.join("shops.d")).unwrap();
    write_private(&dir.join("consumer-token"), "demo-consumer-token");
    for shop in ["fjellsport", "kaffebrenneriet", "sykkelsmia"] {
        write_private(
            &dir.join(format!("{shop}.token")),
            &format!("demo-key-{shop}"),
        );
        std::fs::write(
            dir.join("shops.d").join(format!("{shop}.toml")),
            format!("employee_token_file = \"../{shop}.token\"\n"),
        )
        .unwrap();
    }
    let path = dir.join("config.toml");
    std::fs::write(
        &path,
        format!(
            "state_dir = \"state\"\nshops_dir = \"shops.d\"\n\n[tripletex]\nbase_url = \"{base_url}\"\n\
             consumer_token_file = \"consumer-token\"\nsession_valid_days = 7\nrenew_before = \"1d\"\n\
             request_timeout = \"5s\"\n\n[rate_limit]\nper_second = 1000\nburst = 1000\nreserve = 20\n\
             max_concurrent_shops = 8\n\n[checks]\ninterval = \"1s\"\njitter = \"0s\"\nfull_resync = \"1h\"\n"
        ),
    )
    .unwrap();
    path
}

/// The binary with `args`, under umask 022 (as `sudo -u … tripletex-sync` might run it).
fn binary(config: &Path, args: &[&str], log: &Path) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("umask 022 && exec \"$0\" \"$@\"")
        .arg(BIN)
        .arg("--config")
        .arg(config)
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(log).unwrap());
    cmd
}

/// The binary started with `args`, killed when dropped while it still runs: a failing test must
/// not leave its daemon running (one did, for 40 minutes).
fn spawn(config: &Path, args: &[&str], log: &Path) -> Daemon {
    Daemon(binary(config, args, log).spawn().unwrap())
}

struct Daemon(Child);

impl std::ops::Deref for Daemon {
    type Target = Child;
    fn deref(&self) -> &Child {
        &self.0
    }
}

impl std::ops::DerefMut for Daemon {
    fn deref_mut(&mut self) -> &mut Child {
        &mut self.0
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

/// Per shop and check: the verdict and when it was checked.
type Seen = HashMap<(String, CheckKind), (Verdict, Timestamp)>;

fn seen(report: &StatusReport) -> Seen {
    let mut seen = Seen::new();
    for shop in &report.shops {
        for kind in CheckKind::ALL {
            let c = shop.checks.get(kind);
            if let Some(at) = c.checked_at {
                seen.insert((shop.name.clone(), kind), (c.verdict, at));
            }
        }
    }
    seen
}

/// A wait bounded by what is left of the test's [`BUDGET`].
fn within_budget(started: Instant) -> Poll {
    Poll::within(BUDGET.saturating_sub(started.elapsed()))
}

fn kill(child: &mut Child) {
    // SAFETY: kill(2) on our own child's pid; it has not been reaped yet (no wait before this).
    let rc = unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    child.wait().unwrap();
}

/// What a clean start must never log.
fn assert_clean(log: &Path) {
    let text = std::fs::read_to_string(log).unwrap();
    for bad in [
        "another tripletex-sync",
        "unreadable",
        "store.corrupt",
        "status.write_failed",
        "pass.failed",
        "panicked",
    ] {
        assert!(!text.contains(bad), "{bad:?} in the daemon's log:\n{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verdicts_survive_sigkill_at_random_points_of_passes() {
    let started = Instant::now();
    let (sim, running) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &running.base_url());
    let state = dir.path().join("state");
    let mut before = Seen::new();
    let mut kills_during_a_pass = 0;
    for round in 0..KILLS {
        let log = dir.path().join(format!("run-{round}.log"));
        let launched = Timestamp::now();
        let requests_before = sim.request_log().len();
        let mut child = spawn(&config, &["run"], &log);

        // The restart's first status.json (written at start, from the database) still shows
        // everything the killed daemon's status.json showed.
        let after = within_budget(started)
            .every(Duration::from_millis(10))
            .until_some(&format!("round {round}: status.json"), || {
                assert!(
                    child.try_wait().unwrap().is_none(),
                    "round {round}: the daemon exited:\n{}",
                    std::fs::read_to_string(&log).unwrap()
                );
                let report = StatusReport::read(&state).ok()?;
                (report.generated_at >= launched).then(|| seen(&report))
            })
            .await;
        for (key, (verdict, at)) in &before {
            let now = after.get(key);
            assert!(
                now.is_some_and(|(v, t)| t > at || (t == at && v == verdict)),
                "round {round}: {key:?} was {verdict:?} at {at} before the kill, now {now:?}"
            );
        }

        // Kill it at a random point: mostly right after a random request of its passes (inside a
        // pass), sometimes after a random time (perhaps between passes).
        if round % 3 == 2 {
            tokio::time::sleep(Duration::from_millis(fastrand::u64(50..1500))).await;
        } else {
            let nth = requests_before + fastrand::usize(1..12);
            // Checked often, so the kill lands right after that request, inside its pass.
            within_budget(started)
                .every(Duration::from_millis(2))
                .until(&format!("round {round}: request {nth}"), || {
                    sim.request_log().len() >= nth
                })
                .await;
        }
        let report = StatusReport::read(&state).unwrap();
        let killed_at = Timestamp::now();
        kill(&mut child);
        // Requests take 60 ms each and follow each other within a pass: one logged in the last
        // 100 ms means a pass was running.
        let recent = killed_at - jiff::SignedDuration::from_millis(100);
        if sim.request_log().iter().any(|r| r.at >= recent) {
            kills_during_a_pass += 1;
        }
        assert_clean(&log);
        before = seen(&report);
    }
    assert!(
        before.len() == 6,
        "every check of the three shops was recorded: {before:?}"
    );
    assert_eq!(
        before[&("kaffebrenneriet".to_owned(), CheckKind::CustomerNumbers)].0,
        Verdict::Conflict
    );
    assert!(
        kills_during_a_pass >= KILLS / 3,
        "only {kills_during_a_pass} of {KILLS} kills hit a pass"
    );
    assert!(started.elapsed() < BUDGET);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_are_private_under_umask_022() {
    let (_sim, running) = simulator().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &running.base_url());
    let log = dir.path().join("check.log");
    let status = tokio::task::spawn_blocking({
        let mut cmd = binary(&config, &["check"], &log);
        move || cmd.status().unwrap()
    })
    .await
    .unwrap();
    assert_eq!(
        status.code(),
        Some(1),
        "one conflict, one rejected key:\n{}",
        std::fs::read_to_string(&log).unwrap()
    );
    let state = dir.path().join("state");
    let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&state), 0o750, "group may reach status.json");
    assert_eq!(mode(&state.join("status.json")), 0o640);
    assert_eq!(mode(&state.join("tripletex-sync.lock")), 0o600);
    assert_eq!(mode(&state.join("db")), 0o700);
    let mut files = 0;
    for entry in std::fs::read_dir(state.join("db")).unwrap() {
        let path = entry.unwrap().path();
        let want = if path.is_dir() { 0o700 } else { 0o600 };
        assert_eq!(mode(&path), want, "{}", path.display());
        files += 1;
    }
    assert!(files >= 2, "sled's conf and db");
}

/// Adds `[notify]` (to `url`, retrying after at most a second) to `config`.
fn with_notify(config: &Path, url: &str) {
    let dir = config.parent().unwrap();
    write_private(&dir.join("notify-secret"), platform::SECRET);
    let mut text = std::fs::read_to_string(config).unwrap();
    text.push_str(&platform::notify_table(
        url,
        "retry_min = \"1s\"\nretry_max = \"1s\"",
    ));
    std::fs::write(config, text).unwrap();
}

/// `(shop, check, verdict, was)`, `was` `None` for a first verdict.
type Change = (String, String, String, Option<String>);

/// The verdict changes a run's JSON log says were recorded.
fn logged_changes(log: &Path) -> Vec<Change> {
    let text = std::fs::read_to_string(log).unwrap();
    text.lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|e| e["event"] == "check.verdict" && e["level"] != "DEBUG")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap().to_owned();
            let was = s("was");
            (
                s("shop"),
                s("check"),
                s("verdict"),
                (was != "unknown").then_some(was),
            )
        })
        .collect()
}

fn change_of(body: &serde_json::Value) -> Change {
    let d = &body["data"];
    let s = |k: &str| d[k].as_str().map(str::to_owned);
    (
        s("shop").unwrap(),
        s("check").unwrap(),
        s("verdict").unwrap(),
        s("was"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notifications_survive_sigkill_during_passes_and_deliveries() {
    let started = Instant::now();
    let (sim, running) = simulator().await;
    let receiver = Receiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), &running.base_url());
    with_notify(&config, &receiver.url("/hook"));
    let state = dir.path().join("state");
    // fjellsport's customer that moves in and out of the shop's range: a verdict change a pass.
    let moving = sim.add_customer(1001, 100_050, false);
    let mut logs = Vec::new();
    for round in 0..KILLS {
        // The platform takes messages in some rounds and fails them in others.
        receiver.answer(if fastrand::bool() { 204 } else { 500 });
        sim.set_customer_number(
            1001,
            moving,
            if round.is_multiple_of(2) {
                10_000
            } else {
                100_050
            },
        );
        let log = dir.path().join(format!("notify-{round}.log"));
        let mut child = spawn(&config, &["--log-format", "json", "run"], &log);
        tokio::time::sleep(Duration::from_millis(fastrand::u64(200..1500))).await;
        kill(&mut child);
        assert_clean(&log);
        logs.push(log);
    }
    // The last run: the platform takes everything, and the last move is recorded and sent.
    receiver.answer(204);
    let last = if KILLS.is_multiple_of(2) {
        Verdict::Ok
    } else {
        Verdict::Conflict
    };
    let log = dir.path().join("notify-last.log");
    let spawned_at = Timestamp::now();
    let mut child = spawn(&config, &["--log-format", "json", "run"], &log);
    // What the wait saw last, for the message if it never holds.
    let mut last_seen = String::from("no status.json");
    let budget = BUDGET.saturating_sub(started.elapsed());
    let delivered = Poll::within(budget + Duration::from_secs(1))
        .every(Duration::from_millis(20))
        .until("the last run delivers everything", || {
            let Ok(report) = StatusReport::read(&state) else {
                return false;
            };
            let verdict = seen(&report)
                .get(&("fjellsport".to_owned(), CheckKind::CustomerNumbers))
                .map(|(v, _)| *v);
            last_seen = format!(
                "verdict {verdict:?} (waiting for {last:?}), {:?}",
                report.notify
            );
            // This run's status, its outbox counted (`notify` is absent until the delivery task
            // has published), nothing pending. Not `delivered > 0`: that counts this run's
            // deliveries, and a killed run may have delivered everything already.
            let fresh = report.generated_at >= spawned_at;
            let pending = report.notify.map(|b| b.pending);
            fresh && verdict == Some(last) && pending == Some(0)
        });
    if tokio::time::timeout(budget, delivered).await.is_err() {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(30).collect();
        panic!(
            "the last run did not deliver everything: {last_seen}; its log, newest first:\n{}",
            tail.join("\n")
        );
    }
    // SAFETY: kill(2) on our own child's pid, not reaped yet.
    assert_eq!(unsafe { libc::kill(child.id() as i32, libc::SIGTERM) }, 0);
    child.wait().unwrap();
    assert_clean(&log);
    logs.push(log);

    let received = receiver.received();
    received.iter().for_each(platform::assert_signed);
    // One message per id, whatever was resent; each change under one id only.
    let mut bodies: HashMap<String, serde_json::Value> = HashMap::new();
    let mut order = Vec::new();
    for hook in received
        .iter()
        .filter(|h| h.body["type"] == "check.verdict")
    {
        let id = hook.headers["webhook-id"].to_str().unwrap().to_owned();
        match bodies.get(&id) {
            Some(body) => assert_eq!(body, &hook.body, "a retry of {id} is the same message"),
            None => {
                bodies.insert(id.clone(), hook.body.clone());
                order.push(id);
            }
        }
    }
    let mut per_check: HashMap<(String, String), Vec<&serde_json::Value>> = HashMap::new();
    for id in &order {
        let (shop, check, ..) = change_of(&bodies[id]);
        per_check
            .entry((shop, check))
            .or_default()
            .push(&bodies[id]);
    }
    // In order and none lost: each message's `was` is the verdict of the one before it.
    for (key, messages) in &per_check {
        let mut before: Option<String> = None;
        for body in messages {
            let (.., verdict, was) = change_of(body);
            assert_eq!(was, before, "{key:?}: {messages:#?}");
            before = Some(verdict);
        }
    }
    // Every change a run logged as recorded was delivered.
    let mut delivered: HashMap<Change, usize> = HashMap::new();
    for body in bodies.values() {
        *delivered.entry(change_of(body)).or_default() += 1;
    }
    let mut logged: HashMap<Change, usize> = HashMap::new();
    for change in logs.iter().flat_map(|log| logged_changes(log)) {
        *logged.entry(change).or_default() += 1;
    }
    for (change, n) in &logged {
        assert!(
            delivered.get(change).copied().unwrap_or(0) >= *n,
            "{change:?} was logged {n} times, delivered {:?}",
            delivered.get(change)
        );
    }
    let moves = &per_check[&("fjellsport".to_owned(), "customer_numbers".to_owned())];
    assert!(
        moves.len() >= 4,
        "fjellsport's moves were recorded: {moves:#?}"
    );
    assert!(started.elapsed() < BUDGET * 2);
}

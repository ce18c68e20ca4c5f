//! `notify test` as the real binary against a loopback receiver that verifies Standard Webhooks
//! signatures: the one-line answers (delivered, refused with or without Retry-After, failed),
//! their exit codes, configuration refusals (exit 2), and that the secret never shows.

use std::path::{Path, PathBuf};
use std::process::Output;

use tokio::process::Command;
use tripletex_sync_fixture::receiver::Receiver;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");
/// The secret the config names and the receiver verifies with (32 key bytes).
const SECRET: &str = "whsec_CANARYAAbm90aWZ5LXRlc3Qtc2VjcmV0LTMyLWJ5dGU=";

/// A config folder: main file, an empty shops.d, the consumer token, the notify secret.
struct Folder {
    dir: tempfile::TempDir,
}

impl Folder {
    /// `notify` is the `[notify]` table's body; `None` leaves the table out.
    fn new(notify: Option<&str>) -> Self {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("shops.d")).unwrap();
        let f = Self { dir };
        f.private("consumer-token", "consumer");
        f.private("notify-secret", SECRET);
        let table = notify
            .map(|t| format!("[notify]\n{t}\n"))
            .unwrap_or_default();
        std::fs::write(
            f.config(),
            format!(
                "state_dir = \"state\"\n[tripletex]\nconsumer_token_file = \"consumer-token\"\n{table}"
            ),
        )
        .unwrap();
        f
    }

    fn to(url: &str) -> Self {
        Self::new(Some(&format!(
            "url = \"{url}\"\nsecret_file = \"notify-secret\"\ntimeout = \"10s\""
        )))
    }

    fn config(&self) -> PathBuf {
        self.dir.path().join("config.toml")
    }

    fn private(&self, name: &str, text: &str) {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    async fn notify_test(&self) -> Run {
        run(&self.config()).await
    }
}

/// What one run printed, checked for the secret on the way.
struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

async fn run(config: &Path) -> Run {
    let out: Output = Command::new(BIN)
        .arg("--config")
        .arg(config)
        .args(["notify", "test"])
        .env_remove("TRIPLETEX_SYNC_CONFIG")
        .env_remove("CREDENTIALS_DIRECTORY")
        .env("RUST_LOG", "debug")
        .output()
        .await
        .unwrap();
    let run = Run {
        code: out.status.code().expect("exited normally"),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    };
    for text in [&run.stdout, &run.stderr] {
        assert!(
            !text.contains("CANARY") && !text.contains(&SECRET[6..]),
            "the secret was printed: {text}"
        );
    }
    run
}

/// The one line printed must be `prefix`, a number of milliseconds, `suffix`.
fn one_line(run: &Run, prefix: &str, suffix: &str) {
    let line = run.stdout.strip_suffix('\n').expect("a line");
    assert!(!line.contains('\n'), "{line:?}");
    let took = line
        .strip_prefix(prefix)
        .and_then(|rest| rest.strip_suffix(suffix))
        .unwrap_or_else(|| panic!("{line:?} is not {prefix:?} … {suffix:?}"));
    took.parse::<u64>()
        .unwrap_or_else(|_| panic!("{took:?} in {line:?} is not milliseconds"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_is_signed_the_standard_webhooks_way_and_exits_0() {
    let receiver = Receiver::start().await;
    receiver.answer(204);
    let f = Folder::to(&receiver.url("/hooks/tripletex-sync"));
    let run = f.notify_test().await;
    assert_eq!(run.code, 0, "{}{}", run.stdout, run.stderr);
    one_line(&run, "delivered: 204 in ", " ms");

    let got = receiver.received();
    assert_eq!(got.len(), 1);
    let hook = &got[0];
    assert_eq!(hook.path, "/hooks/tripletex-sync");
    assert_eq!(hook.headers["content-type"], "application/json");
    let id = hook.headers["webhook-id"].to_str().unwrap();
    assert!(id.starts_with("msg_") && id.len() == 30, "{id}");
    let signature = hook.headers["webhook-signature"].to_str().unwrap();
    assert!(signature.starts_with("v1,"), "{signature}");
    standardwebhooks::Webhook::new(SECRET)
        .unwrap()
        .verify(&hook.raw, &hook.headers)
        .expect("the signature verifies with the configured secret");
    let other = "whsec_b3RoZXItc2VjcmV0LW9mLTMyLWJ5dGVzLWxvbmchISE=";
    assert!(
        standardwebhooks::Webhook::new(other)
            .unwrap()
            .verify(&hook.raw, &hook.headers)
            .is_err()
    );

    let body = &hook.body;
    assert_eq!(body["type"], "test");
    assert_eq!(body["data"]["message"], "tripletex-sync notify test");
    assert!(body["data"]["host"].as_str().is_some_and(|h| !h.is_empty()));
    let at: jiff::Timestamp = body["timestamp"].as_str().unwrap().parse().unwrap();
    assert_eq!(
        at.as_second().to_string(),
        hook.headers["webhook-timestamp"].to_str().unwrap()
    );
    assert!(!String::from_utf8_lossy(&hook.raw).contains("CANARY"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refusals_exit_1_with_the_status_retry_after_and_a_hint() {
    let receiver = Receiver::start().await;
    let f = Folder::to(&receiver.url("/hook"));

    receiver.answer(401);
    let run = f.notify_test().await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    one_line(
        &run,
        "refused: 401 Unauthorized in ",
        " ms (the platform rejected the signature: check that it uses the same secret as notify.secret_file)",
    );

    receiver.answer_with(429, &[("retry-after", "30")]);
    let run = f.notify_test().await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    one_line(
        &run,
        "refused: 429 Too Many Requests in ",
        " ms, retry after 30s (the platform asks to come back later)",
    );

    receiver.answer(500);
    let run = f.notify_test().await;
    assert_eq!(run.code, 1);
    one_line(&run, "refused: 500 Internal Server Error in ", " ms");
    // Each attempt is a new message: a fresh id every time.
    let ids: std::collections::BTreeSet<String> = receiver
        .received()
        .iter()
        .map(|h| h.headers["webhook-id"].to_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_is_down_fails_with_exit_1_naming_the_url() {
    // A port that was free a moment ago and has nothing listening now.
    let url = {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/hook", listener.local_addr().unwrap())
    };
    let run = Folder::to(&url).notify_test().await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stdout, format!("failed: connection refused to {url}\n"));

    // Connected (the kernel accepts into the backlog) but never answered: the timeout ends it.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", silent.local_addr().unwrap());
    let f = Folder::new(Some(&format!(
        "url = \"{url}\"\nsecret_file = \"notify-secret\"\ntimeout = \"1s\""
    )));
    let run = f.notify_test().await;
    assert_eq!(run.code, 1, "{}{}", run.stdout, run.stderr);
    assert_eq!(
        run.stdout,
        format!("failed: no answer within 1s to {url}\n")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn configuration_problems_exit_2_with_one_line_naming_the_fix() {
    let f = Folder::new(None);
    let run = f.notify_test().await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    let config = f.config().display().to_string();
    assert_eq!(
        run.stderr.lines().collect::<Vec<_>>(),
        [format!(
            "error: {config}: there is no [notify] table with a url, so there is nowhere to send (fix: add [notify] with url = \"https://HOST/PATH\" and secret_file = \"PATH\" to it; see docs/notify.md, installed under /usr/share/doc/tripletex-sync/docs/)"
        )]
    );

    let f = Folder::to("http://127.0.0.1:9/hook");
    f.private("notify-secret", "CANARY-not-a-whsec-secret");
    let run = f.notify_test().await;
    assert_eq!(run.code, 2, "{}{}", run.stdout, run.stderr);
    assert_eq!(run.stderr.lines().count(), 1, "{}", run.stderr);
    assert!(
        run.stderr.contains(&format!(
            "error: {}: `notify.secret_file`: the secret in ",
            f.config().display()
        )) && run.stderr.contains("does not start with whsec_")
            && run.stderr.contains("(fix: put the platform's secret there"),
        "{}",
        run.stderr
    );

    let f = Folder::to("http://mystore.example/hook");
    let run = f.notify_test().await;
    assert_eq!(run.code, 2);
    assert!(
        run.stderr.contains("config.toml:") && run.stderr.contains("`notify.url`"),
        "{}",
        run.stderr
    );
    // Nothing was sent anywhere: a refusal of the config comes before the network.
    assert!(run.stdout.is_empty());
}

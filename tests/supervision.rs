//! A panic inside a shop's HTTP client, while it holds one of the client's locks: the daemon's
//! retry must not inherit the poisoned lock. Its own binary because it installs a global tracing
//! subscriber that panics (the injected fault) on one event.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing_subscriber::layer::SubscriberExt as _;
use tripletex_sync::checks::{CheckKind, Verdict};
use tripletex_sync::daemon;
use tripletex_sync::status::StatusReport;
use tripletex_sync_fixture::daemon::{Fixture, MAIN};
use tripletex_sync_fixture::poll;

/// The event logged inside the limiter's lock the first time Tripletex's limit is found not above
/// `rate_limit.reserve`.
const FAULTY_EVENT: &str = "rate_limit.reserve_lowered";
static ARMED: AtomicBool = AtomicBool::new(true);
static SEEN: AtomicU32 = AtomicU32::new(0);

/// Panics on the first [`FAULTY_EVENT`]: a fault in the middle of the client's bookkeeping.
struct PanicOnce;

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for PanicOnce {
    fn on_event(&self, event: &tracing::Event<'_>, _: tracing_subscriber::layer::Context<'_, S>) {
        struct Name(bool);
        impl tracing::field::Visit for Name {
            fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
                self.0 |= field.name() == "event" && value == FAULTY_EVENT;
            }
            fn record_debug(&mut self, _: &tracing::field::Field, _: &dyn std::fmt::Debug) {}
        }
        let mut name = Name(false);
        event.record(&mut name);
        if name.0 {
            SEEN.fetch_add(1, Ordering::SeqCst);
            if ARMED.swap(false, Ordering::SeqCst) {
                panic!("injected fault while the limiter is locked");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_inside_the_client_is_not_inherited_by_the_retry() {
    tracing::subscriber::set_global_default(tracing_subscriber::registry().with(PanicOnce))
        .unwrap();
    let f = Fixture::with_main(&MAIN.replace("reserve = 20", "reserve = 5000")).await;
    // A limit at or below the reserve: the limiter lowers its reserve (and logs it) under its lock.
    f.sim.set_rate_limit(1000, Duration::from_secs(10));
    f.add_shop("acme", 1001, "");
    f.sim.add_customers(1001, 1, 10, false);
    let store = f.open_store();
    let state_dir = store.state_dir().to_path_buf();
    let cancel = CancellationToken::new();
    let (_control, rx) = daemon::control::channel(cancel.clone());
    let daemon = tokio::spawn({
        let (path, config, env) = (f.config_path.clone(), f.config(), f.env());
        async move { daemon::run(&path, config, store, env, rx).await }
    });
    let mut failed_first = false;
    let recovered = poll::until_some(
        "the retry to pass, with a client the panic did not poison",
        || {
            let report = StatusReport::read(&state_dir).ok()?;
            let check = report.shops[0].checks.get(CheckKind::CustomerNumbers);
            failed_first |= check.pass_failed && check.summary.contains("injected fault");
            (check.verdict == Verdict::Ok).then(|| check.clone())
        },
    )
    .await;
    cancel.cancel();
    daemon.await.unwrap().unwrap();
    assert!(
        !ARMED.load(Ordering::SeqCst),
        "the fault was never injected"
    );
    assert!(failed_first, "the panicked pass was recorded as failed");
    assert!(!recovered.pass_failed, "{recovered:?}");
    assert!(
        SEEN.load(Ordering::SeqCst) >= 2,
        "the retry's client met the lowered reserve afresh"
    );
}

//! Webhooks in a daemon running in-process: a pushed conflict shown within seconds, push state
//! and the stretched interval, a shop removed on reload losing its subscriptions, a disabled
//! subscription re-enabled; and how these tests start a daemon and read its own log lines.

use super::*;

/// The done-when test of issue 11, in the daemon: with webhooks on, a customer created in
/// Tripletex inside the shop's range shows as `conflict` in status.json within 2 s, with no
/// customer or invoice request after the callback; its deletion clears it the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_shows_a_pushed_conflict_within_seconds() {
    let f = fixture().await;
    let Started {
        store,
        cancel,
        task: daemon,
        log,
        ..
    } = start_daemon(&f).await;
    let keys = keys(&f.config());
    poll::until("acme's subscriptions", || ours(&f, &keys).len() == 4).await;
    let shown = |verdict: Verdict| {
        StatusReport::read(store.state_dir()).is_ok_and(|r| {
            r.shops.iter().any(|s| {
                s.name == "acme" && s.checks.get(CheckKind::CustomerNumbers).verdict == verdict
            })
        })
    };
    poll::until("acme ok in status.json", || shown(Verdict::Ok)).await;
    // Push is healthy: the next pass waits `reconcile_interval` (6 h), not `checks.interval`.
    let next = poll::until_some("the next pass scheduled", || log.event("pass.next")).await;
    assert_eq!(
        (&next["push"], &next["in_seconds"]),
        (&true.into(), &21_600.into()),
        "{next}"
    );
    let push = || acme_push(&store);
    poll::until("push active in status.json", || {
        push().is_some_and(|p| p.active)
    })
    .await;
    assert_eq!(push().unwrap().last_callback_at, None);
    f.sim.clear_request_log();

    // Recorded within 2 s (status.json follows, as fast as its writer's rate limit allows).
    let recorded = |verdict: Verdict| {
        store
            .result("acme", CheckKind::CustomerNumbers)
            .unwrap()
            .is_some_and(|r| r.verdict() == verdict)
    };
    let id = f.sim.add_customer(COMPANY, 10001, false);
    Poll::within(SOON)
        .until("conflict recorded", || recorded(Verdict::Conflict))
        .await;
    poll::until("conflict in status.json", || shown(Verdict::Conflict)).await;
    assert_eq!(push().unwrap().last_callback_at, Some(f.now()));
    let metrics_prom = store.state_dir().join(METRICS_FILE);
    let series = [
        r#"tripletex_sync_push_active{shop="acme"} 1"#.to_owned(),
        // Passes come every 6 h now: staleness alerts count in that.
        "tripletex_sync_check_interval_seconds 21600".to_owned(),
        format!(
            "tripletex_sync_push_last_callback_timestamp_seconds {}",
            f.now().as_second()
        ),
    ];
    poll::until("push in metrics.prom", || {
        std::fs::read_to_string(&metrics_prom).is_ok_and(|t| series.iter().all(|s| t.contains(s)))
    })
    .await;
    f.sim.remove_customer(COMPANY, id);
    Poll::within(SOON)
        .until("ok recorded", || recorded(Verdict::Ok))
        .await;
    poll::until("ok in status.json", || shown(Verdict::Ok)).await;
    assert!(f.data_requests().is_empty(), "{:?}", f.data_requests());

    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

/// A daemon started by [`start_daemon`]: its store, control channel, token, task and log.
pub(crate) struct Started {
    pub(crate) store: Arc<tripletex_sync::store::Store>,
    pub(crate) control: daemon::Controller,
    pub(crate) cancel: CancellationToken,
    pub(crate) task: DaemonTask,
    pub(crate) log: DaemonLog,
}

/// What one daemon of this binary logged. Every daemon runs inside a span naming it, so the
/// shared capture is read apart from other tests' daemons: they need not run one at a time.
pub(crate) struct DaemonLog {
    captured: capture::Captured,
    mark: usize,
    id: u64,
}

impl DaemonLog {
    /// This daemon's events named `name`, in order.
    pub(crate) fn events(&self, name: &str) -> Vec<serde_json::Value> {
        self.captured
            .since(self.mark)
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == name && self.ours(v))
            .collect()
    }

    /// The first of them.
    pub(crate) fn event(&self, name: &str) -> Option<serde_json::Value> {
        self.events(name).into_iter().next()
    }

    fn ours(&self, line: &serde_json::Value) -> bool {
        line["spans"]
            .as_array()
            .is_some_and(|spans| spans.iter().any(|s| s["test_daemon"] == self.id))
    }
}

/// Starts the daemon in-process, its webhooks delivered through the simulator's "proxy"
/// (to the receiver's address, which the control channel tells).
pub(crate) async fn start_daemon(f: &Fixture) -> Started {
    start_daemon_in(f, f.env()).await
}

/// [`start_daemon`] in `env`.
pub(crate) async fn start_daemon_in(f: &Fixture, env: daemon::Environment) -> Started {
    static DAEMONS: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    let id = DAEMONS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let captured = capture::capture_json();
    let mark = captured.mark();
    let d = f.start_daemon_in(env, tracing::info_span!("test", test_daemon = id));
    let listening = d.control.listening(|l| l.webhooks.is_some());
    let receiver = tokio::time::timeout(poll::BOUND, listening)
        .await
        .expect("the receiver listens")
        .webhooks
        .unwrap();
    f.sim.proxy_webhooks(PUBLIC, &format!("http://{receiver}"));
    Started {
        store: d.store,
        control: d.control,
        cancel: d.cancel,
        task: d.task,
        log: DaemonLog { captured, mark, id },
    }
}

/// How many of our subscriptions call `shop`'s path.
fn subscribed(f: &Fixture, keys: &Keys, shop: &str) -> usize {
    let target = keys.target_url(shop);
    f.sim
        .webhook_subscriptions()
        .into_iter()
        .filter(|s| s.auth_header_name.as_deref() == Some(AUTH_HEADER) && s.target_url == target)
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shop_removed_on_reload_loses_its_subscriptions() {
    let f = fixture().await;
    f.add_shop("bolt", 1002, "");
    f.sim.add_customers(1002, 1, 5, false);
    let Started {
        control,
        cancel,
        task: daemon,
        ..
    } = start_daemon(&f).await;
    let keys = keys(&f.config());
    poll::until("both shops subscribed", || {
        subscribed(&f, &keys, "acme") == 4 && subscribed(&f, &keys, "bolt") == 4
    })
    .await;

    std::fs::remove_file(f.path("shops.d/bolt.toml")).unwrap();
    control.send(daemon::Control::Reload);
    poll::until("bolt's subscriptions deleted", || {
        subscribed(&f, &keys, "bolt") == 0
    })
    .await;
    assert_eq!(subscribed(&f, &keys, "acme"), 4, "acme keeps its own");

    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_reenables_a_disabled_subscription_at_the_next_pass() {
    let f = fixture().await;
    let Started {
        store,
        control,
        cancel,
        task: daemon,
        ..
    } = start_daemon(&f).await;
    let keys = keys(&f.config());
    poll::until("acme's subscriptions", || ours(&f, &keys).len() == 4).await;
    let active = || acme_push(&store).is_some_and(|p| p.active);
    poll::until("push active", active).await;

    let disabled = f
        .sim
        .webhook_subscriptions()
        .into_iter()
        .find(|s| {
            s.event == "customer.create" && s.auth_header_name.as_deref() == Some(AUTH_HEADER)
        })
        .unwrap();
    f.sim
        .set_subscription_status(disabled.id, SubscriptionStatus::DisabledTooManyErrors);
    control.send(daemon::Control::PassNowFor("acme".into()));
    poll::until("re-enabled", || {
        ours(&f, &keys)
            .iter()
            .all(|(_, s)| *s == SubscriptionStatus::Active)
    })
    .await;
    assert!(active());

    cancel.cancel();
    daemon.await.unwrap().unwrap();
    spec::assert_conforms(&f.sim.request_log());
}

//! The shop tasks: one per enabled shop, each looping pass → wait (interval ± jitter, or a
//! pass-now trigger: every shop's, or its own) until its cancellation token (a child of the
//! daemon's) fires. Each pass goes through the one pass driver (`driver`). With webhooks on, a
//! recorded pass is followed by a reconcile of the shop's subscriptions, and the task applies
//! the shop's callbacks while it waits.
//!
//! Invariants: a shop has at most one task; a reload restarts a shop only when its file or token
//! (or the shared configuration) changed, so unchanged shops keep their sessions, and a restarted
//! shop keeps its session too (its old task hands its client to the new one, which mints
//! nothing) unless what the session was minted with changed: the shop's key or `company_id`, or
//! the base URL or consumer token ([`World::sessions_carry_to`]); only a session that is not
//! handed over is deleted when its task stops; a pass that panics or fails never ends its task
//! (see `driver` and `supervise`): it is recorded as `error` and retried with backoff, with a
//! fresh client after a panic, and pass-now still reaches the shop; a trigger or callback for a
//! shop without a task is logged at DEBUG and dropped; a callback is applied on its shop's task,
//! so never beside a pass of that shop, and a callback does not move the next pass; a shop
//! removed or disabled by a reload has its webhook subscriptions deleted (best effort, bounded;
//! see `push`).

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument as _;

use super::consumer;
use super::driver::{Driver, Ran};
use super::inbox::{self, Inbox};
use super::push::{self, AfterCallback, UnusableLog};
use super::report::{LastWrite, Update};
use super::stopping::Stopping;
use super::supervise;
use super::watchdog::Heartbeat;
use super::world::{Environment, ShopTokens, World};
use crate::config::ShopConfig;
use crate::secrets::{SecretString, same};
use crate::status::PushStatus;
use crate::store::{SessionRecord, SessionState, Store};
use crate::tripletex::ratelimit::full_jitter;
use crate::tripletex::{Closed, ShopClient};
use crate::webhooks::{Callback, Subscribed};

pub(super) struct Scheduler {
    world: Arc<World>,
    env: Environment,
    store: Arc<Store>,
    gate: Arc<Semaphore>,
    reports: mpsc::UnboundedSender<Update>,
    cancel: CancellationToken,
    tasks: HashMap<String, ShopTask>,
    heartbeat: Arc<Heartbeat>,
    /// The shops' webhook subscriptions, for the receiver (see `push::reconcile`).
    subscribed: Subscribed,
    /// The consumer token's expiry, read by one shop a day (see `consumer`).
    consumer: Arc<consumer::Watch>,
    /// How stopping shops delete their session tokens and record them `revoked`.
    stopping: Arc<Stopping>,
    /// The task recording them; says how many it could not record in time.
    recorder: JoinHandle<usize>,
}

struct ShopTask {
    shop: Arc<ShopConfig>,
    token: SecretString,
    cancel: CancellationToken,
    /// Pass-now requests and webhook callbacks for the task, applied between its passes.
    inbox: Arc<Inbox>,
    /// Set before `cancel` when the task that replaces this one takes over its session.
    hand_over: Arc<AtomicBool>,
    handle: JoinHandle<Stopped>,
}

/// How a shop task ended.
enum Stopped {
    /// It closed its session (see [`Closed`]).
    Closed(Closed),
    /// It handed its client, session and all, to the task that replaces it (boxed: a client is
    /// large, and every task's handle holds room for the result).
    HandedOver(Box<ShopClient>),
}

/// What one shop task owns.
struct ShopLoop {
    driver: Driver,
    /// The session of the task this one replaces, to go on with instead of minting.
    /// Boxed, like the client `passes` holds: a client is 520 bytes, in every shop's task.
    carried: Option<Box<ShopClient>>,
    /// Read once the task is cancelled: hand the client over rather than close its session.
    hand_over: Arc<AtomicBool>,
    reports: mpsc::UnboundedSender<Update>,
    inbox: Arc<Inbox>,
    /// What status.json shows of this shop's push.
    push: PushStatus,
    unusable: UnusableLog,
    subscribed: Subscribed,
    consumer: Arc<consumer::Watch>,
    stopping: Arc<Stopping>,
}

impl Scheduler {
    pub fn new(
        world: World,
        env: Environment,
        store: Arc<Store>,
        reports: mpsc::UnboundedSender<Update>,
        subscribed: Subscribed,
        cancel: CancellationToken,
        last_write: LastWrite,
    ) -> Self {
        let gate = Arc::new(Semaphore::new(world.config.rate_limit.max_concurrent_shops));
        // The HTTP pool keeps as many idle connections as passes run at once.
        let pooled = world.config.rate_limit.max_concurrent_shops;
        let (stopping, recorder) = Stopping::start(
            cancel.clone(),
            store.clone(),
            reports.clone(),
            last_write,
            pooled,
        );
        Self {
            world: Arc::new(world),
            env,
            store,
            gate,
            reports,
            cancel,
            tasks: HashMap::new(),
            heartbeat: Arc::default(),
            subscribed,
            consumer: Arc::default(),
            stopping,
            recorder,
        }
    }

    pub fn len(&self) -> usize {
        self.tasks.len()
    }

    pub fn state_dir(&self) -> &Path {
        self.store.state_dir()
    }

    pub fn env(&self) -> &Environment {
        &self.env
    }

    pub fn world(&self) -> &World {
        &self.world
    }

    /// Which shops are in a pass, since when (the watchdog's view of progress).
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// Starts `shop`'s task; its first pass comes within `checks.jitter`, spreading many shops.
    pub fn start(&mut self, shop: Arc<ShopConfig>, token: SecretString) {
        self.launch(shop, token, None);
    }

    /// Starts `shop`'s task, going on with the session of `carried` (the client of the task it
    /// replaces) if given.
    fn launch(&mut self, shop: Arc<ShopConfig>, token: SecretString, carried: Option<ShopClient>) {
        let cancel = self.cancel.child_token();
        let carried = carried.map(|c| Box::new(c.carry_over(&self.world.api, cancel.clone())));
        let hand_over = Arc::new(AtomicBool::new(false));
        let inbox = Arc::new(Inbox::default());
        let span = tracing::info_span!("shop", shop = %shop.name);
        let task = ShopLoop {
            driver: Driver {
                shop: shop.clone(),
                token: token.clone(),
                world: self.world.clone(),
                env: self.env.clone(),
                store: self.store.clone(),
                gate: self.gate.clone(),
                heartbeat: self.heartbeat.clone(),
                cancel: cancel.clone(),
                settings: self.world.pass_settings(),
            },
            carried,
            hand_over: hand_over.clone(),
            reports: self.reports.clone(),
            inbox: inbox.clone(),
            push: PushStatus::default(),
            unusable: UnusableLog::default(),
            subscribed: self.subscribed.clone(),
            consumer: self.consumer.clone(),
            stopping: self.stopping.clone(),
        };
        let handle = tokio::spawn(task.run().instrument(span));
        let name = shop.name.clone();
        self.tasks.insert(
            name,
            ShopTask {
                shop,
                token,
                cancel,
                inbox,
                hand_over,
                handle,
            },
        );
    }

    fn key_rejected(&self, shop: &str) -> bool {
        matches!(
            self.store.session(shop),
            Ok(Some(SessionRecord {
                state: SessionState::KeyRejected,
                ..
            }))
        )
    }

    pub fn pass_now(&self) {
        tracing::info!(
            event = "daemon.pass_requested",
            "running every shop's pass now"
        );
        self.tasks.values().for_each(|t| t.inbox.request_pass());
    }

    /// Runs `shop`'s pass now, if this daemon runs that shop.
    pub fn pass_now_for(&self, shop: &str) {
        let task = self.tasks.get(shop);
        tracing::debug!(
            event = "daemon.pass_requested",
            shop,
            known = task.is_some()
        );
        task.inspect(|t| t.inbox.request_pass());
    }

    /// Hands a webhook callback to its shop's task.
    pub fn callback(&self, callback: Callback) {
        let Some(task) = self.tasks.get(&callback.shop) else {
            tracing::debug!(event = "webhooks.unknown_shop", shop = %callback.shop, "callback for a shop without a task dropped");
            return;
        };
        if !task.inbox.deliver(callback) {
            let capacity = inbox::CAPACITY;
            tracing::warn!(event = "webhooks.dropped", shop = %task.shop.name, capacity, "callback dropped (the shop's queue is full); the next pass reads it");
        }
    }

    /// Switches to a reloaded configuration; `rebuild` when its shared parts changed.
    pub async fn apply(&mut self, world: World, rebuild: bool, shops: ShopTokens) {
        let push = self.world.keys.is_some();
        let sessions_carry = self.world.sessions_carry_to(&world);
        if rebuild {
            self.gate = Arc::new(Semaphore::new(world.config.rate_limit.max_concurrent_shops));
            self.world = Arc::new(world);
            // The consumer token may be another now: read its expiry again.
            self.consumer = Arc::default();
        }
        let mut old = std::mem::take(&mut self.tasks);
        let mut to_start = Vec::new();
        let mut to_stop = Vec::new();
        for (shop, token) in shops {
            match old.remove(&shop.name) {
                Some(t) if !rebuild && t.shop == shop && same(&t.token, &token) => {
                    // A reload is the operator's "try again" (e.g. after switching on the
                    // Integrations add-on): a rejected shop retries now, not next interval.
                    if self.key_rejected(&shop.name) {
                        t.inbox.request_pass();
                    }
                    self.tasks.insert(shop.name.clone(), t);
                }
                // Only its checks (or shared settings other than the session's) changed: the
                // new task goes on with this one's session.
                Some(t)
                    if sessions_carry
                        && t.shop.company_id == shop.company_id
                        && same(&t.token, &token) =>
                {
                    t.hand_over.store(true, Ordering::Release);
                    to_stop.push(t);
                    to_start.push((shop, token));
                }
                previous => {
                    to_stop.extend(previous);
                    to_start.push((shop, token));
                }
            }
        }
        let (kept, started, removed) = (self.tasks.len(), to_start.len(), old.len());
        // A removed or disabled shop's subscriptions go with it (a restarted shop keeps them).
        let retired: Vec<(Arc<ShopConfig>, SecretString)> = old
            .values()
            .filter(|_| push)
            .map(|t| (t.shop.clone(), t.token.clone()))
            .collect();
        to_stop.extend(old.into_values());
        // Stop them all at once, and only then start replacements: one task per shop at a time.
        to_stop.iter().for_each(|t| t.cancel.cancel());
        let mut carried = HashMap::new();
        for task in to_stop {
            if let Ok(Stopped::HandedOver(client)) = task.handle.await {
                carried.insert(task.shop.name.clone(), client);
            }
        }
        for (shop, token) in retired {
            self.subscribed.forget(&shop.name);
            push::unsubscribe(
                &self.world,
                self.gate.clone(),
                self.cancel.child_token(),
                shop,
                token,
            );
        }
        let sessions_kept = carried.len();
        for (shop, token) in to_start {
            let client = carried.remove(&shop.name).map(|c| *c);
            self.launch(shop, token, client);
        }
        let _ = self.reports.send(Update::Reloaded);
        tracing::info!(
            event = "config.reloaded",
            kept,
            started,
            sessions_kept,
            removed,
            "configuration reloaded"
        );
    }

    /// Waits for every task to end (the daemon's token has been cancelled) and for their deleted
    /// session tokens to be recorded, and says in one event how many tokens were deleted, how
    /// many are left to expire on their own, and how many deleted ones were not recorded in time.
    pub async fn shutdown(self) {
        let (mut revoked, mut kept) = (0usize, 0usize);
        for (_, task) in self.tasks {
            match task.handle.await {
                Ok(Stopped::Closed(Closed::Revoked)) => revoked += 1,
                Ok(Stopped::Closed(Closed::Kept)) => kept += 1,
                Ok(Stopped::Closed(Closed::NoSession) | Stopped::HandedOver(_)) | Err(_) => {}
            }
        }
        let window_ms = self
            .stopping
            .window()
            .map(|w| u64::try_from(w.as_millis()).unwrap_or(u64::MAX));
        // The recorder ends once the last closing side is gone.
        drop(self.stopping);
        let unrecorded = self.recorder.await.unwrap_or(revoked);
        if kept > 0 {
            tracing::warn!(
                event = "shutdown.sessions_kept",
                revoked,
                kept,
                unrecorded,
                window_ms,
                "some session tokens could not be deleted before the stop deadline; they expire on their own"
            );
        } else if unrecorded > 0 {
            tracing::warn!(
                event = "shutdown.sessions_revoked",
                revoked,
                unrecorded,
                window_ms,
                "session tokens deleted; some deletions were not recorded in time (status shows them `revoked`; the next pass mints anew)"
            );
        } else {
            tracing::info!(
                event = "shutdown.sessions_revoked",
                revoked,
                unrecorded,
                window_ms,
                "session tokens deleted"
            );
        }
    }
}

impl ShopLoop {
    /// Passes until cancelled, then hands the client over (when told to) or deletes the session
    /// token (nobody holds it any more; see `stopping`).
    async fn run(mut self) -> Stopped {
        let client = self.passes().await;
        if self.hand_over.load(Ordering::Acquire) {
            return Stopped::HandedOver(client);
        }
        // Boxed for the same reason as a pass.
        let closing = self.stopping.close(&self.driver.shop.name, &client);
        Stopped::Closed(Box::pin(closing).await)
    }

    /// Runs passes until cancelled; returns the client in use then.
    async fn passes(&mut self) -> Box<ShopClient> {
        let carried = self.carried.take();
        let d = &self.driver;
        let mut client = carried.unwrap_or_else(|| Box::new(d.client()));
        let checks = &d.world.config.checks;
        let mut due = Instant::now() + full_jitter(checks.jitter);
        let mut pass_no = 0u64;
        let mut failures = 0u32;
        loop {
            if d.cancel.is_cancelled() {
                return client;
            }
            // Between passes, on this task: never beside a pass of this shop.
            if let Some(callback) = self.inbox.next_callback() {
                let after = Box::pin(push::apply_callback(
                    d,
                    &self.reports,
                    &mut self.push,
                    &mut self.unusable,
                    &callback,
                ))
                .await;
                if after == AfterCallback::PassSoon {
                    due = due.min(Instant::now() + push::PASS_SOON);
                    tracing::debug!(
                        event = "pass.next",
                        in_seconds = due.saturating_duration_since(Instant::now()).as_secs(),
                        soon = true,
                        "next pass brought forward: a callback could not be applied"
                    );
                }
                continue;
            }
            if !self.inbox.take_pass_request() {
                tokio::select! {
                    _ = d.cancel.cancelled() => return client,
                    _ = tokio::time::sleep_until(due) => {}
                    // A callback or a pass request: the top of the loop sees which.
                    () = self.inbox.delivered() => continue,
                }
            }
            // This pass answers every request made before it.
            self.inbox.take_pass_request();
            pass_no += 1;
            // Every future awaited here is boxed, so that what a shop's task holds while it
            // waits for its next pass (most of its life) is the select above, not the largest
            // of them: ~900 bytes a shop instead of ~2.2 KiB (BENCHMARKS.md).
            // Admitted first, so that a shop waiting for the gate (all of them at the start)
            // holds no pass driver yet.
            let Some(permit) = d.admitted().await else {
                return client;
            };
            let wait = match Box::pin(d.run_pass(permit, &mut client, pass_no)).await {
                Ran::Recorded(report) => {
                    let session = report.session.state;
                    let _ = self.reports.send(Update::Pass(report));
                    Box::pin(self.consumer.after_pass(d, &client, session)).await;
                    failures = 0;
                    let push = Box::pin(push::reconcile(d, &client, &self.subscribed)).await;
                    if d.world.keys.is_some() && push != self.push.active {
                        self.push.active = push;
                        let _ = self
                            .reports
                            .send(Update::Push(d.shop.name.clone(), self.push));
                    }
                    let wait = next_wait(push::pass_interval(d, push), checks.jitter);
                    tracing::debug!(
                        event = "pass.next",
                        push,
                        in_seconds = wait.as_secs(),
                        "next pass scheduled"
                    );
                    wait
                }
                Ran::Failed(recorded) => {
                    if let Some(report) = recorded {
                        let _ = self.reports.send(Update::Pass(report));
                    }
                    failures = failures.saturating_add(1);
                    supervise::retry_wait(failures, checks.interval)
                }
                // The daemon asks every shop for a pass once the store writes again.
                Ran::Refused => {
                    let _ = self.reports.send(Update::Refused);
                    failures = failures.saturating_add(1);
                    supervise::retry_wait(failures, checks.interval)
                }
                Ran::Cancelled => return client,
            };
            due = Instant::now() + wait;
        }
    }
}

/// `interval` ± up to `jitter`.
fn next_wait(interval: Duration, jitter: Duration) -> Duration {
    (interval + full_jitter(jitter * 2)).saturating_sub(jitter)
}

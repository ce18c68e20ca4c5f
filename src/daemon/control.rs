//! The daemon's control plane: every trigger from outside the shop tasks is a [`Control`] sent
//! through a [`Controller`] to the daemon's one [`Orders`] receiver. The operator's signals
//! (SIGHUP reload, SIGUSR1 pass now, SIGTERM/SIGINT stop; [`Signals`]), `check` beside the daemon
//! (SIGUSR1 from another process, [`request_pass`]), per-shop triggers such as a webhook
//! callback ([`ShopTriggers`]) and tests all speak it; the shop tasks' own timers are the only
//! other source of passes.
//!
//! Invariants: sending never blocks and never fails, so a signal handler or a callback never
//! waits on the daemon (also while it waits for the database lock); pending orders coalesce (two
//! pass-nows before the first is taken are one pass; a pass of every shop absorbs pending
//! one-shop passes), so what is pending is bounded by the shop count and nothing is dropped; the
//! daemon takes a pending reload before pending passes, so a `check` sent right after
//! `systemctl reload` covers the new shops; [`Control::Stop`] cancels the daemon's one
//! `CancellationToken` at once, never queued behind other orders.
//!
//! The channel also carries where the daemon's endpoints listen once they do ([`Listening`]), so
//! whoever holds a [`Controller`] (a test, an embedding program) learns a port 0's address
//! without reading the log.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::sync::{Notify, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// What the daemon can be asked to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Control {
    /// Re-read the configuration and shops.d (SIGHUP).
    Reload,
    /// Run every shop's pass now (SIGUSR1; `check` beside the daemon sends it).
    PassNow,
    /// Run this shop's pass now (e.g. a webhook callback for it); a shop the daemon does not run
    /// is ignored.
    PassNowFor(String),
    /// Stop: every shop task ends and deletes its session token (SIGTERM, SIGINT).
    Stop,
}

/// Orders sent but not yet taken, merged.
#[derive(Debug, Default)]
struct Pending {
    reload: bool,
    pass_all: bool,
    shops: BTreeSet<String>,
}

/// The addresses the daemon's endpoints are bound to; `None` until (unless) they listen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Listening {
    /// The webhook receiver (`[webhooks] listen`).
    pub webhooks: Option<SocketAddr>,
    /// `/metrics` and `/healthz` (`[metrics] listen`).
    pub metrics: Option<SocketAddr>,
}

struct Shared {
    pending: Mutex<Pending>,
    wake: Notify,
    listening: watch::Sender<Listening>,
}

impl Default for Shared {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            wake: Notify::new(),
            listening: watch::Sender::new(Listening::default()),
        }
    }
}

impl Shared {
    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        // Only plain flags and names live here: a panic while holding it leaves them usable.
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Sends orders to the daemon; cheap to clone.
#[derive(Clone)]
pub struct Controller {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// The daemon's end: takes orders one at a time (see [`Orders::recv`]).
pub struct Orders {
    shared: Arc<Shared>,
    stop: CancellationToken,
}

/// A control channel whose [`Control::Stop`] cancels `stop` (the daemon's one token).
pub fn channel(stop: CancellationToken) -> (Controller, Orders) {
    let shared = Arc::new(Shared::default());
    let controller = Controller {
        shared: shared.clone(),
        stop: stop.clone(),
    };
    (controller, Orders { shared, stop })
}

impl Controller {
    /// Hands `order` to the daemon without waiting (see the module's invariants).
    pub fn send(&self, order: Control) {
        {
            let mut pending = self.shared.pending();
            match order {
                Control::Stop => {
                    drop(pending);
                    self.stop.cancel();
                    return;
                }
                Control::Reload => pending.reload = true,
                Control::PassNow => pending.pass_all = true,
                Control::PassNowFor(shop) => {
                    if !pending.pass_all {
                        pending.shops.insert(shop);
                    }
                }
            }
        }
        self.shared.wake.notify_one();
    }

    /// A sender that can only ask for one shop's pass (what a webhook listener needs).
    pub fn shop_triggers(&self) -> ShopTriggers {
        ShopTriggers(self.clone())
    }

    /// Where the daemon's endpoints listen, once `ready` says they all that will do: e.g.
    /// `|l| l.webhooks.is_some()`. Returns at once if they already do; waits for ever if the
    /// daemon never gets there (bound it with a timeout).
    pub async fn listening(&self, ready: impl FnMut(&Listening) -> bool) -> Listening {
        let mut seen = self.shared.listening.subscribe();
        match seen.wait_for(ready).await {
            Ok(listening) => *listening,
            // The sender lives in `Shared`, which `self` holds.
            Err(_) => unreachable!("the channel outlives its controllers"),
        }
    }
}

/// Asks the daemon for passes of single shops, and nothing else; cheap to clone.
#[derive(Clone)]
pub struct ShopTriggers(Controller);

impl ShopTriggers {
    /// Runs `shop`'s pass as soon as it can (coalesced with any pass of it already pending).
    pub fn pass_now(&self, shop: &str) {
        self.0.send(Control::PassNowFor(shop.to_owned()));
    }
}

impl Orders {
    /// The next order: a pending reload first, then a pass of every shop, then one shop's pass
    /// (in name order). Waits while none is pending, forever once every [`Controller`] is gone
    /// (the daemon then runs until stopped). Never returns [`Control::Stop`]: that is
    /// [`Orders::stop_token`]. Cancel-safe: an order is taken only when returned.
    pub async fn recv(&mut self) -> Control {
        loop {
            if let Some(order) = self.take() {
                return order;
            }
            // A send between `take` and here leaves a permit, so this returns at once.
            self.shared.wake.notified().await;
        }
    }

    fn take(&self) -> Option<Control> {
        let mut pending = self.shared.pending();
        if std::mem::take(&mut pending.reload) {
            return Some(Control::Reload);
        }
        if std::mem::take(&mut pending.pass_all) {
            // Every shop's pass covers the shops asked for one by one.
            pending.shops.clear();
            return Some(Control::PassNow);
        }
        pending.shops.pop_first().map(Control::PassNowFor)
    }

    /// The daemon's one cancellation token, which [`Control::Stop`] cancels.
    pub fn stop_token(&self) -> &CancellationToken {
        &self.stop
    }

    /// Publishes that an endpoint listens (see [`Controller::listening`]).
    pub fn listening_on(&self, update: impl FnOnce(&mut Listening)) {
        self.shared.listening.send_modify(update);
    }

    /// Another sender into this channel, for the daemon's own parts (e.g. a webhook listener).
    pub fn controller(&self) -> Controller {
        Controller {
            shared: self.shared.clone(),
            stop: self.stop.clone(),
        }
    }
}

/// OS signals, installed and waiting to be forwarded as orders.
pub struct Signals {
    term: Signal,
    int: Signal,
    /// SIGHUP and SIGUSR1: the daemon's only; other commands keep their default action.
    hup: Option<Signal>,
    usr1: Option<Signal>,
}

impl Signals {
    /// SIGTERM, SIGINT, SIGHUP and SIGUSR1. Install them before the lock file names our pid:
    /// from then on `check` may send SIGUSR1, whose default action would end the process.
    pub fn daemon() -> std::io::Result<Self> {
        Ok(Self {
            hup: Some(signal(SignalKind::hangup())?),
            usr1: Some(signal(SignalKind::user_defined1())?),
            ..Self::stop_only()?
        })
    }

    /// SIGTERM and SIGINT, for the commands that are not the daemon.
    pub fn stop_only() -> std::io::Result<Self> {
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
            hup: None,
            usr1: None,
        })
    }

    /// Forwards every signal to `control` as its order until a stop signal; the task ends when
    /// the returned guard is dropped.
    pub fn forward(self, control: Controller) -> Forwarding {
        Forwarding(tokio::spawn(self.forward_until_stop(control)))
    }

    async fn forward_until_stop(mut self, control: Controller) {
        let is_daemon = self.hup.is_some();
        loop {
            let order = tokio::select! {
                // When several are pending, stop wins; the order of the rest does not matter,
                // since the daemon takes a reload before a pass.
                biased;
                _ = self.term.recv() => Control::Stop,
                _ = self.int.recv() => Control::Stop,
                Some(()) = recv(&mut self.hup) => Control::Reload,
                Some(()) = recv(&mut self.usr1) => Control::PassNow,
            };
            if order == Control::Stop {
                if is_daemon {
                    tracing::info!(event = "daemon.stopping", "signal received; shutting down");
                }
                control.send(order);
                return;
            }
            control.send(order);
        }
    }
}

/// The next delivery of a signal that may not be installed; pending forever when it is not.
async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}

/// The signal-forwarding task; stops forwarding when dropped.
pub struct Forwarding(JoinHandle<()>);

impl Drop for Forwarding {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Asks the daemon with process id `pid` for a pass of every shop (its SIGUSR1).
pub fn request_pass(pid: u32) -> std::io::Result<()> {
    let pid = i32::try_from(pid).map_err(|_| std::io::Error::other("pid out of range"))?;
    // SAFETY: kill(2) with a plain pid and signal number has no memory effects.
    if unsafe { libc::kill(pid, libc::SIGUSR1) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(orders: &Orders) -> Vec<Control> {
        std::iter::from_fn(|| orders.take()).collect()
    }

    #[test]
    fn pending_orders_coalesce_reload_first() {
        let (control, orders) = channel(CancellationToken::new());
        control.send(Control::PassNowFor("b".into()));
        control.send(Control::PassNowFor("a".into()));
        control.send(Control::PassNowFor("b".into()));
        assert_eq!(
            pending(&orders),
            [
                Control::PassNowFor("a".into()),
                Control::PassNowFor("b".into())
            ]
        );
        control.send(Control::PassNow);
        control.shop_triggers().pass_now("a");
        control.send(Control::Reload);
        control.send(Control::PassNow);
        control.send(Control::Reload);
        assert_eq!(pending(&orders), [Control::Reload, Control::PassNow]);
    }

    #[tokio::test]
    async fn stop_cancels_at_once_and_recv_waits_for_a_send() {
        let stop = CancellationToken::new();
        let (control, mut orders) = channel(stop.clone());
        let waiting = tokio::spawn(async move { orders.recv().await });
        tokio::task::yield_now().await;
        control.send(Control::Stop);
        assert!(stop.is_cancelled());
        assert!(!waiting.is_finished());
        control.send(Control::PassNow);
        assert_eq!(waiting.await.unwrap(), Control::PassNow);
    }
}

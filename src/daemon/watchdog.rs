//! The systemd watchdog, fed only while the scheduler makes progress.
//!
//! Shop tasks mark when their pass starts and ends ([`Heartbeat`]); the daemon's control loop, the
//! loop that starts, reloads and stops the shops, sends `WATCHDOG=1` every half `WATCHDOG_USEC`,
//! but only when no pass has been running longer than [`stall_limit`]. So a wedged control loop
//! (nothing sends) and a wedged pass (the loop withholds the ping) both end in systemd's restart.
//!
//! Invariants: without `WATCHDOG_USEC` (not under systemd, or no `WatchdogSec=`) nothing is sent
//! and the loop never wakes for it; `watchdog.stalled` is logged once per stall, naming the shops,
//! and `watchdog.recovered` when the passes move again.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::time::{Instant, Interval, MissedTickBehavior};

use crate::config::ChecksConfig;

/// When each shop's running pass started.
#[derive(Default)]
pub(super) struct Heartbeat {
    busy: Mutex<HashMap<String, Instant>>,
}

/// Marks a pass as running until dropped (also when the pass is cancelled or fails).
pub(super) struct Busy {
    heartbeat: Arc<Heartbeat>,
    shop: String,
}

impl Heartbeat {
    pub fn pass_started(self: &Arc<Self>, shop: &str) -> Busy {
        self.lock().insert(shop.to_owned(), Instant::now());
        Busy {
            heartbeat: self.clone(),
            shop: shop.to_owned(),
        }
    }

    /// Shops whose pass has run longer than `limit`, sorted.
    pub fn stalled(&self, limit: Duration) -> Vec<String> {
        let now = Instant::now();
        let mut shops: Vec<String> = self
            .lock()
            .iter()
            .filter(|(_, started)| now.duration_since(**started) > limit)
            .map(|(shop, _)| shop.clone())
            .collect();
        shops.sort();
        shops
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Instant>> {
        // A panic elsewhere while holding this map leaves it usable: it holds only instants.
        self.busy.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.heartbeat.lock().remove(&self.shop);
    }
}

/// How long one pass may run before the scheduler counts as wedged: two intervals (with jitter).
/// Every request is bounded by `request_timeout` and every wait by the limiter's bounds, so a
/// healthy pass ends far sooner; one that has not is stuck, and restarting is the cure.
pub(super) fn stall_limit(checks: &ChecksConfig) -> Duration {
    checks
        .interval
        .saturating_add(checks.jitter)
        .saturating_mul(2)
}

/// How often the control loop refreshes [`Health`] while `/healthz` is served.
pub(super) const HEALTH_TICK: Duration = Duration::from_secs(1);

/// What `/healthz` answers: refreshed by the control loop itself, so a wedged loop goes stale
/// (unhealthy after three missed ticks) just as a stalled pass does.
#[derive(Default)]
pub(super) struct Health {
    last: Mutex<Option<(Instant, bool)>>,
}

impl Health {
    pub fn record(&self, heartbeat: &Heartbeat, limit: Duration) {
        let progressing = heartbeat.stalled(limit).is_empty();
        *self.lock() = Some((Instant::now(), progressing));
    }

    pub fn healthy(&self) -> bool {
        matches!(*self.lock(), Some((at, true)) if at.elapsed() < HEALTH_TICK * 3)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(Instant, bool)>> {
        self.last.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The pinging side, driven by the control loop.
pub(super) struct Watchdog {
    ticks: Option<Interval>,
    stalled: bool,
}

impl Watchdog {
    /// Enabled when systemd asked for it (`WATCHDOG_USEC`, and `WATCHDOG_PID` if set is ours).
    pub fn from_process() -> Self {
        let ticks = sd_notify::watchdog_enabled().map(|timeout| {
            // Half the timeout, as sd_watchdog_enabled(3) recommends.
            let mut ticks = tokio::time::interval((timeout / 2).max(Duration::from_millis(10)));
            ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
            ticks
        });
        Self {
            ticks,
            stalled: false,
        }
    }

    /// Resolves when a ping is due; never when the watchdog is off.
    pub async fn due(&mut self) {
        match &mut self.ticks {
            Some(ticks) => {
                ticks.tick().await;
            }
            None => std::future::pending().await,
        }
    }

    /// Pings unless a pass has stalled.
    pub fn beat(&mut self, heartbeat: &Heartbeat, limit: Duration) {
        let stalled = heartbeat.stalled(limit);
        if stalled.is_empty() {
            if self.stalled {
                tracing::info!(event = "watchdog.recovered", "passes are moving again");
                self.stalled = false;
            }
            super::systemd::notify(&[sd_notify::NotifyState::Watchdog]);
        } else if !self.stalled {
            self.stalled = true;
            tracing::error!(
                event = "watchdog.stalled",
                shops = %stalled.join(","),
                limit = %humantime::format_duration(limit),
                "a pass has made no progress for too long; withholding the watchdog ping so systemd restarts the service"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_pass_running_past_the_limit_is_stalled_until_it_ends() {
        let heartbeat = Arc::new(Heartbeat::default());
        let limit = Duration::from_secs(60);
        let acme = heartbeat.pass_started("acme");
        tokio::time::advance(Duration::from_secs(30)).await;
        let bolt = heartbeat.pass_started("bolt");
        assert!(heartbeat.stalled(limit).is_empty());
        tokio::time::advance(Duration::from_secs(31)).await;
        assert_eq!(heartbeat.stalled(limit), ["acme"]);
        tokio::time::advance(Duration::from_secs(30)).await;
        assert_eq!(heartbeat.stalled(limit), ["acme", "bolt"]);
        drop(acme);
        drop(bolt);
        assert!(heartbeat.stalled(limit).is_empty());
    }
}

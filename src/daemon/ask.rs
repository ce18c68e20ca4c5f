//! What `check` beside a running daemon waits for: after asking it for a pass (SIGUSR1), a pass of
//! every shop it is about, recorded in status.json.
//!
//! Invariants: the wait is bounded (`within`) and polls status.json only (the daemon holds the
//! database); it ends early, naming the shop and why, as soon as a shop's pass is recorded as
//! failed (`pass_failed`), as soon as the daemon writes that its store cannot record passes
//! (`store_error`, written after it was asked), or when the daemon does not list a wanted shop
//! after a grace period; a timeout names every shop still without a pass.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::checks::CheckKind;
use crate::status::{ShopStatus, StatusReport};

/// How often status.json is re-read.
const POLL: Duration = Duration::from_millis(250);
/// How long a daemon that just started or reloaded may take to list a shop.
const UNKNOWN_SHOP_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum AskError {
    #[error(
        "the running daemon does not check {0} (added or enabled since it last loaded its configuration): systemctl reload tripletex-sync"
    )]
    NotLoaded(String),
    /// "shop: why" for each shop whose pass failed as a whole.
    #[error("the daemon could not pass {0}")]
    PassFailed(String),
    /// The daemon's state store cannot write (one line naming the folder and the fix).
    #[error("the daemon cannot record passes: {0}")]
    StoreFailing(String),
    #[error("the daemon did not finish a pass of {pending} within {}; latest: {latest} (see its log; tripletex-sync status)", humantime::format_duration(*within))]
    TimedOut {
        pending: String,
        latest: String,
        within: Duration,
    },
}

/// Waits until status.json in `state_dir` shows a pass of every shop in `wanted` recorded at or
/// after `asked`, and returns that status.json.
pub async fn await_pass(
    state_dir: &Path,
    wanted: &[&str],
    asked: Timestamp,
    within: Duration,
) -> Result<StatusReport, AskError> {
    let start = tokio::time::Instant::now();
    let mut latest = None;
    loop {
        if let Ok(report) = StatusReport::read(state_dir) {
            if let Some(e) = report
                .store_error
                .as_ref()
                .filter(|_| report.generated_at >= asked)
            {
                return Err(AskError::StoreFailing(e.clone()));
            }
            let unknown: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|name| !report.shops.iter().any(|s| s.name == *name && s.enabled))
                .collect();
            if !unknown.is_empty() && start.elapsed() >= UNKNOWN_SHOP_GRACE.min(within) {
                return Err(AskError::NotLoaded(unknown.join(", ")));
            }
            let mine = || {
                report
                    .shops
                    .iter()
                    .filter(|s| wanted.contains(&s.name.as_str()))
            };
            let failures: Vec<String> = mine()
                .filter(|s| passed_since(s, asked))
                .filter_map(failure)
                .collect();
            if !failures.is_empty() {
                return Err(AskError::PassFailed(failures.join("; ")));
            }
            if unknown.is_empty() && mine().all(|s| passed_since(s, asked)) {
                return Ok(report);
            }
            latest = Some(report);
        }
        if start.elapsed() >= within {
            let shops = latest.map(|r| r.shops).unwrap_or_default();
            let pending: Vec<&str> = wanted
                .iter()
                .copied()
                .filter(|name| {
                    !shops
                        .iter()
                        .any(|s| s.name == *name && passed_since(s, asked))
                })
                .collect();
            let latest = shops
                .iter()
                .filter(|s| pending.contains(&s.name.as_str()))
                .map(|s| format!("{}: {}", s.name, latest_summary(s)))
                .collect::<Vec<_>>();
            return Err(AskError::TimedOut {
                pending: pending.join(", "),
                latest: if latest.is_empty() {
                    "status.json unreadable or without these shops".to_owned()
                } else {
                    latest.join("; ")
                },
                within,
            });
        }
        tokio::time::sleep(POLL).await;
    }
}

fn passed_since(s: &ShopStatus, asked: Timestamp) -> bool {
    CheckKind::ALL.iter().all(|k| {
        let c = s.checks.get(*k);
        c.disabled || c.checked_at.is_some_and(|t| t >= asked)
    })
}

/// The summary of the shop's first check that is not switched off.
fn latest_summary(s: &ShopStatus) -> &str {
    CheckKind::ALL
        .iter()
        .map(|k| s.checks.get(*k))
        .find(|c| !c.disabled)
        .map_or("all checks disabled", |c| c.summary.as_str())
}

/// "shop: why" when the shop's pass failed as a whole.
fn failure(s: &ShopStatus) -> Option<String> {
    CheckKind::ALL
        .iter()
        .map(|k| s.checks.get(*k))
        .find(|c| c.pass_failed)
        .map(|c| format!("{}: {}", s.name, c.summary))
}

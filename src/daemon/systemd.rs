//! What the daemon tells systemd through `sd_notify`: `READY=1`, `RELOADING=1`, `STOPPING=1`,
//! `STATUS=`, `WATCHDOG=1`, `EXTEND_TIMEOUT_USEC=`.
//!
//! Invariant: outside systemd (`NOTIFY_SOCKET` unset) every call is a no-op, and a failed send is
//! never an error: the daemon works the same whether anyone listens.

/// Sends `state` to systemd, if it listens.
pub(super) fn notify(state: &[sd_notify::NotifyState]) {
    let _ = sd_notify::notify(state);
}

/// `RELOADING=1`, with the monotonic time systemd's `Type=notify-reload` asks for.
pub(super) fn notify_reloading() {
    match sd_notify::NotifyState::monotonic_usec_now() {
        Ok(now) => notify(&[sd_notify::NotifyState::Reloading, now]),
        Err(_) => notify(&[sd_notify::NotifyState::Reloading]),
    }
}

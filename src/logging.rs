//! Where log events go and how they look: text, JSON or journald's native protocol, chosen once at
//! start-up.
//!
//! Invariants: logs never go to stdout (it is data for `--json`); text carries ANSI colour codes
//! only when stderr is a terminal and `NO_COLOR` is unset or empty; under systemd with stderr
//! connected to the journal (`JOURNAL_STREAM` names stderr's device and inode) `auto` logs natively
//! to journald, where the level is the syslog priority (error 3, warn 4, info 6, debug/trace 7) and every event and span field is a journal field
//! under its upper-cased name (`event` → `EVENT`, `shop` → `SHOP`); the default filter shows this
//! service's events at info and other crates' only at warn, and `RUST_LOG` replaces it; `log`
//! crate records (sled, rustls) are routed into the same subscriber.

use std::ffi::OsStr;
use std::io::IsTerminal as _;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::util::SubscriberInitExt as _;

/// Our own events at info, dependencies (sled, hyper, reqwest, rustls) only at warn.
pub const DEFAULT_FILTER: &str = "tripletex_sync=info,warn";

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// journald when stderr is connected to the journal, else text.
    Auto,
    Text,
    /// One JSON object a line, event fields at the top level.
    Json,
    /// journald's native protocol: priorities and fields (EVENT, SHOP, …).
    Journald,
}

/// What `auto` became, and whether the journal could be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    Text { color: bool },
    Json,
    Journald,
}

#[derive(Debug, thiserror::Error)]
pub enum LoggingError {
    #[error("a global tracing subscriber is already installed")]
    AlreadyInstalled,
}

/// Decides the output from the environment as given (the process's in [`init`]).
/// `journal_stream` is `$JOURNAL_STREAM`; `stderr_id` is stderr's (device, inode).
pub fn choose(
    format: LogFormat,
    journal_stream: Option<&OsStr>,
    stderr_id: Option<(u64, u64)>,
    stderr_is_terminal: bool,
    no_color: Option<&OsStr>,
) -> Output {
    let color = stderr_is_terminal && no_color.is_none_or(|v| v.is_empty());
    match format {
        LogFormat::Text => Output::Text { color },
        LogFormat::Json => Output::Json,
        LogFormat::Journald => Output::Journald,
        LogFormat::Auto => {
            let under_journal = journal_stream
                .and_then(parse_journal_stream)
                .is_some_and(|id| Some(id) == stderr_id);
            if under_journal {
                Output::Journald
            } else {
                Output::Text { color }
            }
        }
    }
}

/// `JOURNAL_STREAM` is "DEVICE:INODE", both decimal (systemd.exec(5)).
fn parse_journal_stream(value: &OsStr) -> Option<(u64, u64)> {
    let (dev, ino) = value.to_str()?.split_once(':')?;
    Some((dev.parse().ok()?, ino.parse().ok()?))
}

/// stderr's (device, inode), as systemd compares them.
fn stderr_id() -> Option<(u64, u64)> {
    use std::os::unix::fs::MetadataExt as _;
    let meta = std::fs::metadata("/proc/self/fd/2").ok()?;
    Some((meta.dev(), meta.ino()))
}

/// The filter: `RUST_LOG` when set and valid, else [`DEFAULT_FILTER`].
pub fn filter() -> EnvFilter {
    EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(DEFAULT_FILTER))
}

/// Installs the global subscriber for `format` and returns what it writes. A journal that cannot
/// be reached falls back to text on stderr (with a warning), so no log is lost.
pub fn init(format: LogFormat) -> Result<Output, LoggingError> {
    let chosen = choose(
        format,
        std::env::var_os("JOURNAL_STREAM").as_deref(),
        stderr_id(),
        std::io::stderr().is_terminal(),
        std::env::var_os("NO_COLOR").as_deref(),
    );
    let registry = tracing_subscriber::registry().with(filter());
    let text = |color| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_ansi(color)
    };
    let installed = match chosen {
        Output::Text { color } => registry.with(text(color)).try_init(),
        Output::Json => registry
            .with(
                tracing_subscriber::fmt::layer()
                    .with_writer(std::io::stderr)
                    .with_ansi(false)
                    .json()
                    .flatten_event(true),
            )
            .try_init(),
        Output::Journald => match tracing_journald::layer() {
            // No prefix: `event` becomes EVENT, not F_EVENT, so `journalctl EVENT=…` works.
            Ok(layer) => registry
                .with(
                    layer
                        .with_field_prefix(None)
                        .with_priority_mappings(syslog_priorities()),
                )
                .try_init(),
            Err(e) => {
                registry
                    .with(text(false))
                    .try_init()
                    .map_err(|_| LoggingError::AlreadyInstalled)?;
                tracing::warn!(
                    event = "logging.journald_unavailable",
                    error = %e,
                    "cannot reach journald; logging text to stderr"
                );
                return Ok(Output::Text { color: false });
            }
        },
    };
    installed.map_err(|_| LoggingError::AlreadyInstalled)?;
    Ok(chosen)
}

/// syslog's meaning of the levels (the crate's default puts info at notice): `journalctl -p info`
/// shows our info events and `-p warning` exactly WARN and ERROR.
fn syslog_priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn os(s: &str) -> Option<&OsStr> {
        Some(OsStr::new(s))
    }

    #[test]
    fn auto_is_journald_only_when_stderr_is_the_journal_stream() {
        let stderr = Some((27, 4711));
        let auto = |stream, id| choose(LogFormat::Auto, stream, id, false, None);
        assert_eq!(auto(os("27:4711"), stderr), Output::Journald);
        // Inherited by a child whose stderr was redirected: not the journal any more.
        assert_eq!(auto(os("27:4712"), stderr), Output::Text { color: false });
        assert_eq!(auto(None, stderr), Output::Text { color: false });
        assert_eq!(auto(os("garbage"), stderr), Output::Text { color: false });
        assert_eq!(auto(os("27:4711"), None), Output::Text { color: false });
    }

    #[test]
    fn colour_only_on_a_terminal_without_no_color() {
        let text = |tty, no_color| choose(LogFormat::Text, None, None, tty, no_color);
        assert_eq!(text(false, None), Output::Text { color: false });
        assert_eq!(text(true, None), Output::Text { color: true });
        assert_eq!(text(true, os("1")), Output::Text { color: false });
        // NO_COLOR="" counts as unset (no-color.org).
        assert_eq!(text(true, os("")), Output::Text { color: true });
        assert_eq!(
            choose(LogFormat::Json, os("1:2"), Some((1, 2)), true, None),
            Output::Json
        );
    }

    #[test]
    fn the_default_filter_parses() {
        EnvFilter::try_new(DEFAULT_FILTER).unwrap();
    }
}

//! The `status` command: what status.json says, whatever the shop files say, for a terminal,
//! a script (`--problems`) or JSON.
//!
//! Invariants: `status` never writes and never takes the database; a shops.d that does not load
//! costs one warning line, never the report (the daemon runs on with the shops it has, and
//! status.json is what it last wrote, shown unaligned); only a main file that does not load stops
//! it (without it there is no state_dir); the default view fits `COLUMNS`, else the terminal's
//! width when stdout is one, else 80 columns.

use std::path::{Path, PathBuf};

use jiff::Timestamp;

use super::StatusReport;
use super::table::View;
use crate::config::{Config, ConfigError};

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Request {
    pub json: bool,
    /// The full table instead of one line per check.
    pub wide: bool,
    /// Only what needs attention.
    pub problems: bool,
    /// Only these shops (none: every shop).
    pub shops: Vec<String>,
}

/// What `status` prints.
#[derive(Debug)]
pub struct Shown {
    /// For stdout.
    pub out: String,
    /// For stderr, one line each.
    pub notes: Vec<String>,
    /// Some shown check needs attention, or a shop file does not load (`--problems` exits 1).
    pub problems: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot read {}: {cause} (fix: {})", path.display(), read_fix(cause))]
    Read {
        path: PathBuf,
        cause: std::io::Error,
    },
    #[error("no shop named {name:?} in {} (fix: name one it lists: {known})", path.display())]
    UnknownShop {
        name: String,
        path: PathBuf,
        known: String,
    },
}

fn read_fix(cause: &std::io::Error) -> &'static str {
    match cause.kind() {
        std::io::ErrorKind::PermissionDenied => {
            "run as the service user or a member of its group (status.json is 0640)"
        }
        _ => "the daemon or `check` rewrites it after its next pass",
    }
}

/// `status`: reads status.json and renders what `request` asks for.
pub fn show(config_path: &Path, request: &Request) -> Result<Shown, StatusError> {
    let (config, broken) = Config::load_main_then_shops(config_path)?;
    let mut notes = Vec::new();
    if let Some(e) = &broken {
        notes.push(format!(
            "warning: shops.d does not load, so this is status.json as last written: {e}"
        ));
    }
    let path = StatusReport::path(&config.state_dir);
    let now = Timestamp::now();
    let mut report = match StatusReport::read(&config.state_dir) {
        // Without the shop files there is nothing to line it up with.
        Ok(report) if broken.is_some() => report,
        Ok(report) => report.aligned_to(&config),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            notes.push(format!(
                "nothing recorded yet ({} does not exist: the daemon or `check` writes it)",
                path.display()
            ));
            StatusReport::collect(None, &config, now).expect("no store, no errors")
        }
        Err(cause) => return Err(StatusError::Read { path, cause }),
    };
    if !request.shops.is_empty() {
        if let Some(name) = request
            .shops
            .iter()
            .find(|n| !report.shops.iter().any(|s| &s.name == *n))
        {
            let known: Vec<&str> = report.shops.iter().map(|s| s.name.as_str()).collect();
            return Err(StatusError::UnknownShop {
                name: name.clone(),
                path,
                known: known.join(", "),
            });
        }
        report.shops.retain(|s| request.shops.contains(&s.name));
    }
    let view = View {
        problems_only: request.problems,
        ..View::for_terminal(&config, now)
    };
    let problems = broken.is_some() || report.has_problems(&view);
    // The default view drops lines itself, and counts what it drops in its closing line.
    if request.problems && (request.json || request.wide) {
        report.retain_problems(&view);
    }
    let out = if request.json {
        let mut json = serde_json::to_string_pretty(&report).expect("status serializes");
        json.push('\n');
        json
    } else if request.wide {
        report.table()
    } else {
        report.compact(&view)
    };
    Ok(Shown {
        out,
        notes,
        problems,
    })
}

impl View {
    /// Every line, judged at `now` by `config`'s intervals, fitted to this process's terminal.
    pub fn for_terminal(config: &Config, now: Timestamp) -> Self {
        Self {
            now,
            stale_after: stale_after(config),
            width: terminal_width(),
            problems_only: false,
        }
    }
}

/// Three pass intervals, as in the alert rule (passes come every `reconcile_interval` while
/// webhooks are on, when that is longer).
pub fn stale_after(config: &Config) -> std::time::Duration {
    let interval = config.checks.interval;
    let interval = config
        .webhooks
        .as_ref()
        .map_or(interval, |w| w.reconcile_interval.max(interval));
    interval * 3
}

/// `COLUMNS` when set, else the terminal's width when stdout is one, else 80.
pub fn terminal_width() -> usize {
    const DEFAULT: usize = 80;
    if let Some(columns) = std::env::var("COLUMNS")
        .ok()
        .and_then(|c| c.trim().parse().ok())
    {
        return if columns > 0 { columns } else { DEFAULT };
    }
    // SAFETY: an all-zero winsize is a valid value of this plain C struct.
    let mut size: libc::winsize = unsafe { std::mem::zeroed() };
    // SAFETY: TIOCGWINSZ writes one winsize through the pointer, which outlives the call; on
    // anything but a terminal it fails (ENOTTY) and writes nothing.
    let ok = unsafe { libc::ioctl(libc::STDOUT_FILENO, libc::TIOCGWINSZ, &mut size) } == 0;
    if ok && size.ws_col > 0 {
        usize::from(size.ws_col)
    } else {
        DEFAULT
    }
}

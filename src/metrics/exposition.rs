//! The two text formats and the textfile.
//!
//! `prometheus-client` writes OpenMetrics, where a counter family `x` has samples `x_total` and
//! the text ends in `# EOF`. node_exporter's textfile collector and `promtool check metrics` read
//! the older Prometheus text format, where the family is named like its samples. The conversion
//! renames counter families and drops the OpenMetrics-only lines; samples pass unchanged.
//! Invariant: `metrics.prom` is replaced atomically (temp file in the same folder, fsync, rename),
//! so the collector never reads half a file.

use std::collections::HashSet;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

pub const METRICS_FILE: &str = "metrics.prom";

pub(super) fn to_prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.strip_suffix(" counter"))
        .collect();
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        let renamed = ["# HELP ", "# TYPE "].iter().find_map(|prefix| {
            let rest = line.strip_prefix(prefix)?;
            let (name, tail) = rest.split_once(' ')?;
            counters
                .contains(name)
                .then(|| format!("{prefix}{name}_total {tail}"))
        });
        match renamed {
            Some(line) => out.push_str(&line),
            None => out.push_str(line),
        }
        out.push('\n');
    }
    out
}

/// Replaces `dir/metrics.prom` with `text` (mode 0640, like status.json).
pub fn write_textfile(dir: &Path, text: &str) -> std::io::Result<()> {
    let path = dir.join(METRICS_FILE);
    let tmp: PathBuf = dir.join(format!(".{METRICS_FILE}.tmp"));
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    // `mode` applies only when the file is created; an older temp file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::rename(&tmp, &path)
}

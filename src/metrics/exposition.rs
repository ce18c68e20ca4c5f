//! The two text formats and the textfile.
//!
//! `prometheus-client` writes OpenMetrics, where a counter family `x` has samples `x_total` and
//! the text ends in `# EOF`. node_exporter's textfile collector and `promtool check metrics` read
//! the older Prometheus text format, where the family is named like its samples. The conversion
//! renames counter families and drops the OpenMetrics-only lines; samples pass unchanged.
//! Invariant: `metrics.prom` is replaced atomically (temp file in the same folder, fsync, rename),
//! so the collector never reads half a file; a write that fails removes its temp file.

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use super::shops::{Format, Snapshot};

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

/// One exposition in the Prometheus text format, as of when it was taken: the registry's
/// families as text, then every shop's lines, written out without being joined into one string.
pub struct Exposition {
    pub(super) head: String,
    pub(super) shops: Snapshot,
}

impl Exposition {
    pub fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        out.write_all(self.head.as_bytes())?;
        self.shops.write_to(out, Format::Prometheus)
    }

    /// The whole text, for a scrape's answer.
    pub fn into_text(self) -> String {
        let mut out = Vec::with_capacity(self.head.len() + self.shops.len());
        self.write_to(&mut out)
            .expect("writing to a Vec cannot fail");
        String::from_utf8(out).expect("every part is text")
    }
}

/// Replaces `dir/metrics.prom` with what `fill` writes (mode 0640, like status.json), through a
/// buffer: at 100 000 shops it is 54 MB, never held in memory whole.
pub fn write_textfile(
    dir: &Path,
    fill: impl FnOnce(&mut BufWriter<File>) -> std::io::Result<()>,
) -> std::io::Result<()> {
    let path = dir.join(METRICS_FILE);
    let tmp: PathBuf = dir.join(format!(".{METRICS_FILE}.tmp"));
    let file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o640)
        .open(&tmp)?;
    // `mode` applies only when the file is created; an older temp file keeps its own.
    file.set_permissions(std::fs::Permissions::from_mode(0o640))?;
    let written = (|| {
        let mut out = BufWriter::with_capacity(WRITE_BUFFER, file);
        fill(&mut out)?;
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    if written.is_err() {
        // A half-written temp file would hold space a full file system needs back.
        let _ = std::fs::remove_file(&tmp);
    }
    written
}

const WRITE_BUFFER: usize = 256 * 1024;

//! The shipped units pass `systemd-analyze verify` and keep `systemd-analyze security` exposure at
//! or below 2.0. Where systemd's tools are absent, says so and skips.

use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_tripletex-sync");
const UNITS: [&str; 2] = ["tripletex-sync.service", "tripletex-sync@.service"];
const MAX_EXPOSURE: f64 = 2.0;

fn have_systemd_analyze() -> bool {
    Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

/// The unit as shipped, with the binary path pointed at the one just built (verify checks that
/// `ExecStart=` exists). A template is checked as an instance of it.
fn staged(dir: &Path, unit: &str) -> std::path::PathBuf {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("systemd")
            .join(unit),
    )
    .unwrap();
    assert!(
        text.contains("/usr/bin/tripletex-sync "),
        "{unit} runs the packaged binary"
    );
    let name = unit.replace("@.", "@0.");
    let path = dir.join(name);
    std::fs::write(
        &path,
        text.replace("/usr/bin/tripletex-sync ", &format!("{BIN} ")),
    )
    .unwrap();
    path
}

#[test]
fn units_verify_and_stay_hardened() {
    if !have_systemd_analyze() {
        eprintln!("SKIPPED: systemd-analyze not found (Debian/Ubuntu: apt-get install systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    for unit in UNITS {
        let path = staged(dir.path(), unit);
        let verify = Command::new("systemd-analyze")
            .arg("verify")
            .arg(&path)
            .output()
            .unwrap();
        let complaints = String::from_utf8_lossy(&verify.stderr);
        assert!(
            verify.status.success() && !complaints.contains(&*path.to_string_lossy()),
            "systemd-analyze verify {unit}: {complaints}"
        );

        let security = Command::new("systemd-analyze")
            .args(["security", "--offline=true", "--no-pager"])
            .arg(&path)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&security.stdout);
        let exposure: f64 = out
            .lines()
            .find_map(|l| l.split("Overall exposure level for ").nth(1))
            .and_then(|rest| rest.split(": ").nth(1))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "no exposure level from systemd-analyze security {unit}: {out}{}",
                    String::from_utf8_lossy(&security.stderr)
                )
            });
        assert!(
            exposure <= MAX_EXPOSURE,
            "{unit}: exposure {exposure} > {MAX_EXPOSURE}"
        );
    }
}

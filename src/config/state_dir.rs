//! `state_dir` rules, and the preflight `validate`, `check` and `run` pass before anything touches
//! `state_dir`.
//!
//! [`resolve_state_dir`] (part of every load) makes the path absolute and lexically clean and
//! refuses `/` and system folders; [`apart_from`] refuses the main file's folder, shops_dir and
//! their parents. [`Config::preflight`] adds what depends on the machine and the
//! user: the folder (or, before the first run, its parent) exists, is a directory, is owned by and
//! writable by the running user; and every token it will need is readable. So a `check` with a
//! missing token refuses before it creates `db/` or the lock file.

use std::os::unix::fs::MetadataExt as _;
use std::path::{Component, Path, PathBuf};

use super::{Config, ConfigError, resolve};

/// Folders that hold the system, or many services' state: never a state_dir themselves.
const SYSTEM_FOLDERS: &[&str] = &[
    "/",
    "/bin",
    "/boot",
    "/dev",
    "/etc",
    "/home",
    "/lib",
    "/lib32",
    "/lib64",
    "/media",
    "/mnt",
    "/opt",
    "/proc",
    "/root",
    "/run",
    "/sbin",
    "/srv",
    "/sys",
    "/tmp",
    "/usr",
    "/usr/bin",
    "/usr/lib",
    "/usr/local",
    "/usr/sbin",
    "/usr/share",
    "/var",
    "/var/cache",
    "/var/lib",
    "/var/log",
    "/var/run",
    "/var/spool",
    "/var/tmp",
];
/// Kernel and device trees: nothing under them is a folder of ours.
const PSEUDO_TREES: &[&str] = &["/proc", "/sys", "/dev"];

const FIX: &str = "use a folder of its own, e.g. /var/lib/tripletex-sync";

/// `value` from the main file → an absolute, lexically normal path that is not a system folder.
pub(super) fn resolve_state_dir(base: &Path, value: &str) -> Result<PathBuf, (String, String)> {
    if value.trim().is_empty() {
        return Err(("is empty".into(), FIX.into()));
    }
    let joined = resolve(base, value);
    let absolute = std::path::absolute(&joined).map_err(|e| {
        (
            format!("{} cannot be made absolute: {}", joined.display(), e.kind()),
            FIX.to_owned(),
        )
    })?;
    let path = normalize(&absolute);
    refuse_system(&path)?;
    Ok(path)
}

fn refuse_system(path: &Path) -> Result<(), (String, String)> {
    if SYSTEM_FOLDERS.iter().any(|s| path == Path::new(s)) {
        return Err((
            format!("{} is a system folder", path.display()),
            FIX.to_owned(),
        ));
    }
    if PSEUDO_TREES.iter().any(|t| path.starts_with(t)) {
        return Err((
            format!("{} is inside a kernel or device tree", path.display()),
            FIX.to_owned(),
        ));
    }
    Ok(())
}

/// Refuses a state_dir that is, or holds, one of `folders` (the main file's folder, shops_dir):
/// the database and lock would sit among the configuration, and `state_dir = "."` is more likely
/// a slip than a plan. Compared as written and, where both exist, through symlinks.
pub(super) fn apart_from(
    state_dir: &Path,
    folders: &[(&str, &Path)],
) -> Result<(), (String, String)> {
    for (what, folder) in folders {
        if !within(folder, state_dir) {
            continue;
        }
        let problem = if within(state_dir, folder) {
            format!("{} is {what}", state_dir.display())
        } else {
            format!(
                "{} holds {what} ({})",
                state_dir.display(),
                folder.display()
            )
        };
        return Err((
            format!("{problem}: the database and lock file must not sit among the configuration"),
            "give it a folder of its own outside the configuration, e.g. /var/lib/tripletex-sync"
                .into(),
        ));
    }
    Ok(())
}

/// Whether `inner` is `outer` or inside it, lexically or (when both exist) through symlinks.
pub(super) fn within(inner: &Path, outer: &Path) -> bool {
    let lexical = |p: &Path| std::path::absolute(p).map(|p| normalize(&p));
    let same = |a: std::io::Result<PathBuf>, b: std::io::Result<PathBuf>| match (a, b) {
        (Ok(a), Ok(b)) => a.starts_with(b),
        _ => false,
    };
    same(lexical(inner), lexical(outer))
        || same(std::fs::canonicalize(inner), std::fs::canonicalize(outer))
}

/// Drops `.` and resolves `..` without touching the disk (the folder may not exist yet).
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

/// What the running user must find at `path` to use it as state_dir.
fn usable(path: &Path) -> Result<(), (String, String)> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    match std::fs::metadata(path) {
        Ok(meta) => {
            if !meta.is_dir() {
                return Err((
                    format!("{} exists and is not a directory", path.display()),
                    format!("move it away, or point state_dir at a folder ({FIX})"),
                ));
            }
            // A symlinked state_dir must not lead into a system folder either.
            if let Ok(real) = std::fs::canonicalize(path) {
                refuse_system(&real)?;
            }
            if meta.uid() != uid {
                return Err((
                    format!(
                        "{} belongs to uid {}, not to the running user (uid {uid})",
                        path.display(),
                        meta.uid()
                    ),
                    "run as the service user (sudo -u tripletex-sync …), or chown the folder to it"
                        .into(),
                ));
            }
            writable(path)
        }
        Err(e)
            if e.kind() == std::io::ErrorKind::NotFound
                && std::fs::symlink_metadata(path).is_ok() =>
        {
            Err((
                format!(
                    "{} is a symlink whose target does not exist",
                    path.display()
                ),
                format!("create the folder it points to, or remove the symlink ({FIX})"),
            ))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            // Created on first use: its parent must exist and take it.
            let parent = path.parent().unwrap_or(Path::new("/"));
            match std::fs::metadata(parent) {
                Ok(meta) if meta.is_dir() => writable(parent),
                Ok(_) => Err((
                    format!("its parent {} is not a directory", parent.display()),
                    FIX.to_owned(),
                )),
                Err(e) => Err((
                    format!(
                        "its parent {} cannot be used: {}",
                        parent.display(),
                        e.kind()
                    ),
                    format!("create {} first", parent.display()),
                )),
            }
        }
        Err(e) => Err((
            format!("{} cannot be used: {}", path.display(), e.kind()),
            FIX.to_owned(),
        )),
    }
}

fn writable(dir: &Path) -> Result<(), (String, String)> {
    let c = std::ffi::CString::new(dir.as_os_str().as_encoded_bytes()).map_err(|_| {
        (
            format!("{} contains a NUL byte", dir.display()),
            FIX.to_owned(),
        )
    })?;
    // SAFETY: a valid NUL-terminated path; access(2) only reads it.
    if unsafe { libc::access(c.as_ptr(), libc::W_OK | libc::X_OK) } != 0 {
        return Err((
            format!("{} is not writable by the running user", dir.display()),
            "run as the service user, or fix the folder's owner and mode".into(),
        ));
    }
    Ok(())
}

impl Config {
    /// Everything `validate`, `check` and `run` need before they create or lock anything in
    /// state_dir: state_dir itself, the consumer token, the webhook secret (when webhooks are
    /// on), the notify secret and its format (when notify is on), and the token of every shop
    /// (`all_shops`) or of every enabled shop. Every problem is listed, not just the first.
    pub fn preflight(&self, credentials_dir: Option<&Path>, all_shops: bool) -> Vec<ConfigError> {
        let mut problems = Vec::new();
        if let Err((problem, fix)) = usable(&self.state_dir) {
            problems.push(ConfigError::new(
                &self.source,
                Some("state_dir"),
                problem,
                fix,
            ));
        }
        if let Err(e) = self.tripletex.consumer_token.load_with(credentials_dir) {
            problems.push(e);
        }
        if let Some(Err(e)) = self
            .webhooks
            .as_ref()
            .map(|w| w.load_secret(credentials_dir))
        {
            problems.push(e);
        }
        if let Some(Err(e)) = self.notify.as_ref().map(|n| n.load_signer(credentials_dir)) {
            problems.push(e);
        }
        for shop in self.shops.iter().filter(|s| all_shops || s.enabled) {
            if let Err(e) = shop.employee_token.load_with(credentials_dir) {
                problems.push(e);
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(value: &str) -> String {
        resolve_state_dir(Path::new("/etc/tripletex-sync"), value)
            .unwrap_err()
            .0
    }

    #[test]
    fn system_folders_are_refused_however_spelled() {
        for bad in [
            "/",
            "/etc",
            "/var/",
            "/tmp",
            "/usr/./",
            "/var/lib/x/..",
            "../..",
        ] {
            assert!(refused(bad).contains("system folder"), "{bad}");
        }
        assert!(refused("/proc/1").contains("kernel"));
        assert!(refused("/dev/shm/x").contains("kernel"));
        assert_eq!(
            resolve_state_dir(Path::new("/etc/tripletex-sync"), "../../var/lib/ts").unwrap(),
            Path::new("/var/lib/ts")
        );
        assert!(refused("  ").contains("empty"));
    }

    #[test]
    fn a_relative_config_path_gives_an_absolute_state_dir() {
        let p = resolve_state_dir(Path::new("."), "state").unwrap();
        assert!(p.is_absolute() && p.ends_with("state"), "{}", p.display());
    }

    #[test]
    fn the_folder_or_its_parent_must_be_usable() {
        let dir = tempfile::tempdir().unwrap();
        assert!(usable(dir.path()).is_ok());
        assert!(usable(&dir.path().join("new")).is_ok());
        let e = usable(&dir.path().join("no/such")).unwrap_err().0;
        assert!(e.contains("parent") && e.contains("not found"), "{e}");
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(usable(&file).unwrap_err().0.contains("not a directory"));
        assert!(
            usable(&file.join("x"))
                .unwrap_err()
                .0
                .contains("not a directory")
        );
        let dangling = dir.path().join("dangling");
        std::os::unix::fs::symlink(dir.path().join("nowhere"), &dangling).unwrap();
        assert!(
            usable(&dangling)
                .unwrap_err()
                .0
                .contains("symlink whose target")
        );
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            let foreign = dir.path().join("foreign");
            std::fs::create_dir(&foreign).unwrap();
            std::os::unix::fs::chown(&foreign, Some(65534), None).unwrap();
            let e = usable(&foreign).unwrap_err().0;
            assert!(e.contains("belongs to uid 65534"), "{e}");
        }
        let link = dir.path().join("link");
        std::os::unix::fs::symlink("/etc", &link).unwrap();
        assert!(usable(&link).unwrap_err().0.contains("system folder"));
    }
}

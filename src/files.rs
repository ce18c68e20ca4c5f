//! Reading the files an operator points us at (main file, shop files, token files): regular files
//! only, never blocking, never unbounded. Below `config` and `secrets`, which both read through it
//! and phrase its [`FileProblem`]s in their own errors.
//!
//! A path may be a symlink to a regular file. Anything else (directory, FIFO, socket, device,
//! dangling symlink, symlink loop) is refused with a [`FileProblem`] saying what it is, before it
//! is opened. The open itself is non-blocking and the opened descriptor is checked again (fstat),
//! so a file swapped for a FIFO in between cannot hang a `validate` or a reload.

use std::fmt;
use std::fs::{File, Metadata, OpenOptions};
use std::io::Read as _;
use std::os::unix::fs::{FileTypeExt as _, OpenOptionsExt as _, PermissionsExt as _};
use std::path::Path;

/// Why a file could not be read, phrased to follow the path: "FILE is a FIFO …".
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FileProblem {
    Missing,
    Dangling,
    Loop,
    NotRegular {
        what: &'static str,
        via_symlink: bool,
    },
    TooLarge {
        max: u64,
    },
    NotText,
    Io(std::io::ErrorKind),
}

impl fmt::Display for FileProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing => write!(f, "does not exist"),
            Self::Dangling => write!(f, "is a symlink whose target does not exist"),
            Self::Loop => write!(f, "is a symlink loop"),
            Self::NotRegular { what, via_symlink } => {
                let link = if *via_symlink { "a symlink to " } else { "" };
                write!(f, "is {link}{what}, not a regular file")
            }
            Self::TooLarge { max } => write!(f, "is larger than {max} bytes"),
            Self::NotText => write!(f, "is not UTF-8 text"),
            Self::Io(kind) => write!(f, "cannot be read: {kind}"),
        }
    }
}

/// A file's text and its permission bits (from the opened descriptor).
pub struct Contents {
    pub text: String,
    pub mode: u32,
}

/// Reads `path` (following symlinks) if it is a regular file of at most `max` bytes.
pub fn read_regular(path: &Path, max: u64) -> Result<Contents, FileProblem> {
    let via_symlink = std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink());
    let meta = std::fs::metadata(path).map_err(|e| io_problem(&e, via_symlink))?;
    regular(&meta, via_symlink)?;
    if meta.len() > max {
        return Err(FileProblem::TooLarge { max });
    }
    // O_NONBLOCK: should the path have become a FIFO since the check, open returns at once.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
        .open(path)
        .map_err(|e| io_problem(&e, via_symlink))?;
    let meta = file.metadata().map_err(|e| FileProblem::Io(e.kind()))?;
    regular(&meta, via_symlink)?;
    let bytes = read_at_most(file, max)?;
    let text = String::from_utf8(bytes).map_err(|_| FileProblem::NotText)?;
    Ok(Contents {
        text,
        mode: meta.permissions().mode() & 0o7777,
    })
}

fn read_at_most(file: File, max: u64) -> Result<Vec<u8>, FileProblem> {
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|e| FileProblem::Io(e.kind()))?;
    if bytes.len() as u64 > max {
        // It grew after the size check.
        return Err(FileProblem::TooLarge { max });
    }
    Ok(bytes)
}

fn regular(meta: &Metadata, via_symlink: bool) -> Result<(), FileProblem> {
    let t = meta.file_type();
    let what = if t.is_file() {
        return Ok(());
    } else if t.is_dir() {
        "a directory"
    } else if t.is_fifo() {
        "a FIFO (named pipe)"
    } else if t.is_socket() {
        "a socket"
    } else if t.is_char_device() {
        "a character device"
    } else if t.is_block_device() {
        "a block device"
    } else {
        "not a file"
    };
    Err(FileProblem::NotRegular { what, via_symlink })
}

fn io_problem(e: &std::io::Error, via_symlink: bool) -> FileProblem {
    match e.kind() {
        _ if e.raw_os_error() == Some(libc::ELOOP) => FileProblem::Loop,
        std::io::ErrorKind::NotFound if via_symlink => FileProblem::Dangling,
        std::io::ErrorKind::NotFound => FileProblem::Missing,
        kind => FileProblem::Io(kind),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn mkfifo(path: &Path) {
        let c = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()).unwrap();
        // SAFETY: a valid NUL-terminated path; mkfifo has no other memory effects.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    }

    #[test]
    fn refuses_everything_but_regular_files_quickly() {
        let dir = tempfile::tempdir().unwrap();
        let p = |n: &str| dir.path().join(n);
        std::fs::write(p("ok"), "hello").unwrap();
        std::fs::create_dir(p("dir")).unwrap();
        mkfifo(&p("fifo"));
        let _socket = std::os::unix::net::UnixListener::bind(p("socket")).unwrap();
        std::os::unix::fs::symlink(p("nowhere"), p("dangling")).unwrap();
        std::os::unix::fs::symlink(p("loop-b"), p("loop-a")).unwrap();
        std::os::unix::fs::symlink(p("loop-a"), p("loop-b")).unwrap();
        std::os::unix::fs::symlink("/dev/null", p("null")).unwrap();
        std::os::unix::fs::symlink(p("ok"), p("link-ok")).unwrap();
        std::fs::write(p("big"), vec![b'x'; 4097]).unwrap();
        std::fs::write(p("binary"), [0xff, 0xfe]).unwrap();

        let started = Instant::now();
        assert_eq!(read_regular(&p("ok"), 4096).unwrap().text, "hello");
        assert_eq!(read_regular(&p("link-ok"), 4096).unwrap().text, "hello");
        let problem = |n: &str| read_regular(&p(n), 4096).err().unwrap().to_string();
        assert_eq!(problem("missing"), "does not exist");
        assert_eq!(problem("dir"), "is a directory, not a regular file");
        assert_eq!(
            problem("fifo"),
            "is a FIFO (named pipe), not a regular file"
        );
        assert_eq!(problem("socket"), "is a socket, not a regular file");
        assert_eq!(
            problem("dangling"),
            "is a symlink whose target does not exist"
        );
        assert_eq!(problem("loop-a"), "is a symlink loop");
        assert_eq!(
            problem("null"),
            "is a symlink to a character device, not a regular file"
        );
        assert_eq!(problem("big"), "is larger than 4096 bytes");
        assert_eq!(problem("binary"), "is not UTF-8 text");
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn a_fifo_opened_without_the_type_check_does_not_block() {
        // The race the descriptor check covers: a FIFO at open time.
        let dir = tempfile::tempdir().unwrap();
        let fifo = dir.path().join("fifo");
        mkfifo(&fifo);
        let file = OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY)
            .open(&fifo)
            .unwrap();
        let meta = file.metadata().unwrap();
        assert!(regular(&meta, false).is_err());
    }
}

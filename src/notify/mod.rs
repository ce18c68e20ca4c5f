//! Notifying the platform: messages in the Standard Webhooks format (<https://www.standardwebhooks.com/>),
//! signed with the `[notify]` secret and POSTed to `notify.url`.
//!
//! It owns the message and its body (`message.rs`), queueing a message into the outbox in the
//! batch that records what it reports (`queue.rs`; the records themselves are the store's), the
//! delivery task (`deliver.rs`), sending one message and reading the answer (`send.rs`, also
//! `notify test`'s path, [`test`]) and what operators see of the backlog (`backlog.rs`).
//! Invariants: the secret is read through config's preflight rules and only
//! [`crate::secrets::Signer`] holds it; no message carries anything secret; a message is queued
//! only with what it reports, and leaves the outbox only delivered or dead.
//!
//! Layering: above `store`, `metrics`, `config` and `secrets`; `pass` queues, the daemon runs
//! the delivery task.

mod backlog;
mod deliver;
#[cfg(feature = "sim")]
mod demo_platform;
mod message;
mod queue;
mod send;

use std::path::{Path, PathBuf};

use crate::config::{Config, ConfigError, NotifyConfig};
pub use backlog::Backlog;
pub use deliver::{Delivery, Destination, Http, STOP_GRACE, Transport, run};
#[cfg(feature = "sim")]
pub use demo_platform::DemoPlatform;
pub use message::{Kind, Message};
pub use queue::{Queueing, queue};
pub use send::{Answer, client, send};

/// Why `notify test` could not send. Each is one line naming the file and the fix.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    #[error(
        "{}: there is no [notify] table with a url, so there is nowhere to send (fix: add [notify] with url = \"https://HOST/PATH\" and secret_file = \"PATH\" to it; see docs/notify.md, installed under /usr/share/doc/tripletex-sync/docs/)",
        path.display()
    )]
    NotConfigured { path: PathBuf },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error("cannot set up the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

/// `notify test`: reads the secret and sends one signed `test` message now; the answer is what
/// the platform made of it. `credentials_dir` stands in for `$CREDENTIALS_DIRECTORY`.
pub async fn test(config: &Config, credentials_dir: Option<&Path>) -> Result<Answer, NotifyError> {
    let target: &NotifyConfig = config.notify.as_ref().ok_or(NotifyError::NotConfigured {
        path: config.source.clone(),
    })?;
    let signer = target.load_signer(credentials_dir)?;
    let client = client().map_err(NotifyError::Client)?;
    let message = Message::test(&hostname(), jiff::Timestamp::now());
    Ok(send(&client, target, &signer, &message).await)
}

/// The machine's name, so the platform can tell which instance sent a test; `unknown` when
/// the system will not say.
fn hostname() -> String {
    let mut name = [0u8; 256];
    // gethostname writes at most `len` bytes into the buffer it is given.
    if unsafe { libc::gethostname(name.as_mut_ptr().cast(), name.len()) } != 0 {
        return "unknown".into();
    }
    let end = name.iter().position(|&b| b == 0).unwrap_or(name.len());
    String::from_utf8_lossy(&name[..end]).into_owned()
}

#[cfg(test)]
mod schema_tests;

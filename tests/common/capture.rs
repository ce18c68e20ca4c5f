//! A global TRACE-level tracing subscriber (every crate) whose output tests can read back.
//!
//! Global because thread-local subscribers miss events whose callsite interest another test cached
//! first. A test binary installs one, once: [`capture_trace`] (text) or [`capture_json`] (one JSON
//! object a line); later calls return the same buffer, so several tests can share it and read
//! only what came after their own [`Captured::mark`].

#![allow(dead_code)]

use std::sync::{Arc, Mutex, OnceLock};

/// Everything traced since the subscriber was installed.
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
    }

    /// A position to read from later. The formatter writes each event with one `write`, so a
    /// mark always falls between lines even while other tests log.
    pub fn mark(&self) -> usize {
        self.0.lock().unwrap().len()
    }

    /// What was logged since `mark`.
    pub fn since(&self, mark: usize) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()[mark..]).into_owned()
    }
}

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

static CAPTURED: OnceLock<Captured> = OnceLock::new();

/// Installs (once) a text subscriber and returns its buffer.
pub fn capture_trace() -> Captured {
    install(false)
}

/// Installs (once) a JSON subscriber, events flattened, and returns its buffer.
pub fn capture_json() -> Captured {
    install(true)
}

fn install(json: bool) -> Captured {
    CAPTURED
        .get_or_init(|| {
            let captured = Captured::default();
            let writer = captured.clone();
            let builder = tracing_subscriber::fmt()
                .with_max_level(tracing::Level::TRACE)
                .with_writer(move || writer.clone());
            let installed = if json {
                tracing::subscriber::set_global_default(builder.json().flatten_event(true).finish())
            } else {
                tracing::subscriber::set_global_default(builder.finish())
            };
            installed.expect("the only subscriber in this test binary");
            captured
        })
        .clone()
}

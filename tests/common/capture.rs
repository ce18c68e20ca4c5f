//! A global TRACE-level tracing subscriber whose output tests can scan for secrets.
//!
//! Global because thread-local subscribers miss events whose callsite interest another test cached
//! first; so each canary test lives in a binary of its own and calls [`capture_trace`] once.

use std::sync::{Arc, Mutex};

/// Everything traced since [`capture_trace`].
#[derive(Clone, Default)]
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn bytes(&self) -> Vec<u8> {
        self.0.lock().unwrap().clone()
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

/// Installs the global subscriber (once per test binary) and returns its buffer.
pub fn capture_trace() -> Captured {
    let captured = Captured::default();
    let writer = captured.clone();
    tracing::subscriber::set_global_default(
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_writer(move || writer.clone())
            .finish(),
    )
    .expect("the only subscriber in this test binary");
    captured
}

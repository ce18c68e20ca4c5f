//! tripletex-sync: keeps web shops' Tripletex integrations healthy.
//!
//! See README.md for the data flow; each module's `//!` block says what it owns.
//!
//! Layers, lowest first; a module uses only those before it (a test keeps it so):
//! `files`, `checks`, `secrets`, `store`, `tripletex`, `metrics`, `sync` know nothing of the
//! configuration: they take plain settings and own their errors. `metrics` sits above `tripletex`
//! because it is the client's `Observer`; the client reports through that trait, so it reaches
//! neither the registry nor the store (`layers.rs` lists such "never" pairs and tests them,
//! through other modules too). `config` builds on them (e.g.
//! `ClientSettings::from(&Config)`, token refusals in its one-line format); `notify`, `pass`,
//! `status`, `webhooks` and `daemon` build on config (and `webhooks` on `pass`); the status page
//! (`page`) renders from `status`'s shapes, and the daemon serves it through `metrics`' endpoint.
//!
//! Below them all, in crates of their own that the simulator shares: [`clock`] (the `oslo-clock`
//! crate: time as a parameter, the Oslo calendar) and `http-accept` (the one HTTP accept loop).
//! The simulator (`tripletex-sim`) is not a dependency of this library: only the binary's `demo`
//! and `sim` (the default-on cargo feature `sim`) and the tests use it.

pub mod checks;
pub mod config;
pub mod daemon;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod notify;
pub mod page;
pub mod pass;
pub mod secrets;
pub mod status;
pub mod store;
pub mod sync;
pub mod tripletex;
pub mod webhooks;

pub use oslo_clock as clock;

#[cfg(test)]
mod layers;

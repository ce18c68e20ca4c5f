//! tripletex-sync: keeps web shops' Tripletex integrations healthy.
//!
//! See README.md for the data flow; each module's `//!` block says what it owns.
//!
//! Layers, lowest first; a module uses only those before it (a test keeps it so):
//! `clock`, `files`, `checks`, `secrets`, `store`, `tripletex`, `metrics`, `sim`, `sync` know
//! nothing of the configuration: they take plain settings and own their errors. `metrics` sits
//! above `tripletex` because it is the client's `Observer`; the client reports through that
//! trait, so it reaches neither the registry nor the store (`layers.rs` lists such "never" pairs
//! and tests them, through other modules too). `config` builds on them (e.g.
//! `ClientSettings::from(&Config)`, token refusals in its one-line format); `pass`, `status` and
//! `webhooks` and `daemon` build on config (and `webhooks` on `pass`).
//!
//! `sim` (the Tripletex simulator behind `sim`, `demo` and the tests) is the cargo feature `sim`,
//! on by default; the daemon never uses it, so a packager may build without it.

pub mod checks;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod files;
pub mod logging;
pub mod metrics;
pub mod pass;
pub mod secrets;
#[cfg(feature = "sim")]
pub mod sim;
pub mod status;
pub mod store;
pub mod sync;
pub mod tripletex;
pub mod webhooks;

#[cfg(test)]
mod layers;

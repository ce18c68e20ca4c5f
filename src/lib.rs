//! tripletex-sync: keeps web shops' Tripletex integrations healthy.
//!
//! See README.md for the data flow; each module's `//!` block says what it owns.

pub mod checks;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod files;
pub mod pass;
pub mod secrets;
pub mod sim;
pub mod status;
pub mod store;
pub mod sync;
pub mod tripletex;

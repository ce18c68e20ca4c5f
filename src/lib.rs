//! tripletex-sync: keeps web shops' Tripletex integrations healthy.
//!
//! See README.md for the data flow; each module's `//!` block says what it owns.

pub mod checks;
pub mod clock;
pub mod sim;

//! Shared SDE machinery: Euler–Maruyama for neural SDEs on a time grid (`em`); truncated path
//! signatures and the expected-signature distance (`signature`).

pub mod em;
pub mod signature;

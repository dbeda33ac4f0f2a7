//! Authentication: verifying connection and subscription JWTs.
//!
//! Knows tokens and keys only; what a verified claim allows is decided by `session`.

pub mod jwt;

pub use jwt::{ConnectClaims, SubscribeClaims, TokenError, Verifier};

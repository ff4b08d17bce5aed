//! The agent's core, free of napi types so that it can be tested with `cargo test` alone.

pub mod agent;
pub mod error;
pub mod jwt;
pub mod log;
pub mod request;
pub mod retry;
pub mod secret;
pub mod session;
pub mod status;
pub mod xrpc;

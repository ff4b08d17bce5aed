//! `forum-agent`: a Node native addon that logs in to a PDS as an AT Protocol account and keeps
//! the session alive. The core (`core`) has no napi types; the rest is the JavaScript surface.

#![deny(clippy::all)]

pub mod core;
mod forum_agent;
mod logger;
mod options;
mod session_bridge;

//! The health report that `getStatus()` returns, and the transitions between its states.

use std::time::SystemTime;

/// Error text when the handle or password is empty.
pub const NOT_CONFIGURED: &str =
    "Forum credentials not configured: handle and password are required";
/// Error text when the PDS rejected the credentials.
pub const CREDENTIALS_REJECTED: &str = "Authentication failed: invalid credentials";
/// Error text while a transient failure is being retried.
pub const TEMPORARILY_UNAVAILABLE: &str = "Connection to PDS temporarily unavailable";
/// Error text after `maxRetries` transient failures in a row.
pub const MAX_RETRIES_EXCEEDED: &str = "Auth failed after max retries";
/// Error text after a failure that is neither transient nor a credential rejection.
pub const AUTHENTICATION_FAILED: &str = "Authentication failed";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Status {
    Initializing,
    Authenticated,
    Retrying,
    Failed,
    Unavailable,
}

/// A snapshot of the agent's health. Fields follow the original class: `retry_count` and
/// `next_retry_at` are set only while retrying, `error` only when there is one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AgentState {
    pub status: Status,
    pub authenticated: bool,
    pub last_auth_attempt: Option<SystemTime>,
    pub next_retry_at: Option<SystemTime>,
    pub retry_count: Option<u32>,
    pub error: Option<String>,
}

impl AgentState {
    pub fn initial(credentials_configured: bool) -> Self {
        let mut state = Self {
            status: Status::Initializing,
            authenticated: false,
            last_auth_attempt: None,
            next_retry_at: None,
            retry_count: None,
            error: None,
        };
        if !credentials_configured {
            state.status = Status::Unavailable;
            state.error = Some(NOT_CONFIGURED.to_owned());
        }
        state
    }

    pub fn begin_attempt(&mut self, now: SystemTime) {
        self.last_auth_attempt = Some(now);
    }

    pub fn authenticated(&mut self) {
        self.status = Status::Authenticated;
        self.authenticated = true;
        self.clear_retry();
        self.error = None;
    }

    pub fn retrying(&mut self, retry_count: u32, next_retry_at: Option<SystemTime>) {
        self.status = Status::Retrying;
        self.authenticated = false;
        self.retry_count = Some(retry_count);
        self.next_retry_at = next_retry_at;
        self.error = Some(TEMPORARILY_UNAVAILABLE.to_owned());
    }

    /// Marks the session lost after the PDS rejected a refresh; a full login follows.
    pub fn session_lost(&mut self) {
        self.status = Status::Retrying;
        self.authenticated = false;
        self.retry_count = Some(0);
        self.next_retry_at = None;
    }

    pub fn failed(&mut self, error: &str) {
        self.status = Status::Failed;
        self.authenticated = false;
        self.clear_retry();
        self.error = Some(error.to_owned());
    }

    fn clear_retry(&mut self) {
        self.retry_count = None;
        self.next_retry_at = None;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_credentials_start_unavailable() {
        let state = AgentState::initial(false);

        assert_eq!(state.status, Status::Unavailable);
        assert_eq!(state.error.as_deref(), Some(NOT_CONFIGURED));
        assert_eq!(AgentState::initial(true).status, Status::Initializing);
    }

    #[test]
    fn success_clears_retry_fields() {
        let mut state = AgentState::initial(true);
        state.retrying(2, Some(SystemTime::now()));
        state.authenticated();

        assert!(state.authenticated);
        assert_eq!(state.retry_count, None);
        assert_eq!(state.next_retry_at, None);
        assert_eq!(state.error, None);
    }

    #[test]
    fn failure_drops_retry_fields_keeps_error() {
        let mut state = AgentState::initial(true);
        state.retrying(5, Some(SystemTime::now()));
        state.failed(MAX_RETRIES_EXCEEDED);

        assert_eq!(state.status, Status::Failed);
        assert!(!state.authenticated);
        assert_eq!(state.retry_count, None);
        assert_eq!(state.error.as_deref(), Some(MAX_RETRIES_EXCEEDED));
    }
}

//! The `ForumAgent` class exported to JavaScript.

use std::sync::Arc;
use std::time::SystemTime;

use chrono::{DateTime, Utc};
use napi::bindgen_prelude::{JsRangeError, JsTypeError, PromiseRaw, Unknown};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::core::agent::{AgentCore, Config};
use crate::core::secret::Secret;
use crate::core::status::{AgentState, Status as CoreStatus};
use crate::logger::JsLogger;
use crate::options::{self, ArgumentError};
use crate::session_bridge::NativeSessionManager;

/// Health of the agent's session with the PDS.
#[napi(string_enum = "lowercase")]
pub enum ForumAgentStatus {
    /// Created, first login not finished yet (also the state after `shutdown()`).
    Initializing,
    /// Logged in; `getAgent()` returns an agent.
    Authenticated,
    /// A transient failure (network, 5xx, 429) is being retried.
    Retrying,
    /// Gave up: the PDS rejected the credentials, or retries ran out.
    Failed,
    /// Handle or password not configured; no request is sent.
    Unavailable,
}

/// A snapshot of the agent's health, for health checks.
#[napi(object)]
pub struct ForumAgentState {
    pub status: ForumAgentStatus,
    pub authenticated: bool,
    /// When the latest login attempt started.
    pub last_auth_attempt: Option<DateTime<Utc>>,
    /// When the next login attempt starts; only while `retrying`.
    pub next_retry_at: Option<DateTime<Utc>>,
    /// Transient failures so far; only while `retrying`.
    pub retry_count: Option<u32>,
    /// Message for the latest failure, when there is one.
    pub error: Option<String>,
}

/// Tuning for retries, refresh and timeouts. Every field is optional.
#[napi(object)]
// Declared for index.d.ts only: the constructor reads the options by hand so that an invalid
// value throws an error naming the field.
#[allow(dead_code)]
pub struct ForumAgentOptions {
    /// Delay before each retry of a transient failure, in milliseconds; retries past the end
    /// reuse the last one. Default `[10000, 30000, 60000, 300000, 600000]`.
    pub retry_delays_ms: Option<Vec<u32>>,
    /// Retries after the first attempt before giving up. Default 5.
    pub max_retries: Option<u32>,
    /// Maximum gap between proactive session refreshes, in milliseconds. Default 1800000.
    pub refresh_interval_ms: Option<u32>,
    /// Timeout of each HTTP request to the PDS, in milliseconds. Default 30000.
    pub request_timeout_ms: Option<u32>,
}

/// Logs in to a PDS as the forum account and keeps the session alive: retries transient
/// failures, never retries rejected credentials, refreshes the session before its access token
/// expires, and reports its health.
#[napi]
pub struct ForumAgent {
    core: Arc<AgentCore>,
    logger: Arc<JsLogger>,
}

#[napi]
impl ForumAgent {
    /// Creates an agent; no request is sent until `initialize()`. Throws a `TypeError` or
    /// `RangeError` naming the argument when an argument is invalid.
    #[napi(
        constructor,
        catch_unwind,
        ts_args_type = "pdsUrl: string, handle: string, password: string, logger: Logger, options?: ForumAgentOptions"
    )]
    pub fn new(
        env: Env,
        pds_url: Unknown,
        handle: Unknown,
        password: Unknown,
        logger: Unknown,
        options: Option<Unknown>,
    ) -> Result<Self> {
        let checked = (|| {
            let pds_url = options::expect_string("pdsUrl", &pds_url)?;
            let service = options::parse_pds_url(&pds_url)?;
            let identifier = options::expect_string("handle", &handle)?;
            let password = Secret::new(options::expect_string("password", &password)?);
            let logger = options::expect_logger(&logger)?;
            let tuning = options::parse_options(options.as_ref())?;

            let config = Config {
                service,
                identifier: identifier.trim().to_owned(),
                password,
                retry: tuning.retry,
                refresh_interval: tuning.refresh_interval,
                request_timeout: tuning.request_timeout,
            };
            Ok::<_, ArgumentError>((config, logger))
        })();
        let (config, logger) = checked.map_err(|err| throw_argument_error(&env, err))?;

        let logger = Arc::new(JsLogger::new(&env, &logger)?);
        let core = AgentCore::new(config, logger.clone())
            .map_err(|err| Error::new(Status::GenericFailure, err.to_string()))?;
        Ok(Self {
            core: Arc::new(core),
            logger,
        })
    }

    /// Logs in to the PDS. Resolves once the first attempt has ended: logged in, rejected, or
    /// a retry scheduled (retries go on in the background). Never rejects because of the PDS.
    /// Repeated and concurrent calls share one login; after `shutdown()` it starts afresh.
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn initialize<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        // The turn is taken here, on the JavaScript thread, so that initialize() and shutdown()
        // take effect in the order JavaScript called them.
        let turn = self.core.take_turn();
        let core = Arc::clone(&self.core);
        env.spawn_future(async move {
            core.initialize_in_turn(turn).await;
            Ok(())
        })
    }

    /// Reports whether the agent has a usable session.
    #[napi(catch_unwind)]
    pub fn is_authenticated(&self) -> bool {
        self.core.state().authenticated
    }

    /// Returns an `Agent` of the application's `@atproto/api` for writes to the forum's repo,
    /// or `null` while not authenticated. The same Agent is returned each time; its requests
    /// carry the current access token and survive refreshes. Throws when `@atproto/api` is not
    /// installed.
    #[napi(ts_return_type = "ForumAgentApi | null", catch_unwind)]
    pub fn get_agent(&self) -> Option<NativeSessionManager> {
        if !self.core.state().authenticated || self.core.session().is_none() {
            return None;
        }
        Some(NativeSessionManager::new(Arc::clone(&self.core)))
    }

    /// Returns the agent's health: status, whether it is authenticated, and retry details.
    #[napi(catch_unwind)]
    pub fn get_status(&self) -> ForumAgentState {
        ForumAgentState::from(self.core.state())
    }

    /// Stops refreshing and retrying, aborts any request in flight, and drops the session.
    /// After it resolves no request is sent and the logger is not called again.
    #[napi(ts_return_type = "Promise<void>", catch_unwind)]
    pub fn shutdown<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, ()>> {
        let turn = self.core.take_turn();
        let core = Arc::clone(&self.core);
        let logger = Arc::clone(&self.logger);
        env.spawn_future(async move {
            core.shutdown_in_turn(turn).await;
            logger.flush().await;
            Ok(())
        })
    }
}

impl From<AgentState> for ForumAgentState {
    fn from(state: AgentState) -> Self {
        let status = match state.status {
            CoreStatus::Initializing => ForumAgentStatus::Initializing,
            CoreStatus::Authenticated => ForumAgentStatus::Authenticated,
            CoreStatus::Retrying => ForumAgentStatus::Retrying,
            CoreStatus::Failed => ForumAgentStatus::Failed,
            CoreStatus::Unavailable => ForumAgentStatus::Unavailable,
        };

        Self {
            status,
            authenticated: state.authenticated,
            last_auth_attempt: state.last_auth_attempt.map(to_date),
            next_retry_at: state.next_retry_at.map(to_date),
            retry_count: state.retry_count,
            error: state.error,
        }
    }
}

fn to_date(time: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(time)
}

/// Throws `err` as a JavaScript `TypeError` or `RangeError`. The returned error signals to napi
/// that an exception is already pending.
fn throw_argument_error(env: &Env, err: ArgumentError) -> Error {
    // SAFETY: `env` is the environment of the constructor call running on this thread.
    unsafe {
        match err {
            ArgumentError::Type(message) => {
                JsTypeError::from(Error::new(Status::InvalidArg, message)).throw_into(env.raw())
            }
            ArgumentError::Range(message) => {
                JsRangeError::from(Error::new(Status::InvalidArg, message)).throw_into(env.raw())
            }
        }
    }
    Error::new(Status::PendingException, "invalid ForumAgent argument")
}

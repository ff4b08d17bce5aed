//! The agent core: one tokio task per `initialize()` that logs in, retries, and keeps the
//! session fresh. It is the only writer of the session and the status, so at most one login or
//! refresh is in flight per agent.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use url::Url;

use super::error::{ErrorKind, XrpcError};
use super::log::{scrub, Level, LogRecord, LogSink, Value};
use super::retry::{refresh_delay, RetryPolicy};
use super::secret::Secret;
use super::session::Session;
use super::status::{
    AgentState, AUTHENTICATION_FAILED, CREDENTIALS_REJECTED, MAX_RETRIES_EXCEEDED,
};
use super::xrpc::{SessionApi, XrpcClient};

/// Login settings: the PDS, the account, and the retry and refresh tuning.
#[derive(Debug)]
pub struct Config {
    pub service: Url,
    /// A handle, a DID or an email address.
    pub identifier: String,
    /// The account password or an app password.
    pub password: Secret,
    pub retry: RetryPolicy,
    pub refresh_interval: Duration,
    pub request_timeout: Duration,
}

impl Config {
    fn credentials_configured(&self) -> bool {
        !self.identifier.trim().is_empty() && !self.password.is_blank()
    }
}

/// State shared between the public handle and the task that drives the session.
pub(crate) struct Shared {
    pub(crate) config: Config,
    client: XrpcClient,
    session_api: Arc<dyn SessionApi>,
    sink: Arc<dyn LogSink>,
    state: Mutex<AgentState>,
    /// The live session, `None` while logged out. Changes each time a login or refresh ends.
    pub(crate) session: watch::Sender<Option<Arc<Session>>>,
    /// The highest session generation that a request found expired: a refresh request.
    pub(crate) stale_generation: watch::Sender<u64>,
    next_generation: Mutex<u64>,
}

/// One `initialize()` run: its task and the signal that its first login attempt has ended.
struct Run {
    cancel: CancellationToken,
    task: JoinHandle<()>,
    first_attempt_done: watch::Receiver<bool>,
}

/// The agent's public handle. Dropping it stops the session task.
pub struct AgentCore {
    shared: Arc<Shared>,
    run: Mutex<Option<Run>>,
    next_turn: AtomicU64,
    turns_served: Arc<watch::Sender<u64>>,
    /// Parent of every run's cancellation token, cancelled on drop.
    lifetime: CancellationToken,
    /// Cancelled by `shutdown()` to reject the application's requests in flight, then replaced.
    requests: Mutex<CancellationToken>,
}

/// Next step of the session loop after the refresh phase ends.
enum AfterRefresh {
    LogInAgain,
    Stop,
}

impl AgentCore {
    pub fn new(config: Config, sink: Arc<dyn LogSink>) -> Result<Self, XrpcError> {
        let client = XrpcClient::new(config.service.clone(), config.request_timeout)?;
        Ok(Self::with_session_api(
            config,
            client.clone(),
            Arc::new(client),
            sink,
        ))
    }

    /// Builds an agent whose login and refresh calls go to `session_api`, and the
    /// application's requests to `client`.
    pub fn with_session_api(
        config: Config,
        client: XrpcClient,
        session_api: Arc<dyn SessionApi>,
        sink: Arc<dyn LogSink>,
    ) -> Self {
        let state = AgentState::initial(config.credentials_configured());
        let shared = Shared {
            config,
            client,
            session_api,
            sink,
            state: Mutex::new(state),
            session: watch::Sender::new(None),
            stale_generation: watch::Sender::new(0),
            next_generation: Mutex::new(0),
        };

        Self {
            shared: Arc::new(shared),
            run: Mutex::new(None),
            next_turn: AtomicU64::new(0),
            turns_served: Arc::new(watch::Sender::new(0)),
            lifetime: CancellationToken::new(),
            requests: Mutex::new(CancellationToken::new()),
        }
    }

    pub fn state(&self) -> AgentState {
        self.shared.state()
    }

    pub fn session(&self) -> Option<Arc<Session>> {
        self.shared.session.borrow().clone()
    }

    pub(crate) fn subscribe_session(&self) -> watch::Receiver<Option<Arc<Session>>> {
        self.shared.session.subscribe()
    }

    pub fn request_timeout(&self) -> Duration {
        self.shared.config.request_timeout
    }

    pub(crate) fn client(&self) -> &XrpcClient {
        &self.shared.client
    }

    pub(crate) fn requests_cancelled(&self) -> CancellationToken {
        self.requests
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Asks for a refresh because a request found the access token of session `generation`
    /// expired. Reports about the same generation share one refresh; reports about a session
    /// that has since been replaced are ignored.
    pub fn request_refresh(&self, generation: u64) {
        self.shared.request_refresh(generation);
    }

    /// Takes the next place in the order of lifecycle calls. `initialize_in_turn` and
    /// `shutdown_in_turn` wait for their turn, so calls take effect in the order their turns were
    /// taken even though their work runs on the runtime's threads.
    pub fn take_turn(&self) -> Turn {
        let number = self.next_turn.fetch_add(1, Ordering::SeqCst) + 1;
        Turn {
            number,
            served: Arc::clone(&self.turns_served),
        }
    }

    /// Starts the session task unless one is running, then waits until its first login
    /// attempt has ended (success, rejection, or a retry scheduled). Concurrent and repeated
    /// calls share the task. Must be called inside a tokio runtime.
    pub async fn initialize(&self) {
        self.initialize_in_turn(self.take_turn()).await;
    }

    /// Does the work of `initialize()` once `turn` comes up.
    pub async fn initialize_in_turn(&self, turn: Turn) {
        turn.wait().await;
        if !self.shared.config.credentials_configured() {
            self.shared.emit(
                Level::Warn,
                "ForumAgent credentials not configured",
                vec![("handle", Value::Str(self.shared.config.identifier.clone()))],
            );
            return;
        }

        let mut first_attempt_done = {
            let mut run = self.lock_run();
            let run = run.get_or_insert_with(|| self.start());
            run.first_attempt_done.clone()
        };
        drop(turn);
        // An error means the task ended without a first attempt (shutdown): nothing to wait for.
        let _ = first_attempt_done.wait_for(|done| *done).await;
    }

    fn start(&self) -> Run {
        let cancel = self.lifetime.child_token();
        let (done_sender, done_receiver) = watch::channel(false);
        let shared = Arc::clone(&self.shared);
        let task_cancel = cancel.clone();

        let task = tokio::spawn(async move {
            tokio::select! {
                biased;
                () = task_cancel.cancelled() => {}
                () = shared.run_session(&done_sender) => {}
            }
        });

        Run {
            cancel,
            task,
            first_attempt_done: done_receiver,
        }
    }

    /// Stops the session task, aborting any request in flight, and drops the session. When
    /// this returns the task has ended, so no further request or log record comes from it.
    pub async fn shutdown(&self) {
        self.shutdown_in_turn(self.take_turn()).await;
    }

    /// Does the work of `shutdown()` once `turn` comes up.
    pub async fn shutdown_in_turn(&self, turn: Turn) {
        turn.wait().await;
        let requests =
            std::mem::take(&mut *self.requests.lock().unwrap_or_else(PoisonError::into_inner));
        requests.cancel();
        let run = self.lock_run().take();
        if let Some(run) = run {
            run.cancel.cancel();
            // A JoinError here means the task panicked; the task is gone either way.
            let _ = run.task.await;
        }

        self.shared.session.send_replace(None);
        let configured = self.shared.config.credentials_configured();
        *self.shared.lock_state() = AgentState::initial(configured);
    }

    fn lock_run(&self) -> std::sync::MutexGuard<'_, Option<Run>> {
        self.run.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// A place in the order of `initialize()` and `shutdown()` calls. Dropping it, done or not, lets
/// the next call proceed.
pub struct Turn {
    number: u64,
    served: Arc<watch::Sender<u64>>,
}

impl Turn {
    async fn wait(&self) {
        let mut served = self.served.subscribe();
        // The sender lives in the agent, which outlives every turn.
        let _ = served.wait_for(|served| *served + 1 >= self.number).await;
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let number = self.number;
        self.served
            .send_modify(|served| *served = (*served).max(number));
    }
}

impl Drop for AgentCore {
    fn drop(&mut self) {
        self.lifetime.cancel();
        self.requests_cancelled().cancel();
    }
}

impl Shared {
    pub(crate) fn state(&self) -> AgentState {
        self.lock_state().clone()
    }

    fn lock_state(&self) -> std::sync::MutexGuard<'_, AgentState> {
        // The state is plain data that is valid after any partial update.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Sends a record to the sink after removing any secret from its string values.
    pub(crate) fn emit(
        &self,
        level: Level,
        message: &'static str,
        context: Vec<(&'static str, Value)>,
    ) {
        let session = self.session.borrow().clone();
        let mut secrets = vec![&self.config.password];
        if let Some(session) = session.as_deref() {
            secrets.push(&session.access_token);
            secrets.push(&session.refresh_token);
        }

        let context = context
            .into_iter()
            .map(|(key, value)| match value {
                Value::Str(text) => (key, Value::Str(scrub(&text, &secrets))),
                other => (key, other),
            })
            .collect();
        self.sink.log(LogRecord {
            level,
            message,
            context,
        });
    }

    pub(crate) fn request_refresh(&self, generation: u64) {
        self.stale_generation.send_if_modified(|stale| {
            let newer = generation > *stale;
            if newer {
                *stale = generation;
            }
            newer
        });
    }

    fn handle(&self) -> Value {
        Value::Str(self.config.identifier.clone())
    }

    /// Logs in, keeps the session fresh, and logs in again when the PDS rejects a refresh, until
    /// a permanent failure.
    async fn run_session(&self, first_attempt_done: &watch::Sender<bool>) {
        loop {
            let Some(session) = self.log_in(first_attempt_done).await else {
                first_attempt_done.send_replace(true);
                return;
            };
            first_attempt_done.send_replace(true);

            match self.keep_fresh(session).await {
                AfterRefresh::LogInAgain => continue,
                AfterRefresh::Stop => return,
            }
        }
    }

    /// Calls `createSession` until it succeeds, the PDS rejects the credentials, or the retry
    /// budget runs out. Returns the new session, or `None` after a permanent failure.
    async fn log_in(&self, first_attempt_done: &watch::Sender<bool>) -> Option<Arc<Session>> {
        let mut failures = 0;
        loop {
            self.lock_state().begin_attempt(SystemTime::now());
            let result = self
                .session_api
                .create_session(&self.config.identifier, &self.config.password)
                .await;

            let error = match result.and_then(|response| self.publish(response)) {
                Ok(session) => {
                    self.lock_state().authenticated();
                    self.emit(
                        Level::Info,
                        "ForumAgent authenticated",
                        vec![
                            ("handle", self.handle()),
                            ("did", Value::Str(session.did.clone())),
                        ],
                    );
                    return Some(session);
                }
                Err(error) => error,
            };

            match error.kind() {
                ErrorKind::Rejected => {
                    self.lock_state().failed(CREDENTIALS_REJECTED);
                    self.emit(
                        Level::Error,
                        "ForumAgent auth permanent failure",
                        vec![
                            ("handle", self.handle()),
                            ("error", Value::Str(error.to_string())),
                        ],
                    );
                    return None;
                }
                ErrorKind::Transient => {
                    failures += 1;
                    if !self.config.retry.allows_retry(failures) {
                        self.give_up(failures, &error);
                        return None;
                    }
                    self.wait_before_login_retry(failures, &error, first_attempt_done)
                        .await;
                }
                ErrorKind::Other => {
                    self.lock_state().failed(AUTHENTICATION_FAILED);
                    self.emit(
                        Level::Error,
                        "ForumAgent auth failed",
                        vec![
                            ("handle", self.handle()),
                            ("attempts", Value::Int(i64::from(failures) + 1)),
                            ("reason", Value::Str("unknown error".to_owned())),
                            ("error", Value::Str(error.to_string())),
                        ],
                    );
                    return None;
                }
            }
        }
    }

    async fn wait_before_login_retry(
        &self,
        failures: u32,
        error: &XrpcError,
        first_attempt_done: &watch::Sender<bool>,
    ) {
        let delay = self.config.retry.delay_after(failures, error.server_wait());
        self.lock_state()
            .retrying(failures, SystemTime::now().checked_add(delay));
        self.emit(
            Level::Warn,
            "ForumAgent auth retrying",
            vec![
                ("handle", self.handle()),
                ("attempt", Value::Int(i64::from(failures))),
                (
                    "maxAttempts",
                    Value::Int(i64::from(self.config.retry.max_retries)),
                ),
                ("retryInMs", Value::Int(duration_ms(delay))),
                ("error", Value::Str(error.to_string())),
            ],
        );

        first_attempt_done.send_replace(true);
        tokio::time::sleep(delay).await;
    }

    fn give_up(&self, failures: u32, error: &XrpcError) {
        self.session.send_replace(None);
        self.lock_state().failed(MAX_RETRIES_EXCEEDED);
        self.emit(
            Level::Error,
            "ForumAgent auth failed",
            vec![
                ("handle", self.handle()),
                ("attempts", Value::Int(i64::from(failures))),
                ("reason", Value::Str("max retries exceeded".to_owned())),
                ("error", Value::Str(error.to_string())),
            ],
        );
    }

    /// Refreshes the session before its access token expires, at least every
    /// `refresh_interval`, and whenever a request finds the current token expired.
    async fn keep_fresh(&self, mut session: Arc<Session>) -> AfterRefresh {
        let mut stale = self.stale_generation.subscribe();
        let mut failures = 0;
        let mut retry_delay = None;

        loop {
            let delay = retry_delay.unwrap_or_else(|| {
                let expires_in = session.access_expires_in(SystemTime::now());
                refresh_delay(self.config.refresh_interval, expires_in)
            });
            // During a retry backoff only the timer wakes the task: a request that finds the
            // token expired again must not bypass the backoff.
            let generation = session.generation;
            let wake_on_stale = retry_delay.is_none();
            tokio::select! {
                () = tokio::time::sleep(delay) => {}
                _ = stale.wait_for(|stale| *stale >= generation), if wake_on_stale => {}
            }

            let result = self
                .session_api
                .refresh_session(&session.refresh_token)
                .await
                .and_then(|response| check_same_did(&session, response))
                .and_then(|response| self.publish(response));
            let error = match result {
                Ok(refreshed) => {
                    session = refreshed;
                    failures = 0;
                    retry_delay = None;
                    self.lock_state().authenticated();
                    self.emit(
                        Level::Debug,
                        "ForumAgent session refreshed",
                        vec![("did", Value::Str(session.did.clone()))],
                    );
                    continue;
                }
                Err(error) => error,
            };

            if error.kind() != ErrorKind::Transient {
                self.emit(
                    Level::Warn,
                    "ForumAgent session refresh failed",
                    vec![("error", Value::Str(error.to_string()))],
                );
                self.session.send_replace(None);
                self.lock_state().session_lost();
                return AfterRefresh::LogInAgain;
            }

            failures += 1;
            if !self.config.retry.allows_retry(failures) {
                self.give_up(failures, &error);
                return AfterRefresh::Stop;
            }
            let delay = self.config.retry.delay_after(failures, error.server_wait());
            retry_delay = Some(delay);
            self.note_transient_refresh_failure(&session, failures, delay, &error);
        }
    }

    /// Keeps the session usable while its access token is valid; once it has expired, reports
    /// `retrying` so health checks and `getAgent()` see the outage.
    fn note_transient_refresh_failure(
        &self,
        session: &Session,
        failures: u32,
        delay: Duration,
        error: &XrpcError,
    ) {
        self.emit(
            Level::Warn,
            "ForumAgent session refresh failed",
            vec![
                ("error", Value::Str(error.to_string())),
                ("attempt", Value::Int(i64::from(failures))),
                ("retryInMs", Value::Int(duration_ms(delay))),
            ],
        );

        let now = SystemTime::now();
        if session.access_expired(now) {
            self.lock_state().retrying(failures, now.checked_add(delay));
        }
        // Waiters on the session (requests that found the token expired) wake up and see that
        // the refresh did not produce a new token.
        self.session.send_modify(|_| {});
    }

    /// Stores a new session from a `createSession` or `refreshSession` response.
    fn publish(
        &self,
        response: super::session::SessionResponse,
    ) -> Result<Arc<Session>, XrpcError> {
        let generation = {
            let mut next = self
                .next_generation
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            *next += 1;
            *next
        };
        let session = Arc::new(Session::from_response(response, generation)?);
        self.session.send_replace(Some(Arc::clone(&session)));
        Ok(session)
    }
}

fn check_same_did(
    session: &Session,
    response: super::session::SessionResponse,
) -> Result<super::session::SessionResponse, XrpcError> {
    if response.did == session.did {
        Ok(response)
    } else {
        Err(XrpcError::InvalidResponse(
            "refreshSession returned a different DID".to_owned(),
        ))
    }
}

fn duration_ms(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

//! A scripted PDS and a recording logger for testing the session state machine in virtual
//! time.

#![allow(dead_code)]

pub mod http;

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use forum_agent::core::agent::{AgentCore, Config};
use forum_agent::core::error::XrpcError;
use forum_agent::core::log::{LogRecord, LogSink};
use forum_agent::core::retry::RetryPolicy;
use forum_agent::core::secret::Secret;
use forum_agent::core::session::SessionResponse;
use forum_agent::core::xrpc::{BoxFuture, SessionApi, XrpcClient};
use tokio::time::Instant;

pub const HANDLE: &str = "atbb-forum.test";
pub const PASSWORD: &str = "correct-horse-battery";
pub const DID: &str = "did:plc:forumtest";

/// One scripted reply: a session whose access token lives `access_lifetime`, or an error.
pub enum Reply {
    Session { access_lifetime: Duration },
    Fail(XrpcError),
}

pub fn session(access_lifetime: Duration) -> Reply {
    Reply::Session { access_lifetime }
}

pub fn network_error() -> Reply {
    Reply::Fail(XrpcError::Network(
        "tcp connect error: Connection refused".into(),
    ))
}

pub fn status_error(status: u16, error: &str, server_wait: Option<Duration>) -> Reply {
    Reply::Fail(XrpcError::Status {
        status,
        error: Some(error.to_owned()),
        message: Some(format!("{error} from the scripted PDS")),
        server_wait,
    })
}

/// What a session call looked like when it arrived.
#[derive(Clone, Debug)]
pub struct Call {
    pub at: Instant,
    /// The password for createSession, the refresh token for refreshSession.
    pub secret: String,
}

#[derive(Default)]
struct Script {
    logins: VecDeque<Reply>,
    refreshes: VecDeque<Reply>,
    login_calls: Vec<Call>,
    refresh_calls: Vec<Call>,
    issued_tokens: Vec<String>,
    serial: u32,
}

/// A PDS that replies to session calls from a script. Once the script is used up it replies
/// with a session that lives two hours, like the reference PDS.
#[derive(Clone, Default)]
pub struct ScriptedPds {
    script: Arc<Mutex<Script>>,
    refresh_delay: Arc<Mutex<Duration>>,
}

impl ScriptedPds {
    /// Makes each refreshSession take `delay` before it replies.
    pub fn delay_refresh(&self, delay: Duration) -> &Self {
        *self.refresh_delay.lock().unwrap() = delay;
        self
    }

    pub fn login(&self, reply: Reply) -> &Self {
        self.script.lock().unwrap().logins.push_back(reply);
        self
    }

    pub fn refresh(&self, reply: Reply) -> &Self {
        self.script.lock().unwrap().refreshes.push_back(reply);
        self
    }

    pub fn login_calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().login_calls.clone()
    }

    pub fn refresh_calls(&self) -> Vec<Call> {
        self.script.lock().unwrap().refresh_calls.clone()
    }

    /// Returns every access and refresh token the script has issued.
    pub fn issued_tokens(&self) -> Vec<String> {
        self.script.lock().unwrap().issued_tokens.clone()
    }

    fn answer(&self, refresh: bool, secret: &Secret) -> Result<SessionResponse, XrpcError> {
        let mut script = self.script.lock().unwrap();
        let call = Call {
            at: Instant::now(),
            secret: secret.expose().to_owned(),
        };
        let reply = if refresh {
            script.refresh_calls.push(call);
            script.refreshes.pop_front()
        } else {
            script.login_calls.push(call);
            script.logins.pop_front()
        };

        match reply.unwrap_or(Reply::Session {
            access_lifetime: Duration::from_secs(2 * 60 * 60),
        }) {
            Reply::Fail(error) => Err(error),
            Reply::Session { access_lifetime } => {
                script.serial += 1;
                let access = access_token(access_lifetime, script.serial);
                let refresh = format!("refresh-token-{}", script.serial);
                script.issued_tokens.push(access.clone());
                script.issued_tokens.push(refresh.clone());
                Ok(serde_json::from_value(serde_json::json!({
                    "accessJwt": access,
                    "refreshJwt": refresh,
                    "did": DID,
                    "handle": HANDLE,
                }))
                .unwrap())
            }
        }
    }
}

impl SessionApi for ScriptedPds {
    fn create_session<'a>(
        &'a self,
        identifier: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>> {
        assert_eq!(identifier, HANDLE);
        Box::pin(async move { self.answer(false, password) })
    }

    fn refresh_session<'a>(
        &'a self,
        refresh_token: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>> {
        let delay = *self.refresh_delay.lock().unwrap();
        Box::pin(async move {
            tokio::time::sleep(delay).await;
            self.answer(true, refresh_token)
        })
    }
}

/// Builds an access token that expires `lifetime` after the current wall-clock time.
pub fn access_token(lifetime: Duration, serial: u32) -> String {
    let exp = (SystemTime::now() + lifetime)
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    let payload = URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{exp},"jti":"{serial}"}}"#));
    format!("{header}.{payload}.signature{serial}")
}

#[derive(Clone, Default)]
pub struct RecordingLogger {
    records: Arc<Mutex<Vec<LogRecord>>>,
}

impl RecordingLogger {
    pub fn records(&self) -> Vec<LogRecord> {
        self.records.lock().unwrap().clone()
    }

    pub fn messages(&self) -> Vec<&'static str> {
        self.records().iter().map(|record| record.message).collect()
    }
}

impl LogSink for RecordingLogger {
    fn log(&self, record: LogRecord) {
        self.records.lock().unwrap().push(record);
    }
}

pub fn config(retry: RetryPolicy) -> Config {
    Config {
        service: "http://127.0.0.1:9".parse().unwrap(),
        identifier: HANDLE.to_owned(),
        password: Secret::new(PASSWORD.to_owned()),
        retry,
        refresh_interval: Duration::from_secs(30 * 60),
        request_timeout: Duration::from_secs(30),
    }
}

pub fn agent(config: Config, pds: &ScriptedPds, logger: &RecordingLogger) -> AgentCore {
    let client = XrpcClient::new(config.service.clone(), config.request_timeout).unwrap();
    AgentCore::with_session_api(
        config,
        client,
        Arc::new(pds.clone()),
        Arc::new(logger.clone()),
    )
}

/// Lets virtual time pass, firing every timer due in between in order, then lets the agent's
/// task finish what the last timer started.
pub async fn run_for(duration: Duration) {
    tokio::time::sleep(duration).await;
    settle().await;
}

/// Lets the agent's task run until it waits on a timer again.
pub async fn settle() {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
}

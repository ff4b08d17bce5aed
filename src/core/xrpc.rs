//! The XRPC transport: HTTP requests to the PDS over one shared reqwest client.

use std::future::Future;
use std::pin::Pin;
use std::time::{Duration, SystemTime};

use reqwest::{Client, Response};
use serde::{Deserialize, Serialize};
use url::Url;

use super::error::{server_wait, XrpcError};
use super::secret::Secret;
use super::session::SessionResponse;

const USER_AGENT: &str = concat!("forum-agent/", env!("CARGO_PKG_VERSION"));

/// Sends XRPC calls to the PDS. Session calls (`createSession`, `refreshSession`) always go to
/// `service`, the URL the agent was configured with.
#[derive(Clone, Debug)]
pub struct XrpcClient {
    http: Client,
    service: Url,
    timeout: Duration,
}

/// The two session calls, behind a trait so the session state machine can be tested with a
/// scripted PDS in virtual time.
pub trait SessionApi: Send + Sync + 'static {
    fn create_session<'a>(
        &'a self,
        identifier: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>>;

    fn refresh_session<'a>(
        &'a self,
        refresh_token: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>>;
}

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

impl SessionApi for XrpcClient {
    fn create_session<'a>(
        &'a self,
        identifier: &'a str,
        password: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>> {
        Box::pin(XrpcClient::create_session(self, identifier, password))
    }

    fn refresh_session<'a>(
        &'a self,
        refresh_token: &'a Secret,
    ) -> BoxFuture<'a, Result<SessionResponse, XrpcError>> {
        Box::pin(XrpcClient::refresh_session(self, refresh_token))
    }
}

#[derive(Serialize)]
struct CreateSessionBody<'a> {
    identifier: &'a str,
    password: &'a str,
}

#[derive(Deserialize)]
struct ErrorBody {
    error: Option<String>,
    message: Option<String>,
}

impl XrpcClient {
    pub fn new(service: Url, timeout: Duration) -> Result<Self, XrpcError> {
        let http = Client::builder()
            .user_agent(USER_AGENT)
            .timeout(timeout)
            .redirect(same_origin_redirects())
            .build()
            .map_err(|err| XrpcError::Network(err.to_string()))?;

        Ok(Self {
            http,
            service,
            timeout,
        })
    }

    pub fn http(&self) -> &Client {
        &self.http
    }

    pub fn service(&self) -> &Url {
        &self.service
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Builds the URL of an XRPC method on `base`, keeping any path prefix `base` has.
    pub fn method_url(base: &Url, nsid: &str) -> Url {
        let mut url = base.clone();
        let path = format!("{}/xrpc/{nsid}", base.path().trim_end_matches('/'));
        url.set_path(&path);
        url.set_query(None);
        url
    }

    /// Logs in with `com.atproto.server.createSession`.
    pub async fn create_session(
        &self,
        identifier: &str,
        password: &Secret,
    ) -> Result<SessionResponse, XrpcError> {
        let body = CreateSessionBody {
            identifier,
            password: password.expose(),
        };
        let response = self
            .http
            .post(Self::method_url(
                &self.service,
                "com.atproto.server.createSession",
            ))
            .json(&body)
            .send()
            .await
            .map_err(|err| XrpcError::from_reqwest(err, self.timeout))?;
        self.read_session(response).await
    }

    /// Exchanges the refresh token for a new session with `com.atproto.server.refreshSession`.
    /// The PDS rotates the refresh token: the old one stops working within 2 hours.
    pub async fn refresh_session(
        &self,
        refresh_token: &Secret,
    ) -> Result<SessionResponse, XrpcError> {
        let response = self
            .http
            .post(Self::method_url(
                &self.service,
                "com.atproto.server.refreshSession",
            ))
            .bearer_auth(refresh_token.expose())
            .send()
            .await
            .map_err(|err| XrpcError::from_reqwest(err, self.timeout))?;
        self.read_session(response).await
    }

    async fn read_session(&self, response: Response) -> Result<SessionResponse, XrpcError> {
        let response = check_status(response, self.timeout).await?;
        let bytes = response
            .bytes()
            .await
            .map_err(|err| XrpcError::from_reqwest(err, self.timeout))?;

        serde_json::from_slice(&bytes)
            .map_err(|err| XrpcError::InvalidResponse(format!("session response: {err}")))
    }
}

/// Follows redirects within the same origin only, at most 10 in a row. A redirect elsewhere is
/// returned as the response: following it would carry the password or the access token to a
/// host the caller did not configure.
fn same_origin_redirects() -> reqwest::redirect::Policy {
    reqwest::redirect::Policy::custom(|attempt| {
        let same_origin = attempt
            .previous()
            .last()
            .is_some_and(|previous| previous.origin() == attempt.url().origin());
        if attempt.previous().len() > 10 {
            attempt.error("too many redirects")
        } else if same_origin {
            attempt.follow()
        } else {
            attempt.stop()
        }
    })
}

/// Turns a non-2xx response into `XrpcError::Status`, reading the XRPC error body when there is
/// one.
pub async fn check_status(response: Response, timeout: Duration) -> Result<Response, XrpcError> {
    let status = response.status();
    if status.is_success() {
        return Ok(response);
    }

    let wait = server_wait(response.headers(), SystemTime::now());
    let bytes = response
        .bytes()
        .await
        .map_err(|err| XrpcError::from_reqwest(err, timeout))?;
    let body = serde_json::from_slice::<ErrorBody>(&bytes).ok();

    Err(XrpcError::Status {
        status: status.as_u16(),
        error: body.as_ref().and_then(|body| body.error.clone()),
        message: body.and_then(|body| body.message),
        server_wait: wait,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn method_url_keeps_prefix_and_drops_query() {
        let base = Url::parse("http://127.0.0.1:2583/pds/?x=1").unwrap();
        let url = XrpcClient::method_url(&base, "com.atproto.server.createSession");

        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:2583/pds/xrpc/com.atproto.server.createSession"
        );
    }

    #[test]
    fn method_url_at_root() {
        let base = Url::parse("http://127.0.0.1:2583").unwrap();
        let url = XrpcClient::method_url(&base, "com.atproto.repo.putRecord");

        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:2583/xrpc/com.atproto.repo.putRecord"
        );
    }
}

//! Authenticated XRPC requests for the application: the access token is added here, in Rust,
//! and a request rejected for an expired token is retried once after a shared refresh.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use reqwest::header::{HeaderName, HeaderValue, AUTHORIZATION};
use reqwest::Method;
use url::Url;

use super::agent::AgentCore;
use super::error::XrpcError;
use super::session::Session;

/// Request headers the agent sets itself; a caller's value for them is dropped.
const RESERVED_HEADERS: &[&str] = &["authorization", "host", "content-length", "connection"];

/// A request from the application, with a URL relative to the PDS (`/xrpc/<nsid>?<params>`).
#[derive(Debug)]
pub struct XrpcRequest {
    pub method: String,
    pub url: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<Bytes>,
}

/// The PDS's response, read in full.
#[derive(Debug)]
pub struct XrpcResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Bytes,
}

#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    #[error("ForumAgent is not authenticated: wait for initialize() and check getStatus()")]
    NotAuthenticated,
    #[error("ForumAgent was shut down before the request finished")]
    ShutDown,
    #[error("invalid request: {0}")]
    Invalid(String),
    #[error("request to the PDS failed: {0}")]
    Failed(#[from] XrpcError),
}

impl AgentCore {
    /// Sends `request` to the PDS with the session's access token. A response reporting that
    /// the token expired (HTTP 401, or 400 `ExpiredToken`) triggers one refresh, shared with every
    /// other request that saw the same token, and the request is sent once more if the token
    /// changed. Rejects with `ShutDown` when `shutdown()` runs first.
    pub async fn send(&self, request: XrpcRequest) -> Result<XrpcResponse, RequestError> {
        let cancelled = self.requests_cancelled();
        tokio::select! {
            biased;
            () = cancelled.cancelled() => Err(RequestError::ShutDown),
            result = self.send_with_refresh(request) => result,
        }
    }

    async fn send_with_refresh(&self, request: XrpcRequest) -> Result<XrpcResponse, RequestError> {
        let method = Method::from_bytes(request.method.to_ascii_uppercase().as_bytes())
            .map_err(|_| RequestError::Invalid(format!("HTTP method {:?}", request.method)))?;
        let session = self.session().ok_or(RequestError::NotAuthenticated)?;

        let response = self.send_once(&method, &session, &request).await?;
        if !token_expired(&response) {
            return Ok(response);
        }

        match self.refreshed_after(session.generation).await {
            Some(refreshed) => Ok(self.send_once(&method, &refreshed, &request).await?),
            None => Ok(response),
        }
    }

    async fn send_once(
        &self,
        method: &Method,
        session: &Session,
        request: &XrpcRequest,
    ) -> Result<XrpcResponse, RequestError> {
        let client = self.client();
        let base = session.pds_endpoint.as_ref().unwrap_or(client.service());
        let url = resolve(base, &request.url)?;

        let mut builder = client.http().request(method.clone(), url).header(
            AUTHORIZATION,
            format!("Bearer {}", session.access_token.expose()),
        );
        for (name, value) in &request.headers {
            if RESERVED_HEADERS.contains(&name.to_ascii_lowercase().as_str()) {
                continue;
            }
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| RequestError::Invalid(format!("header name {name:?}")))?;
            let value = latin1_bytes(value)
                .and_then(|bytes| HeaderValue::from_bytes(&bytes).ok())
                .ok_or_else(|| RequestError::Invalid(format!("value of header {name}")))?;
            builder = builder.header(name, value);
        }
        if let Some(body) = &request.body {
            builder = builder.body(body.clone());
        }

        let timeout = client.timeout();
        let response = builder
            .send()
            .await
            .map_err(|err| XrpcError::from_reqwest(err, timeout))?;
        let status = response.status().as_u16();
        let headers = response
            .headers()
            .iter()
            .map(|(name, value)| (name.as_str().to_owned(), latin1_string(value.as_bytes())))
            .collect();
        let body = response
            .bytes()
            .await
            .map_err(|err| XrpcError::from_reqwest(err, timeout))?;

        Ok(XrpcResponse {
            status,
            headers,
            body,
        })
    }

    /// Asks for a refresh of session `generation` and waits for its outcome. Returns the new
    /// session, or `None` when the refresh failed, the session was lost, or no new session came
    /// within the request timeout.
    async fn refreshed_after(&self, generation: u64) -> Option<Arc<Session>> {
        let mut sessions = self.subscribe_session();
        self.request_refresh(generation);

        let wait = async {
            loop {
                if let Some(session) = sessions.borrow_and_update().as_ref() {
                    if session.generation > generation {
                        return Some(Arc::clone(session));
                    }
                }
                sessions.changed().await.ok()?;

                // A change that leaves the same session is the driver reporting a failed
                // refresh attempt. A logout means a full login follows: keep waiting for it.
                if let Some(session) = sessions.borrow().as_ref() {
                    if session.generation <= generation {
                        return None;
                    }
                }
            }
        };
        let limit = self.client().timeout().max(Duration::from_secs(1));
        tokio::time::timeout(limit, wait).await.ok().flatten()
    }
}

/// Encodes a header value as fetch's `Headers` stores it, a ByteString: one character per byte.
/// Returns `None` when a character is above U+00FF, because no header byte can represent it.
fn latin1_bytes(value: &str) -> Option<Vec<u8>> {
    value
        .chars()
        .map(|c| u8::try_from(u32::from(c)).ok())
        .collect()
}

/// Decodes header bytes the way fetch does: each byte becomes the character with that code, so
/// any byte sequence passes through unchanged.
fn latin1_string(bytes: &[u8]) -> String {
    bytes.iter().map(|&byte| char::from(byte)).collect()
}

/// Reports whether a response rejects the access token as expired or not accepted.
fn token_expired(response: &XrpcResponse) -> bool {
    match response.status {
        401 => true,
        400 => serde_json::from_slice::<serde_json::Value>(&response.body)
            .ok()
            .and_then(|body| {
                body.get("error")?
                    .as_str()
                    .map(|name| name == "ExpiredToken")
            })
            .unwrap_or(false),
        _ => false,
    }
}

/// Resolves `target` against the PDS endpoint. Only paths on that endpoint are allowed: an
/// absolute URL to another origin would receive the access token.
fn resolve(base: &Url, target: &str) -> Result<Url, RequestError> {
    let url = base
        .join(target)
        .map_err(|err| RequestError::Invalid(format!("URL {target:?}: {err}")))?;
    if url.origin() != base.origin() {
        return Err(RequestError::Invalid(format!(
            "URL {target:?} is not on the PDS {}",
            base.origin().ascii_serialization()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn response(status: u16, body: &str) -> XrpcResponse {
        XrpcResponse {
            status,
            headers: Vec::new(),
            body: Bytes::from(body.to_owned()),
        }
    }

    #[test]
    fn expired_token_detection() {
        assert!(token_expired(&response(401, "")));
        assert!(token_expired(&response(
            400,
            r#"{"error":"ExpiredToken","message":"x"}"#
        )));
        assert!(!token_expired(&response(
            400,
            r#"{"error":"InvalidRequest"}"#
        )));
        assert!(!token_expired(&response(400, "not json")));
        assert!(!token_expired(&response(
            403,
            r#"{"error":"ExpiredToken"}"#
        )));
        assert!(!token_expired(&response(200, "{}")));
    }

    #[test]
    fn header_values_round_trip_as_bytes() {
        let bytes = [b'c', b'a', b'f', 0xE9, 0xC3, 0xA9];

        let text = latin1_string(&bytes);
        assert_eq!(text, "caf\u{e9}\u{c3}\u{a9}");
        assert_eq!(latin1_bytes(&text), Some(bytes.to_vec()));
        assert_eq!(latin1_bytes("caf\u{20ac}"), None);
    }

    #[test]
    fn resolve_keeps_requests_on_the_pds() {
        let base = Url::parse("http://127.0.0.1:2583").unwrap();

        let url = resolve(
            &base,
            "/xrpc/com.atproto.repo.listRecords?repo=did%3Aplc%3Ax",
        )
        .unwrap();
        assert_eq!(
            url.as_str(),
            "http://127.0.0.1:2583/xrpc/com.atproto.repo.listRecords?repo=did%3Aplc%3Ax"
        );
        assert!(resolve(&base, "http://127.0.0.1:2583/xrpc/x").is_ok());
        assert!(resolve(&base, "http://127.0.0.2:2583/xrpc/x").is_err());
        assert!(resolve(&base, "//127.0.0.2/xrpc/x").is_err());
    }
}

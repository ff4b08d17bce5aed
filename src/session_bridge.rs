//! The native half of `getAgent()`: a handle that `index.js` wraps in an `@atproto/api` Agent.
//! Its `fetch` sends the Agent's requests through the Rust core, which adds the access token,
//! so no token ever reaches JavaScript.

use std::sync::Arc;

use napi::bindgen_prelude::{Buffer, Either, PromiseRaw, Uint8Array};
use napi::{Env, Error, Result, Status};
use napi_derive::napi;

use crate::core::agent::AgentCore;
use crate::core::request::{RequestError, XrpcRequest};

/// The public part of the session: who the agent is logged in as. No tokens.
#[napi(object)]
pub struct ForumAgentSession {
    pub did: String,
    pub handle: String,
    pub email: Option<String>,
    pub email_confirmed: Option<bool>,
    pub active: Option<bool>,
    pub status: Option<String>,
}

/// A response read in full, for `index.js` to turn into a `Response`.
#[napi(object, object_to_js = true)]
pub struct NativeResponse {
    pub status: u32,
    /// Header names and values, alternating.
    pub headers: Vec<String>,
    pub body: Buffer,
}

/// The session manager inside the Agent that `getAgent()` returns, implementing the
/// `SessionManager` interface of `@atproto/api` (`did` and `fetchHandler`, the latter in
/// `index.js`). Created by `getAgent()`, not by `new`.
#[napi]
pub struct NativeSessionManager {
    core: Arc<AgentCore>,
}

impl NativeSessionManager {
    pub fn new(core: Arc<AgentCore>) -> Self {
        Self { core }
    }
}

#[napi]
impl NativeSessionManager {
    /// Returns the DID of the session, or `undefined` while logged out.
    #[napi(getter, catch_unwind)]
    pub fn did(&self) -> Option<String> {
        self.core.session().map(|session| session.did.clone())
    }

    /// Returns the timeout of each request to the PDS, in milliseconds.
    #[napi(getter, catch_unwind)]
    pub fn request_timeout_ms(&self) -> u32 {
        u32::try_from(self.core.request_timeout().as_millis()).unwrap_or(u32::MAX)
    }

    /// Returns the public part of the session, or `undefined` while logged out.
    #[napi(getter, catch_unwind)]
    pub fn session(&self) -> Option<ForumAgentSession> {
        self.core.session().map(|session| ForumAgentSession {
            did: session.did.clone(),
            handle: session.handle.clone(),
            email: session.email.clone(),
            email_confirmed: session.email_confirmed,
            active: session.active,
            status: session.status.clone(),
        })
    }

    /// Sends one request to the PDS with the session's access token. `url` is relative to the
    /// PDS (`/xrpc/<nsid>?<params>`); `headers` alternates names and values.
    #[napi(catch_unwind)]
    pub fn fetch<'env>(
        &self,
        env: &'env Env,
        method: String,
        url: String,
        headers: Vec<String>,
        body: Option<Either<String, Uint8Array>>,
    ) -> Result<PromiseRaw<'env, NativeResponse>> {
        if !headers.len().is_multiple_of(2) {
            return Err(Error::new(
                Status::InvalidArg,
                "headers must alternate names and values",
            ));
        }
        let headers = headers
            .chunks_exact(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        let body = body.map(|body| match body {
            Either::A(text) => bytes::Bytes::from(text),
            Either::B(bytes) => bytes::Bytes::copy_from_slice(&bytes),
        });
        let request = XrpcRequest {
            method,
            url,
            headers,
            body,
        };

        let core = Arc::clone(&self.core);
        env.spawn_future(async move {
            let response = core.send(request).await.map_err(to_napi_error)?;
            let headers = response
                .headers
                .into_iter()
                .flat_map(|(name, value)| [name, value])
                .collect();
            Ok(NativeResponse {
                status: u32::from(response.status),
                headers,
                body: Buffer::from(Vec::from(response.body)),
            })
        })
    }
}

fn to_napi_error(err: RequestError) -> Error {
    let status = match err {
        RequestError::Invalid(_) => Status::InvalidArg,
        _ => Status::GenericFailure,
    };
    Error::new(status, err.to_string())
}

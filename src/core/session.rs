//! The session the PDS issued: who the agent is logged in as and the tokens that prove it.

use std::time::{Duration, SystemTime};

use serde::Deserialize;
use url::Url;

use super::error::XrpcError;
use super::jwt;
use super::secret::Secret;

/// The body of a `createSession` or `refreshSession` response.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionResponse {
    pub access_jwt: Secret,
    pub refresh_jwt: Secret,
    pub did: String,
    pub handle: String,
    #[serde(default)]
    pub email: Option<String>,
    #[serde(default)]
    pub email_confirmed: Option<bool>,
    #[serde(default)]
    pub active: Option<bool>,
    #[serde(default)]
    pub status: Option<String>,
    #[serde(default)]
    pub did_doc: Option<serde_json::Value>,
}

/// A live session. Each login or refresh creates a new one with a higher `generation`, so a
/// request can tell whether the token it used has been replaced since.
#[derive(Debug)]
pub struct Session {
    pub generation: u64,
    pub did: String,
    pub handle: String,
    pub email: Option<String>,
    pub email_confirmed: Option<bool>,
    pub active: Option<bool>,
    pub status: Option<String>,
    pub access_token: Secret,
    pub refresh_token: Secret,
    pub access_expires_at: Option<SystemTime>,
    /// The `#atproto_pds` endpoint from the DID document, when the PDS sent one.
    pub pds_endpoint: Option<Url>,
}

impl Session {
    pub fn from_response(response: SessionResponse, generation: u64) -> Result<Self, XrpcError> {
        if !response.did.starts_with("did:") {
            return Err(XrpcError::InvalidResponse(
                "session DID is not a DID".to_owned(),
            ));
        }
        if response.access_jwt.is_blank() || response.refresh_jwt.is_blank() {
            return Err(XrpcError::InvalidResponse(
                "session has an empty token".to_owned(),
            ));
        }

        let pds_endpoint = response
            .did_doc
            .as_ref()
            .and_then(|doc| pds_endpoint(doc, &response.did));
        Ok(Self {
            generation,
            access_expires_at: jwt::expiry(response.access_jwt.expose()),
            did: response.did,
            handle: response.handle,
            email: response.email,
            email_confirmed: response.email_confirmed,
            active: response.active,
            status: response.status,
            access_token: response.access_jwt,
            refresh_token: response.refresh_jwt,
            pds_endpoint,
        })
    }

    /// Returns how long the access token stays valid after `now`, when its expiry is known.
    pub fn access_expires_in(&self, now: SystemTime) -> Option<Duration> {
        self.access_expires_at
            .map(|expires_at| expires_at.duration_since(now).unwrap_or(Duration::ZERO))
    }

    pub fn access_expired(&self, now: SystemTime) -> bool {
        self.access_expires_in(now) == Some(Duration::ZERO)
    }
}

/// Finds the PDS endpoint in a DID document: the service with id `#atproto_pds` (or
/// `<did>#atproto_pds`) of type `AtprotoPersonalDataServer` and an http(s) endpoint.
pub fn pds_endpoint(did_doc: &serde_json::Value, did: &str) -> Option<Url> {
    let full_id = format!("{did}#atproto_pds");
    let services = did_doc.get("service")?.as_array()?;

    services.iter().find_map(|service| {
        let id = service.get("id")?.as_str()?;
        let kind = service.get("type")?.as_str()?;
        if (id != "#atproto_pds" && id != full_id) || kind != "AtprotoPersonalDataServer" {
            return None;
        }

        let endpoint = Url::parse(service.get("serviceEndpoint")?.as_str()?).ok()?;
        matches!(endpoint.scheme(), "http" | "https").then_some(endpoint)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const DID: &str = "did:plc:abc123";

    fn response(did_doc: Option<serde_json::Value>) -> SessionResponse {
        serde_json::from_value(json!({
            "accessJwt": "eyJhbGciOiJIUzI1NiJ9.eyJleHAiOjIwMDAwMDAwMDB9.sig",
            "refreshJwt": "refresh-token-value",
            "did": DID,
            "handle": "forum.example",
            "email": "forum@example.com",
            "active": true,
            "didDoc": did_doc,
        }))
        .unwrap()
    }

    #[test]
    fn parses_session_and_expiry() {
        let session = Session::from_response(response(None), 3).unwrap();

        assert_eq!(session.generation, 3);
        assert_eq!(session.handle, "forum.example");
        assert_eq!(session.active, Some(true));
        assert_eq!(
            session.access_expires_at,
            Some(SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_000))
        );
        assert_eq!(session.pds_endpoint, None);
    }

    #[test]
    fn debug_output_has_no_tokens() {
        let session = Session::from_response(response(None), 1).unwrap();
        let printed = format!("{session:?}");

        assert!(!printed.contains("refresh-token-value"));
        assert!(!printed.contains("eyJ"));
    }

    #[test]
    fn rejects_bad_did_and_empty_tokens() {
        let mut bad_did = response(None);
        bad_did.did = "forum.example".into();
        assert!(Session::from_response(bad_did, 1).is_err());

        let mut empty_token = response(None);
        empty_token.refresh_jwt = Secret::new(String::new());
        assert!(Session::from_response(empty_token, 1).is_err());
    }

    #[test]
    fn finds_pds_endpoint_by_short_or_full_id() {
        for id in ["#atproto_pds", "did:plc:abc123#atproto_pds"] {
            let doc = json!({"service": [
                {"id": "#other", "type": "Other", "serviceEndpoint": "http://127.0.0.1:1"},
                {"id": id, "type": "AtprotoPersonalDataServer", "serviceEndpoint": "http://localhost:2583"},
            ]});
            let session = Session::from_response(response(Some(doc)), 1).unwrap();

            assert_eq!(
                session.pds_endpoint.unwrap().as_str(),
                "http://localhost:2583/"
            );
        }
    }

    #[test]
    fn ignores_wrong_type_scheme_or_id() {
        let docs = [
            json!({"service": [{"id": "#atproto_pds", "type": "Other", "serviceEndpoint": "http://localhost:1"}]}),
            json!({"service": [{"id": "#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "ftp://localhost"}]}),
            json!({"service": [{"id": "did:plc:other#atproto_pds", "type": "AtprotoPersonalDataServer", "serviceEndpoint": "http://localhost:1"}]}),
            json!({"service": "not a list"}),
            json!({}),
        ];

        for doc in docs {
            assert_eq!(pds_endpoint(&doc, DID), None, "{doc}");
        }
    }

    #[test]
    fn expiry_relative_to_now() {
        let session = Session::from_response(response(None), 1).unwrap();
        let before = SystemTime::UNIX_EPOCH + Duration::from_secs(1_999_999_990);
        let after = SystemTime::UNIX_EPOCH + Duration::from_secs(2_000_000_010);

        assert_eq!(
            session.access_expires_in(before),
            Some(Duration::from_secs(10))
        );
        assert!(!session.access_expired(before));
        assert!(session.access_expired(after));
    }
}

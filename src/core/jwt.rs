//! Reads the `exp` claim of an access token, to schedule the refresh before it expires.
//!
//! The signature is not checked: the PDS signed the token for itself, and the client only needs
//! to know when the PDS will stop accepting it.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;

/// Returns the expiry time from a JWT's `exp` claim (seconds since the Unix epoch), or `None`
/// when the token is not a JWT or has no numeric `exp`.
pub fn expiry(token: &str) -> Option<SystemTime> {
    let mut parts = token.split('.');
    let (_header, payload, _signature) = (parts.next()?, parts.next()?, parts.next()?);
    if parts.next().is_some() {
        return None;
    }

    let bytes = URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let claims: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let exp = claims.get("exp")?.as_f64()?;
    if !exp.is_finite() || exp < 0.0 {
        return None;
    }

    UNIX_EPOCH.checked_add(Duration::from_secs_f64(exp))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn token_with_payload(payload: &str) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"at+jwt"}"#);
        let body = URL_SAFE_NO_PAD.encode(payload);
        format!("{header}.{body}.c2lnbmF0dXJl")
    }

    #[test]
    fn reads_exp_seconds() {
        let token = token_with_payload(r#"{"scope":"com.atproto.access","exp":1767225600}"#);

        assert_eq!(
            expiry(&token),
            Some(UNIX_EPOCH + Duration::from_secs(1_767_225_600))
        );
    }

    #[test]
    fn accepts_padded_payload() {
        let header = URL_SAFE_NO_PAD.encode("{}");
        let token = format!("{header}.eyJleHAiOjEwfQ==.sig");

        assert_eq!(expiry(&token), Some(UNIX_EPOCH + Duration::from_secs(10)));
    }

    #[test]
    fn missing_or_invalid_exp_is_none() {
        let cases = [
            token_with_payload(r#"{"iat":1}"#),
            token_with_payload(r#"{"exp":"soon"}"#),
            token_with_payload(r#"{"exp":-5}"#),
            token_with_payload("not json"),
            "only.two".to_owned(),
            "a.b.c.d".to_owned(),
            "a.!!!.c".to_owned(),
            String::new(),
        ];

        for token in cases {
            assert_eq!(expiry(&token), None, "token {token:?}");
        }
    }
}

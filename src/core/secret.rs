//! A string that must never be logged: the password, the access token, the refresh token.

use std::fmt;

use zeroize::Zeroizing;

/// A secret string whose `Debug` and `Display` print `[redacted]` and whose memory is zeroed on
/// drop.
///
/// NOTE: only the copy this type owns is zeroed. Buffers that reqwest, hyper and serde_json
/// used on the way in (the response body, for example) are freed without zeroing.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(value: String) -> Self {
        Self(Zeroizing::new(value))
    }

    /// Returns the secret itself; call it only where the value goes on the wire.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_blank(&self) -> bool {
        self.0.trim().is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret::new)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_and_display_hide_the_value() {
        let secret = Secret::new("hunter2-password".to_owned());

        assert_eq!(format!("{secret:?}"), "Secret([redacted])");
        assert_eq!(format!("{secret}"), "[redacted]");
        assert_eq!(secret.expose(), "hunter2-password");
    }

    #[test]
    fn struct_debug_hides_nested_secret() {
        #[derive(Debug)]
        #[allow(dead_code)]
        struct Credentials {
            identifier: String,
            password: Secret,
        }

        let credentials = Credentials {
            identifier: "forum.example".to_owned(),
            password: Secret::new("hunter2-password".to_owned()),
        };
        let printed = format!("{credentials:?}");

        assert!(printed.contains("forum.example"));
        assert!(!printed.contains("hunter2"));
    }

    #[test]
    fn blank_detects_whitespace_only() {
        assert!(Secret::new("  \t".to_owned()).is_blank());
        assert!(!Secret::new(" x ".to_owned()).is_blank());
    }
}

//! Errors from talking to the PDS, and the classification the retry policy acts on.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use reqwest::header::HeaderMap;

/// Maximum wait that a `Retry-After` or `RateLimit-Reset` header can impose: the reference PDS
/// resets its daily createSession limit after at most a day.
const MAX_SERVER_WAIT: Duration = Duration::from_secs(24 * 60 * 60);

/// Error names with which the PDS rejects the credentials or the session itself. Retrying with
/// the same password or token cannot succeed, and repeated failed logins can lock the account.
const REJECTION_NAMES: &[&str] = &[
    "AuthenticationRequired",
    "AccountTakedown",
    "AuthFactorTokenRequired",
    "ExpiredToken",
    "InvalidToken",
];

/// A failed XRPC call to the PDS. `Display` gives a message that is safe to log: it carries the
/// PDS's own error message or the network error, never a header or a request body.
#[derive(Debug, thiserror::Error)]
pub enum XrpcError {
    /// The request never got a response: connection refused or reset, DNS failure, TLS failure.
    #[error("{0}")]
    Network(String),

    /// No complete response within the request timeout.
    #[error("request to the PDS timed out after {} ms", .0.as_millis())]
    Timeout(Duration),

    /// The PDS returned a non-2xx status.
    #[error("{}", status_message(*.status, .error.as_deref(), .message.as_deref()))]
    Status {
        status: u16,
        error: Option<String>,
        message: Option<String>,
        /// Wait requested by `Retry-After` or `RateLimit-Reset`, whichever is later.
        server_wait: Option<Duration>,
    },

    /// A 2xx response whose body is not what the lexicon promises.
    #[error("invalid response from the PDS: {0}")]
    InvalidResponse(String),
}

/// Class of an error, which decides whether the agent retries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The PDS rejected the credentials or the token: never retried with the same secret.
    Rejected,
    /// The PDS could not be reached or is overloaded: retried on the retry schedule.
    Transient,
    /// Anything else (an unexpected 4xx, a malformed response): not retried.
    Other,
}

impl XrpcError {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Self::Network(_) | Self::Timeout(_) => ErrorKind::Transient,
            Self::Status { status, error, .. } => classify_status(*status, error.as_deref()),
            Self::InvalidResponse(_) => ErrorKind::Other,
        }
    }

    /// Returns how long the PDS asked the client to wait, from a 429 or 503 response.
    pub fn server_wait(&self) -> Option<Duration> {
        match self {
            Self::Status { server_wait, .. } => *server_wait,
            _ => None,
        }
    }

    /// Converts a reqwest error, keeping the cause chain (for example "Connection refused")
    /// because reqwest's own message alone does not say what went wrong.
    pub fn from_reqwest(err: reqwest::Error, timeout: Duration) -> Self {
        if err.is_timeout() {
            return Self::Timeout(timeout);
        }

        let mut message = err.to_string();
        let mut source = std::error::Error::source(&err);
        while let Some(cause) = source {
            let text = cause.to_string();
            if !message.contains(&text) {
                message.push_str(": ");
                message.push_str(&text);
            }
            source = cause.source();
        }
        Self::Network(message)
    }
}

fn classify_status(status: u16, error: Option<&str>) -> ErrorKind {
    if error.is_some_and(|name| REJECTION_NAMES.contains(&name)) || status == 401 {
        return ErrorKind::Rejected;
    }
    if status == 429 || (500..=599).contains(&status) {
        return ErrorKind::Transient;
    }
    ErrorKind::Other
}

fn status_message(status: u16, error: Option<&str>, message: Option<&str>) -> String {
    match (error, message) {
        (_, Some(message)) if !message.is_empty() => message.to_owned(),
        (Some(error), _) if !error.is_empty() => format!("{error} (HTTP {status})"),
        _ => format!("PDS returned HTTP {status}"),
    }
}

/// Reads the wait the PDS requests: `Retry-After` (seconds or an HTTP date) and
/// `RateLimit-Reset` (Unix time in seconds, as the reference PDS sends it). Returns the later of
/// the two, capped at a day.
pub fn server_wait(headers: &HeaderMap, now: SystemTime) -> Option<Duration> {
    let header = |name: &str| headers.get(name)?.to_str().ok().map(str::trim);

    let retry_after = header("retry-after").and_then(|value| {
        if is_whole_number(value) {
            // Too many digits for a u64 is still a request to wait: the cap below applies.
            return Some(value.parse().map_or(MAX_SERVER_WAIT, Duration::from_secs));
        }
        let date = chrono::DateTime::parse_from_rfc2822(value).ok()?;
        until(now, date.timestamp())
    });
    let reset = header("ratelimit-reset")
        .filter(|value| is_whole_number(value))
        .and_then(|value| match value.parse::<i64>() {
            Ok(epoch_seconds) => until(now, epoch_seconds),
            Err(_) => Some(MAX_SERVER_WAIT),
        });

    retry_after.max(reset).map(|wait| wait.min(MAX_SERVER_WAIT))
}

fn is_whole_number(value: &str) -> bool {
    !value.is_empty() && value.bytes().all(|byte| byte.is_ascii_digit())
}

fn until(now: SystemTime, epoch_seconds: i64) -> Option<Duration> {
    let target = UNIX_EPOCH.checked_add(Duration::from_secs(u64::try_from(epoch_seconds).ok()?))?;
    Some(target.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    fn status(status: u16, error: Option<&str>) -> XrpcError {
        XrpcError::Status {
            status,
            error: error.map(str::to_owned),
            message: None,
            server_wait: None,
        }
    }

    #[test]
    fn classification_table() {
        let cases = [
            (
                status(401, Some("AuthenticationRequired")),
                ErrorKind::Rejected,
            ),
            (status(401, Some("AccountTakedown")), ErrorKind::Rejected),
            (
                status(401, Some("AuthFactorTokenRequired")),
                ErrorKind::Rejected,
            ),
            (
                status(400, Some("AuthFactorTokenRequired")),
                ErrorKind::Rejected,
            ),
            (status(400, Some("ExpiredToken")), ErrorKind::Rejected),
            (status(400, Some("InvalidToken")), ErrorKind::Rejected),
            (status(401, None), ErrorKind::Rejected),
            (
                status(500, Some("InternalServerError")),
                ErrorKind::Transient,
            ),
            (status(502, None), ErrorKind::Transient),
            (status(503, None), ErrorKind::Transient),
            (status(504, None), ErrorKind::Transient),
            (status(429, Some("RateLimitExceeded")), ErrorKind::Transient),
            (status(400, Some("InvalidRequest")), ErrorKind::Other),
            (status(404, None), ErrorKind::Other),
            (status(413, None), ErrorKind::Other),
            (
                XrpcError::Network("connection refused".into()),
                ErrorKind::Transient,
            ),
            (
                XrpcError::Timeout(Duration::from_secs(30)),
                ErrorKind::Transient,
            ),
            (
                XrpcError::InvalidResponse("not JSON".into()),
                ErrorKind::Other,
            ),
        ];

        for (error, expected) in cases {
            assert_eq!(error.kind(), expected, "{error:?}");
        }
    }

    #[test]
    fn message_prefers_pds_message() {
        let error = XrpcError::Status {
            status: 401,
            error: Some("AuthenticationRequired".into()),
            message: Some("Invalid identifier or password".into()),
            server_wait: None,
        };

        assert_eq!(error.to_string(), "Invalid identifier or password");
        assert_eq!(status(503, None).to_string(), "PDS returned HTTP 503");
        assert_eq!(
            status(400, Some("InvalidRequest")).to_string(),
            "InvalidRequest (HTTP 400)"
        );
        assert_eq!(
            XrpcError::Timeout(Duration::from_millis(1500)).to_string(),
            "request to the PDS timed out after 1500 ms"
        );
    }

    #[test]
    fn server_wait_reads_both_headers() {
        let now = UNIX_EPOCH + Duration::from_secs(1_000_000);
        let mut headers = HeaderMap::new();
        headers.insert("retry-after", HeaderValue::from_static("20"));
        assert_eq!(server_wait(&headers, now), Some(Duration::from_secs(20)));

        headers.insert("ratelimit-reset", HeaderValue::from_static("1000045"));
        assert_eq!(server_wait(&headers, now), Some(Duration::from_secs(45)));

        headers.insert("retry-after", HeaderValue::from_static("90"));
        assert_eq!(server_wait(&headers, now), Some(Duration::from_secs(90)));
    }

    #[test]
    fn server_wait_handles_dates_past_and_garbage() {
        let now = UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut headers = HeaderMap::new();
        headers.insert(
            "retry-after",
            HeaderValue::from_static("Tue, 14 Nov 2023 22:30:00 GMT"),
        );
        assert_eq!(server_wait(&headers, now), Some(Duration::from_secs(1_000)));

        headers.insert("retry-after", HeaderValue::from_static("soon"));
        headers.insert("ratelimit-reset", HeaderValue::from_static("5"));
        assert_eq!(server_wait(&headers, now), Some(Duration::ZERO));

        headers.insert("ratelimit-reset", HeaderValue::from_static("99999999999"));
        assert_eq!(server_wait(&headers, now), Some(MAX_SERVER_WAIT));

        headers.insert(
            "retry-after",
            HeaderValue::from_static("99999999999999999999999"),
        );
        headers.insert(
            "ratelimit-reset",
            HeaderValue::from_static("99999999999999999999999"),
        );
        assert_eq!(server_wait(&headers, now), Some(MAX_SERVER_WAIT));

        assert_eq!(server_wait(&HeaderMap::new(), now), None);
    }
}

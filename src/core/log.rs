//! Log records the agent emits, and the sink that delivers them to the application's logger.

use super::secret::Secret;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug,
    Info,
    Warn,
    Error,
}

/// A value in a log record's context object.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
}

/// One call to the logger: a fixed message and a context object, as the original class logs.
#[derive(Clone, Debug, PartialEq)]
pub struct LogRecord {
    pub level: Level,
    pub message: &'static str,
    pub context: Vec<(&'static str, Value)>,
}

impl LogRecord {
    /// Returns the context value under `key`, for tests and for sinks that filter.
    pub fn get(&self, key: &str) -> Option<&Value> {
        self.context
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value)
    }
}

/// Receives the agent's log records. Implementations must not block: the agent calls `log` from
/// its tokio tasks.
pub trait LogSink: Send + Sync + 'static {
    fn log(&self, record: LogRecord);
}

/// Replaces every occurrence of each secret in `text` with `[redacted]`, so an error message
/// that echoes a request back does not leak the password or a token into the logs. Secrets
/// shorter than 4 characters are left alone, because replacing them would mangle the text.
pub fn scrub(text: &str, secrets: &[&Secret]) -> String {
    let mut scrubbed = text.to_owned();
    for secret in secrets {
        let value = secret.expose();
        if value.len() >= 4 && scrubbed.contains(value) {
            scrubbed = scrubbed.replace(value, "[redacted]");
        }
    }
    scrubbed
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrub_removes_each_secret() {
        let password = Secret::new("correct-horse".to_owned());
        let token = Secret::new("eyJtoken".to_owned());
        let text = "rejected correct-horse and eyJtoken, correct-horse again";

        assert_eq!(
            scrub(text, &[&password, &token]),
            "rejected [redacted] and [redacted], [redacted] again"
        );
    }

    #[test]
    fn scrub_ignores_tiny_secrets() {
        let short = Secret::new("a".to_owned());

        assert_eq!(scrub("a cat", &[&short]), "a cat");
    }
}

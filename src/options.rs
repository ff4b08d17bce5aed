//! Checks the constructor's arguments and turns them into the core's configuration. Each
//! problem becomes a `TypeError` (wrong type) or a `RangeError` (value out of range) that names
//! the argument.

use std::time::Duration;

use napi::bindgen_prelude::{JsObjectValue, Object, Unknown};
use napi::{JsValue, ValueType};
use url::Url;

use crate::core::retry::RetryPolicy;
use crate::logger::METHODS;

/// Maximum delay or interval accepted, in milliseconds: one day.
const MAX_DELAY_MS: f64 = 86_400_000.0;
const MAX_RETRIES_LIMIT: f64 = 1_000.0;
const MAX_RETRY_DELAYS: u32 = 100;
const MAX_REQUEST_TIMEOUT_MS: f64 = 600_000.0;
const MIN_REFRESH_INTERVAL_MS: f64 = 1_000.0;
const OPTION_NAMES: [&str; 4] = [
    "retryDelaysMs",
    "maxRetries",
    "refreshIntervalMs",
    "requestTimeoutMs",
];

/// An invalid constructor argument.
#[derive(Debug, PartialEq, Eq)]
pub enum ArgumentError {
    Type(String),
    Range(String),
}

/// Tuning options with their defaults filled in.
#[derive(Debug, PartialEq, Eq)]
pub struct Tuning {
    pub retry: RetryPolicy,
    pub refresh_interval: Duration,
    pub request_timeout: Duration,
}

impl Default for Tuning {
    fn default() -> Self {
        Self {
            retry: RetryPolicy::default(),
            refresh_interval: Duration::from_secs(30 * 60),
            request_timeout: Duration::from_secs(30),
        }
    }
}

/// Parses `pdsUrl`: an absolute http or https URL with a host and no user name or password.
pub fn parse_pds_url(value: &str) -> Result<Url, ArgumentError> {
    // The value itself is never echoed: arguments passed in the wrong order would put the
    // password here.
    let invalid = |found: String| {
        ArgumentError::Type(format!(
            "pdsUrl must be an http:// or https:// URL such as \"http://127.0.0.1:2583\", got {found}"
        ))
    };

    let url = Url::parse(value.trim()).map_err(|_| invalid("a string that is not a URL".into()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(invalid(format!("a URL with scheme {:?}", url.scheme())));
    }
    if url.host_str().is_none() {
        return Err(invalid("a URL without a host".into()));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(ArgumentError::Type(
            "pdsUrl must not contain a user name or password".to_owned(),
        ));
    }
    Ok(url)
}

pub fn expect_string(name: &str, value: &Unknown) -> Result<String, ArgumentError> {
    if value.get_type().ok() != Some(ValueType::String) {
        return Err(ArgumentError::Type(format!(
            "{name} must be a string, got {}",
            describe(value)
        )));
    }
    // SAFETY: the value was just checked to be a string.
    unsafe { value.cast::<String>() }
        .map_err(|err| ArgumentError::Type(format!("{name} is not a valid string: {err}")))
}

/// Checks that `value` is an object with `debug`, `info`, `warn` and `error` methods.
pub fn expect_logger<'env>(value: &Unknown<'env>) -> Result<Object<'env>, ArgumentError> {
    let shape = "logger must be an object with info, warn, error and debug methods";
    if !matches!(
        value.get_type().ok(),
        Some(ValueType::Object | ValueType::Function)
    ) {
        return Err(ArgumentError::Type(format!(
            "{shape}, got {}",
            describe(value)
        )));
    }

    // SAFETY: the value was just checked to be an object (or a function, which is one).
    let logger: Object =
        unsafe { value.cast() }.map_err(|err| ArgumentError::Type(format!("{shape}: {err}")))?;
    for method in METHODS {
        let property: Unknown = logger.get_named_property(method).map_err(|err| {
            ArgumentError::Type(format!("logger.{method} could not be read: {err}"))
        })?;
        if property.get_type().ok() != Some(ValueType::Function) {
            return Err(ArgumentError::Type(format!(
                "logger.{method} must be a function, got {}; {shape}",
                describe(&property)
            )));
        }
    }
    Ok(logger)
}

/// Parses the optional `options` argument. `undefined` gives the defaults.
pub fn parse_options(value: Option<&Unknown>) -> Result<Tuning, ArgumentError> {
    let mut tuning = Tuning::default();
    let Some(value) = value.filter(|value| value.get_type().ok() != Some(ValueType::Undefined))
    else {
        return Ok(tuning);
    };
    if value.get_type().ok() != Some(ValueType::Object) || value.is_array().unwrap_or(false) {
        return Err(ArgumentError::Type(format!(
            "options must be an object, got {}",
            describe(value)
        )));
    }

    // SAFETY: the value was just checked to be an object.
    let options: Object = unsafe { value.cast() }
        .map_err(|err| ArgumentError::Type(format!("options could not be read: {err}")))?;
    reject_unknown_options(&options)?;

    if let Some(delays) = get_defined(&options, "retryDelaysMs")? {
        tuning.retry.delays = parse_delays(&delays)?;
    }
    if let Some(max_retries) = get_defined(&options, "maxRetries")? {
        tuning.retry.max_retries =
            integer_in_range("options.maxRetries", &max_retries, 0.0, MAX_RETRIES_LIMIT)? as u32;
    }
    if let Some(interval) = get_defined(&options, "refreshIntervalMs")? {
        let name = "options.refreshIntervalMs";
        let ms = integer_in_range(name, &interval, MIN_REFRESH_INTERVAL_MS, MAX_DELAY_MS)?;
        tuning.refresh_interval = Duration::from_millis(ms);
    }
    if let Some(timeout) = get_defined(&options, "requestTimeoutMs")? {
        let name = "options.requestTimeoutMs";
        let ms = integer_in_range(name, &timeout, 1.0, MAX_REQUEST_TIMEOUT_MS)?;
        tuning.request_timeout = Duration::from_millis(ms);
    }
    Ok(tuning)
}

fn reject_unknown_options(options: &Object) -> Result<(), ArgumentError> {
    let read_error =
        |err: napi::Error| ArgumentError::Type(format!("options could not be read: {err}"));
    let names = options.get_property_names().map_err(read_error)?;
    let count = names.get_array_length().map_err(read_error)?;

    for index in 0..count {
        let name: String = names.get_element(index).map_err(read_error)?;
        if !OPTION_NAMES.contains(&name.as_str()) {
            return Err(ArgumentError::Type(format!(
                "options.{name} is not a known option; the options are {}",
                OPTION_NAMES.join(", ")
            )));
        }
    }
    Ok(())
}

fn get_defined<'env>(
    options: &Object<'env>,
    name: &str,
) -> Result<Option<Unknown<'env>>, ArgumentError> {
    let value: Unknown = options
        .get_named_property(name)
        .map_err(|err| ArgumentError::Type(format!("options.{name} could not be read: {err}")))?;
    Ok((value.get_type().ok() != Some(ValueType::Undefined)).then_some(value))
}

fn parse_delays(value: &Unknown) -> Result<Vec<Duration>, ArgumentError> {
    let name = "options.retryDelaysMs";
    if !value.is_array().unwrap_or(false) {
        return Err(ArgumentError::Type(format!(
            "{name} must be an array of milliseconds, got {}",
            describe(value)
        )));
    }

    // SAFETY: the value was just checked to be an array, which is an object.
    let array: Object = unsafe { value.cast() }
        .map_err(|err| ArgumentError::Type(format!("{name} could not be read: {err}")))?;
    let length = array
        .get_array_length()
        .map_err(|err| ArgumentError::Type(format!("{name} could not be read: {err}")))?;
    if length == 0 || length > MAX_RETRY_DELAYS {
        return Err(ArgumentError::Range(format!(
            "{name} must have between 1 and {MAX_RETRY_DELAYS} delays, got {length}"
        )));
    }

    (0..length)
        .map(|index| {
            let element: Unknown = array.get_element(index).map_err(|err| {
                ArgumentError::Type(format!("{name}[{index}] could not be read: {err}"))
            })?;
            let ms = integer_in_range(&format!("{name}[{index}]"), &element, 0.0, MAX_DELAY_MS)?;
            Ok(Duration::from_millis(ms))
        })
        .collect()
}

fn integer_in_range(name: &str, value: &Unknown, min: f64, max: f64) -> Result<u64, ArgumentError> {
    if value.get_type().ok() != Some(ValueType::Number) {
        return Err(ArgumentError::Type(format!(
            "{name} must be a number, got {}",
            describe(value)
        )));
    }

    // SAFETY: the value was just checked to be a number.
    let number: f64 = unsafe { value.cast() }
        .map_err(|err| ArgumentError::Type(format!("{name} could not be read: {err}")))?;
    if !number.is_finite() || number.fract() != 0.0 || number < min || number > max {
        return Err(ArgumentError::Range(format!(
            "{name} must be a whole number from {min} to {max}, got {number}"
        )));
    }
    Ok(number as u64)
}

/// Describes a JavaScript value's type for an error message, without its content: the content
/// could be the password passed in the wrong position.
fn describe(value: &Unknown) -> &'static str {
    match value.get_type() {
        Ok(ValueType::Undefined) => "undefined",
        Ok(ValueType::Null) => "null",
        Ok(ValueType::Boolean) => "a boolean",
        Ok(ValueType::Number) => "a number",
        Ok(ValueType::String) => "a string",
        Ok(ValueType::Symbol) => "a symbol",
        Ok(ValueType::Object) if value.is_array().unwrap_or(false) => "an array",
        Ok(ValueType::Object) => "an object",
        Ok(ValueType::Function) => "a function",
        Ok(ValueType::BigInt) => "a bigint",
        _ => "a value of unknown type",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_http_and_https_urls() {
        for value in [
            "http://127.0.0.1:2583",
            "https://localhost/",
            " http://localhost:1/pds ",
        ] {
            assert!(parse_pds_url(value).is_ok(), "{value}");
        }
    }

    #[test]
    fn rejects_other_urls() {
        for value in [
            "",
            "localhost:2583",
            "ftp://localhost",
            "file:///tmp/x",
            "http://",
            "not a url",
        ] {
            assert!(
                matches!(parse_pds_url(value), Err(ArgumentError::Type(_))),
                "{value:?}"
            );
        }
    }

    #[test]
    fn url_with_credentials_not_echoed() {
        let Err(ArgumentError::Type(message)) = parse_pds_url("http://forum:s3cret@localhost:1")
        else {
            panic!("URL with credentials was accepted");
        };

        assert!(message.contains("pdsUrl"));
        assert!(!message.contains("s3cret"));
    }
}

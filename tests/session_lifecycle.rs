//! The session state machine in virtual time: login, retry schedule, refresh and shutdown.

mod support;

use std::time::Duration;

use forum_agent::core::log::{Level, Value};
use forum_agent::core::retry::RetryPolicy;
use forum_agent::core::status::{
    Status, AUTHENTICATION_FAILED, CREDENTIALS_REJECTED, MAX_RETRIES_EXCEEDED, NOT_CONFIGURED,
    TEMPORARILY_UNAVAILABLE,
};
use support::*;
use tokio::time::Instant;

const SECOND: Duration = Duration::from_secs(1);
const MINUTE: Duration = Duration::from_secs(60);

fn int(value: Option<&Value>) -> i64 {
    match value {
        Some(Value::Int(number)) => *number,
        other => panic!("expected an integer, got {other:?}"),
    }
}

fn text(value: Option<&Value>) -> &str {
    match value {
        Some(Value::Str(text)) => text,
        other => panic!("expected a string, got {other:?}"),
    }
}

#[tokio::test(start_paused = true)]
async fn login_success_reports_authenticated() {
    let pds = ScriptedPds::default();
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    let state = agent.state();

    assert_eq!(state.status, Status::Authenticated);
    assert!(state.authenticated);
    assert!(state.last_auth_attempt.is_some());
    assert_eq!(state.retry_count, None);
    assert_eq!(state.next_retry_at, None);
    assert_eq!(state.error, None);
    assert_eq!(pds.login_calls()[0].secret, PASSWORD);

    let records = logger.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].level, Level::Info);
    assert_eq!(records[0].message, "ForumAgent authenticated");
    assert_eq!(text(records[0].get("handle")), HANDLE);
    assert_eq!(text(records[0].get("did")), DID);
}

#[tokio::test(start_paused = true)]
async fn default_schedule_runs_to_failed() {
    let pds = ScriptedPds::default();
    for _ in 0..6 {
        pds.login(network_error());
    }
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    let start = Instant::now();

    agent.initialize().await;
    assert_eq!(agent.state().status, Status::Retrying);
    assert_eq!(agent.state().retry_count, Some(1));
    assert_eq!(
        agent.state().error.as_deref(),
        Some(TEMPORARILY_UNAVAILABLE)
    );
    assert!(agent.state().next_retry_at.is_some());

    run_for(20 * MINUTE).await;

    let offsets: Vec<Duration> = pds
        .login_calls()
        .iter()
        .map(|call| call.at - start)
        .collect();
    let expected = [0, 10, 40, 100, 400, 1000].map(Duration::from_secs);
    assert_eq!(offsets, expected);

    let state = agent.state();
    assert_eq!(state.status, Status::Failed);
    assert!(!state.authenticated);
    assert_eq!(state.error.as_deref(), Some(MAX_RETRIES_EXCEEDED));
    assert_eq!(state.retry_count, None);
    assert_eq!(state.next_retry_at, None);

    let records = logger.records();
    assert_eq!(records.len(), 6);
    for (index, record) in records[..5].iter().enumerate() {
        assert_eq!(record.level, Level::Warn);
        assert_eq!(record.message, "ForumAgent auth retrying");
        assert_eq!(int(record.get("attempt")), index as i64 + 1);
        assert_eq!(int(record.get("maxAttempts")), 5);
        assert_eq!(text(record.get("handle")), HANDLE);
        assert!(text(record.get("error")).contains("Connection refused"));
    }
    let retry_in: Vec<i64> = records[..5]
        .iter()
        .map(|r| int(r.get("retryInMs")))
        .collect();
    assert_eq!(retry_in, [10_000, 30_000, 60_000, 300_000, 600_000]);

    let last = &records[5];
    assert_eq!(last.level, Level::Error);
    assert_eq!(last.message, "ForumAgent auth failed");
    assert_eq!(int(last.get("attempts")), 6);
    assert_eq!(text(last.get("reason")), "max retries exceeded");

    run_for(60 * MINUTE).await;
    assert_eq!(pds.login_calls().len(), 6);
}

#[tokio::test(start_paused = true)]
async fn retry_then_success_clears_retry_state() {
    let pds = ScriptedPds::default();
    pds.login(status_error(503, "ServiceUnavailable", None));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    assert_eq!(agent.state().status, Status::Retrying);

    run_for(11 * SECOND).await;

    let state = agent.state();
    assert_eq!(state.status, Status::Authenticated);
    assert_eq!(state.retry_count, None);
    assert_eq!(state.next_retry_at, None);
    assert_eq!(state.error, None);
    assert_eq!(pds.login_calls().len(), 2);
    assert_eq!(
        logger.messages(),
        ["ForumAgent auth retrying", "ForumAgent authenticated"]
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_credentials_never_retry() {
    for error in [
        "AuthenticationRequired",
        "AccountTakedown",
        "AuthFactorTokenRequired",
    ] {
        let pds = ScriptedPds::default();
        pds.login(status_error(401, error, None));
        let logger = RecordingLogger::default();
        let agent = agent(config(RetryPolicy::default()), &pds, &logger);

        agent.initialize().await;
        run_for(2 * 60 * MINUTE).await;

        let state = agent.state();
        assert_eq!(state.status, Status::Failed, "{error}");
        assert_eq!(state.error.as_deref(), Some(CREDENTIALS_REJECTED));
        assert_eq!(state.retry_count, None);
        assert_eq!(pds.login_calls().len(), 1, "{error}");

        let records = logger.records();
        assert_eq!(records.len(), 1);
        assert_eq!(records[0].level, Level::Error);
        assert_eq!(records[0].message, "ForumAgent auth permanent failure");
        assert_eq!(text(records[0].get("handle")), HANDLE);
        assert!(text(records[0].get("error")).contains(error));
    }
}

#[tokio::test(start_paused = true)]
async fn unexpected_error_fails_without_retry() {
    let pds = ScriptedPds::default();
    pds.login(status_error(400, "InvalidRequest", None));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    run_for(60 * MINUTE).await;

    assert_eq!(agent.state().status, Status::Failed);
    assert_eq!(agent.state().error.as_deref(), Some(AUTHENTICATION_FAILED));
    assert_eq!(pds.login_calls().len(), 1);

    let record = &logger.records()[0];
    assert_eq!(record.message, "ForumAgent auth failed");
    assert_eq!(int(record.get("attempts")), 1);
    assert_eq!(text(record.get("reason")), "unknown error");
}

#[tokio::test(start_paused = true)]
async fn unexpected_error_after_retries_counts_attempts() {
    let pds = ScriptedPds::default();
    pds.login(network_error()).login(network_error());
    pds.login(status_error(400, "InvalidRequest", None));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    run_for(MINUTE).await;

    let record = logger.records().pop().unwrap();
    assert_eq!(record.message, "ForumAgent auth failed");
    assert_eq!(int(record.get("attempts")), 3);
    assert_eq!(agent.state().error.as_deref(), Some(AUTHENTICATION_FAILED));
}

#[tokio::test(start_paused = true)]
async fn rate_limit_waits_for_server() {
    let pds = ScriptedPds::default();
    pds.login(status_error(429, "RateLimitExceeded", Some(45 * SECOND)));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    let start = Instant::now();

    agent.initialize().await;
    assert_eq!(int(logger.records()[0].get("retryInMs")), 45_000);

    run_for(44 * SECOND + SECOND / 2).await;
    assert_eq!(pds.login_calls().len(), 1);

    run_for(SECOND / 2).await;
    let calls = pds.login_calls();
    assert_eq!(calls.len(), 2);
    assert_eq!(calls[1].at - start, 45 * SECOND);
    assert_eq!(agent.state().status, Status::Authenticated);
}

#[tokio::test(start_paused = true)]
async fn zero_max_retries_fails_at_once() {
    let pds = ScriptedPds::default();
    pds.login(network_error());
    let logger = RecordingLogger::default();
    let policy = RetryPolicy {
        max_retries: 0,
        ..RetryPolicy::default()
    };
    let agent = agent(config(policy), &pds, &logger);

    agent.initialize().await;

    assert_eq!(agent.state().status, Status::Failed);
    assert_eq!(agent.state().error.as_deref(), Some(MAX_RETRIES_EXCEEDED));
    assert_eq!(int(logger.records()[0].get("attempts")), 1);
}

#[tokio::test(start_paused = true)]
async fn blank_credentials_are_unavailable() {
    for (handle, password) in [
        ("", PASSWORD),
        ("  ", PASSWORD),
        (HANDLE, ""),
        (HANDLE, " \t"),
    ] {
        let pds = ScriptedPds::default();
        let logger = RecordingLogger::default();
        let mut config = config(RetryPolicy::default());
        config.identifier = handle.to_owned();
        config.password = forum_agent::core::secret::Secret::new(password.to_owned());
        let agent = agent(config, &pds, &logger);

        assert_eq!(agent.state().status, Status::Unavailable);
        agent.initialize().await;

        let state = agent.state();
        assert_eq!(state.status, Status::Unavailable);
        assert_eq!(state.error.as_deref(), Some(NOT_CONFIGURED));
        assert!(pds.login_calls().is_empty());
    }
}

#[tokio::test(start_paused = true)]
async fn concurrent_initialize_shares_one_login() {
    let pds = ScriptedPds::default();
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    tokio::join!(agent.initialize(), agent.initialize(), agent.initialize());
    agent.initialize().await;

    assert_eq!(pds.login_calls().len(), 1);
    assert_eq!(agent.state().status, Status::Authenticated);
}

#[tokio::test(start_paused = true)]
async fn refresh_every_interval_rotates_token() {
    let pds = ScriptedPds::default();
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    let start = Instant::now();

    agent.initialize().await;
    run_for(61 * MINUTE).await;

    let refreshes = pds.refresh_calls();
    assert_eq!(refreshes.len(), 2);
    assert_eq!(refreshes[0].at - start, 30 * MINUTE);
    assert_eq!(refreshes[1].at - start, 60 * MINUTE);
    assert_eq!(refreshes[0].secret, "refresh-token-1");
    assert_eq!(refreshes[1].secret, "refresh-token-2");

    let refreshed: Vec<_> = logger
        .records()
        .into_iter()
        .filter(|record| record.message == "ForumAgent session refreshed")
        .collect();
    assert_eq!(refreshed.len(), 2);
    assert_eq!(refreshed[0].level, Level::Debug);
    assert_eq!(text(refreshed[0].get("did")), DID);
    assert_eq!(agent.session().unwrap().generation, 3);
}

#[tokio::test(start_paused = true)]
async fn refresh_before_short_token_expires() {
    let pds = ScriptedPds::default();
    pds.login(session(20 * MINUTE));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    let start = Instant::now();

    agent.initialize().await;
    run_for(16 * MINUTE).await;

    let refreshes = pds.refresh_calls();
    assert_eq!(refreshes.len(), 1);
    // Refreshing 5 minutes before expiry; the wall clock may have ticked past a second
    // boundary while the token was built, so allow one second.
    let offset = refreshes[0].at - start;
    assert!(
        offset >= 14 * MINUTE + 59 * SECOND && offset <= 15 * MINUTE,
        "{offset:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn rejected_refresh_falls_back_to_login() {
    let pds = ScriptedPds::default();
    pds.refresh(status_error(400, "ExpiredToken", None));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    run_for(31 * MINUTE).await;

    assert_eq!(pds.refresh_calls().len(), 1);
    assert_eq!(pds.login_calls().len(), 2);
    assert_eq!(agent.state().status, Status::Authenticated);
    assert_eq!(
        logger.messages(),
        [
            "ForumAgent authenticated",
            "ForumAgent session refresh failed",
            "ForumAgent authenticated"
        ]
    );
    let warning = &logger.records()[1];
    assert_eq!(warning.level, Level::Warn);
    assert!(text(warning.get("error")).contains("ExpiredToken"));
}

#[tokio::test(start_paused = true)]
async fn transient_refresh_failure_keeps_session() {
    let pds = ScriptedPds::default();
    pds.refresh(network_error()).refresh(network_error());
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    let start = Instant::now();

    agent.initialize().await;
    let first_session = agent.session().unwrap();
    run_for(30 * MINUTE + SECOND).await;

    assert_eq!(agent.state().status, Status::Authenticated);
    assert_eq!(
        agent.session().unwrap().generation,
        first_session.generation
    );

    run_for(40 * SECOND).await;

    let offsets: Vec<Duration> = pds
        .refresh_calls()
        .iter()
        .map(|call| call.at - start)
        .collect();
    assert_eq!(
        offsets,
        [
            30 * MINUTE,
            30 * MINUTE + 10 * SECOND,
            30 * MINUTE + 40 * SECOND
        ]
    );
    assert_eq!(pds.login_calls().len(), 1);
    assert_eq!(agent.state().status, Status::Authenticated);
    assert!(agent.session().unwrap().generation > first_session.generation);
}

#[tokio::test(start_paused = true)]
async fn stale_token_request_triggers_one_refresh() {
    let pds = ScriptedPds::default();
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    let generation = agent.session().unwrap().generation;
    for _ in 0..50 {
        agent.request_refresh(generation);
    }
    settle().await;
    agent.request_refresh(generation);
    settle().await;

    assert_eq!(pds.refresh_calls().len(), 1);
    assert!(agent.session().unwrap().generation > generation);
}

#[tokio::test(start_paused = true)]
async fn shutdown_during_retry_stops_everything() {
    let pds = ScriptedPds::default();
    pds.login(network_error());
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    agent.shutdown().await;
    let logged = logger.records().len();

    run_for(2 * 60 * MINUTE).await;

    assert_eq!(pds.login_calls().len(), 1);
    assert_eq!(logger.records().len(), logged);
    assert_eq!(agent.state().status, Status::Initializing);
    assert!(agent.session().is_none());

    agent.initialize().await;
    assert_eq!(pds.login_calls().len(), 2);
    assert_eq!(agent.state().status, Status::Authenticated);
}

#[tokio::test(start_paused = true)]
async fn logs_never_contain_secrets() {
    let pds = ScriptedPds::default();
    pds.login(Reply::Fail(forum_agent::core::error::XrpcError::Network(
        format!("server echoed {PASSWORD}"),
    )));
    pds.refresh(status_error(400, "InvalidToken", None));
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);

    agent.initialize().await;
    run_for(50 * MINUTE).await;

    let printed = format!("{:?} {:?}", logger.records(), agent.state());
    assert!(printed.contains("[redacted]"));
    assert!(!printed.contains(PASSWORD));
    for token in pds.issued_tokens() {
        assert!(!printed.contains(&token), "log contains a token");
    }
    assert!(!format!("{:?}", agent.session()).contains("refresh-token"));
}

#[tokio::test(start_paused = true)]
async fn lifecycle_calls_apply_in_turn_order() {
    let pds = ScriptedPds::default();
    let logger = RecordingLogger::default();
    let agent = agent(config(RetryPolicy::default()), &pds, &logger);
    agent.initialize().await;

    let shutdown_turn = agent.take_turn();
    let initialize_turn = agent.take_turn();
    // Polled in the opposite order of the turns: the initialize waits for the shutdown.
    tokio::join!(
        agent.initialize_in_turn(initialize_turn),
        agent.shutdown_in_turn(shutdown_turn)
    );

    assert_eq!(agent.state().status, Status::Authenticated);
    assert_eq!(pds.login_calls().len(), 2);

    let initialize_turn = agent.take_turn();
    let shutdown_turn = agent.take_turn();
    tokio::join!(
        agent.shutdown_in_turn(shutdown_turn),
        agent.initialize_in_turn(initialize_turn)
    );

    assert_eq!(agent.state().status, Status::Initializing);
    assert!(agent.session().is_none());
}

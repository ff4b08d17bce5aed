//! Authenticated requests through the core: headers and bodies pass through, an expired token
//! triggers one shared refresh and one retry, and shutdown rejects requests in flight.

mod support;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use forum_agent::core::agent::AgentCore;
use forum_agent::core::request::{RequestError, XrpcRequest, XrpcResponse};
use forum_agent::core::retry::RetryPolicy;
use support::http::Endpoint;
use support::*;

async fn logged_in_agent(endpoint: &Endpoint, pds: &ScriptedPds) -> Arc<AgentCore> {
    let mut config = config(RetryPolicy {
        delays: vec![Duration::from_millis(50)],
        max_retries: 5,
    });
    config.service = endpoint.url.parse().unwrap();
    config.request_timeout = Duration::from_secs(5);
    let agent = Arc::new(agent(config, pds, &RecordingLogger::default()));
    agent.initialize().await;
    agent
}

fn write(body: &str) -> XrpcRequest {
    XrpcRequest {
        method: "post".to_owned(),
        url: "/xrpc/com.atproto.repo.createRecord".to_owned(),
        headers: vec![("content-type".to_owned(), "application/json".to_owned())],
        body: Some(Bytes::from(body.to_owned())),
    }
}

fn header<'a>(response: &'a XrpcResponse, name: &str) -> Option<&'a str> {
    response
        .headers
        .iter()
        .find(|(header, _)| header == name)
        .map(|(_, value)| value.as_str())
}

#[tokio::test]
async fn request_carries_token_headers_and_body() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    let agent = logged_in_agent(&endpoint, &pds).await;
    let body: Vec<u8> = (0..=255u8).cycle().take(100_000).collect();
    let request = XrpcRequest {
        method: "POST".to_owned(),
        url: "/xrpc/com.atproto.repo.uploadBlob?x=1".to_owned(),
        headers: vec![
            ("Content-Type".to_owned(), "image/png".to_owned()),
            ("Authorization".to_owned(), "Bearer caller-token".to_owned()),
            ("X-Custom".to_owned(), "kept".to_owned()),
        ],
        body: Some(Bytes::from(body.clone())),
    };

    let response = agent.send(request).await.unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(response.body.as_ref(), body.as_slice());
    assert_eq!(header(&response, "x-echo-length"), Some("100000"));
    let seen = endpoint.seen().pop().unwrap();
    assert_eq!(seen.method, "POST");
    assert_eq!(seen.path, "/xrpc/com.atproto.repo.uploadBlob?x=1");
    assert_eq!(seen.header_values("x-custom"), ["kept"]);
    assert_eq!(seen.header_values("content-type"), ["image/png"]);
    let authorization = seen.header_values("authorization");
    assert_eq!(authorization.len(), 1);
    assert!(
        authorization[0].starts_with("Bearer ey"),
        "{}",
        authorization[0]
    );
}

#[tokio::test]
async fn expired_token_refreshes_and_retries_once() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    let agent = logged_in_agent(&endpoint, &pds).await;
    endpoint.min_serial.store(2, Ordering::SeqCst);

    let response = agent.send(write("{}")).await.unwrap();

    assert_eq!(response.status, 200);
    assert_eq!(pds.refresh_calls().len(), 1);
    assert_eq!(endpoint.seen().len(), 2);
}

#[tokio::test]
async fn concurrent_expired_requests_share_refresh() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    pds.delay_refresh(Duration::from_millis(300));
    let agent = logged_in_agent(&endpoint, &pds).await;
    endpoint.min_serial.store(2, Ordering::SeqCst);

    let sends: Vec<_> = (0..40)
        .map(|i| {
            let agent = Arc::clone(&agent);
            tokio::spawn(async move { agent.send(write(&format!("{{\"i\":{i}}}"))).await })
        })
        .collect();
    let responses = join_all(sends).await;

    assert!(responses.iter().all(|response| response.status == 200));
    assert_eq!(pds.refresh_calls().len(), 1);
    assert_eq!(endpoint.seen().len(), 80);
}

#[tokio::test]
async fn failed_refresh_returns_original_response() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    pds.refresh(network_error());
    let agent = logged_in_agent(&endpoint, &pds).await;
    endpoint.min_serial.store(2, Ordering::SeqCst);

    let response = agent.send(write("{}")).await.unwrap();

    assert_eq!(response.status, 400);
    assert!(String::from_utf8_lossy(&response.body).contains("ExpiredToken"));
    assert_eq!(pds.refresh_calls().len(), 1);
    assert_eq!(
        endpoint.seen().len(),
        1,
        "the request was retried with the same token"
    );
}

#[tokio::test]
async fn other_origin_is_rejected_before_sending() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    let agent = logged_in_agent(&endpoint, &pds).await;
    let mut request = write("{}");
    request.url = "http://127.0.0.2:9/xrpc/com.atproto.repo.createRecord".to_owned();

    let result = agent.send(request).await;

    assert!(
        matches!(result, Err(RequestError::Invalid(_))),
        "{result:?}"
    );
    assert!(endpoint.seen().is_empty());
}

#[tokio::test]
async fn request_before_login_is_rejected() {
    let endpoint = Endpoint::start().await;
    let mut config = config(RetryPolicy::default());
    config.service = endpoint.url.parse().unwrap();
    let agent = agent(config, &ScriptedPds::default(), &RecordingLogger::default());

    let result = agent.send(write("{}")).await;

    assert!(
        matches!(result, Err(RequestError::NotAuthenticated)),
        "{result:?}"
    );
    assert!(endpoint.seen().is_empty());
}

#[tokio::test]
async fn shutdown_rejects_request_in_flight() {
    let endpoint = Endpoint::start().await;
    let pds = ScriptedPds::default();
    let agent = logged_in_agent(&endpoint, &pds).await;
    let mut request = write("{}");
    request.url = "/xrpc/test.hang".to_owned();

    let in_flight = {
        let agent = Arc::clone(&agent);
        tokio::spawn(async move { agent.send(request).await })
    };
    while endpoint.seen().is_empty() {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    agent.shutdown().await;
    let result = in_flight.await.unwrap();

    assert!(matches!(result, Err(RequestError::ShutDown)), "{result:?}");
}

async fn join_all(
    handles: Vec<tokio::task::JoinHandle<Result<XrpcResponse, RequestError>>>,
) -> Vec<XrpcResponse> {
    let mut responses = Vec::new();
    for handle in handles {
        responses.push(handle.await.unwrap().unwrap());
    }
    responses
}

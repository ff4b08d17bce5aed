//! A minimal XRPC server for the write benchmarks: it replies to createSession, refreshSession and
//! createRecord the way the reference PDS does, but stores nothing, so that the client is what
//! is measured. It runs on one thread and listens on 127.0.0.1 only.
//!
//!   cargo run --release --example bench-server -- [PORT]
//!
//! It prints `listening <port>` once ready. Admin routes: `POST /admin/expire` makes the
//! current access token expire (later requests with it get 400 `ExpiredToken` until a refresh),
//! `GET /admin/stats` returns request counts, and `POST /admin/reset` zeroes them.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::rc::Rc;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const DID: &str = "did:plc:benchforumaccount0000000";
const HANDLE: &str = "bench-forum.test";
const CID: &str = "bafyreie5737gdxlw5i64vzichcalba3z2v5n6icifvx5xytvske7mr3hpm";
const REV: &str = "3n3uaba4vnc2p";
const MAX_HEAD: usize = 64 * 1024;

/// The session state: tokens carry the generation that issued them.
#[derive(Default)]
struct State {
    generation: u64,
    /// Access tokens from generations below this one are expired.
    valid_from: u64,
    counts: BTreeMap<String, u64>,
    records: u64,
}

impl State {
    fn access_token(&self) -> String {
        let header = URL_SAFE_NO_PAD.encode(r#"{"typ":"at+jwt","alg":"HS256"}"#);
        let payload = format!(
            r#"{{"scope":"com.atproto.access","sub":"{DID}","iat":1767225600,"exp":4102444800,"gen":{}}}"#,
            self.generation
        );
        format!("{header}.{}.c2lnbmF0dXJl", URL_SAFE_NO_PAD.encode(payload))
    }

    fn session_body(&mut self) -> String {
        self.generation += 1;
        format!(
            r#"{{"accessJwt":"{}","refreshJwt":"refresh-{}","did":"{DID}","handle":"{HANDLE}","email":"bench@example.com","emailConfirmed":true,"active":true}}"#,
            self.access_token(),
            self.generation
        )
    }

    fn access_generation(token: &str) -> Option<u64> {
        let payload = token.split('.').nth(1)?;
        let claims: serde_json::Value =
            serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        claims.get("gen")?.as_u64()
    }
}

struct Request {
    method: String,
    path: String,
    authorization: Option<String>,
    close: bool,
}

fn main() -> std::io::Result<()> {
    let port: u16 = std::env::args()
        .nth(1)
        .and_then(|arg| arg.parse().ok())
        .unwrap_or(0);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let local = tokio::task::LocalSet::new();

    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(("127.0.0.1", port)).await?;
        println!("listening {}", listener.local_addr()?.port());
        let state = Rc::new(RefCell::new(State::default()));

        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::task::spawn_local(serve(stream, Rc::clone(&state)));
        }
    })
}

async fn serve(mut stream: TcpStream, state: Rc<RefCell<State>>) {
    let mut buffer = Vec::with_capacity(8 * 1024);
    loop {
        let Some((request, consumed)) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        buffer.drain(..consumed);

        let (status, body) = respond(&request, &mut state.borrow_mut());
        let reason = if status == 200 { "OK" } else { "Error" };
        let response = format!(
            "HTTP/1.1 {status} {reason}\r\ncontent-type: application/json; charset=utf-8\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        );
        if stream.write_all(response.as_bytes()).await.is_err() || request.close {
            return;
        }
    }
}

/// Reads one request (head and body) from the buffer, reading more from the stream as needed.
/// Returns the request and how many buffered bytes it used, or `None` at end of stream.
async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<(Request, usize)> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        if buffer.len() > MAX_HEAD || !read_more(stream, buffer).await {
            return None;
        }
    };

    let head = std::str::from_utf8(&buffer[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let path = request_line.next()?.to_owned();
    let mut content_length = 0;
    let mut authorization = None;
    let mut close = false;
    for line in lines {
        let Some((name, value)) = line.split_once(':') else {
            continue;
        };
        let value = value.trim();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => content_length = value.parse().ok()?,
            "authorization" => authorization = value.strip_prefix("Bearer ").map(str::to_owned),
            "connection" => close = value.eq_ignore_ascii_case("close"),
            _ => {}
        }
    }

    while buffer.len() < head_end + content_length {
        if !read_more(stream, buffer).await {
            return None;
        }
    }
    let request = Request {
        method,
        path,
        authorization,
        close,
    };
    Some((request, head_end + content_length))
}

async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> bool {
    let mut chunk = [0u8; 16 * 1024];
    match stream.read(&mut chunk).await {
        Ok(0) | Err(_) => false,
        Ok(read) => {
            buffer.extend_from_slice(&chunk[..read]);
            true
        }
    }
}

fn respond(request: &Request, state: &mut State) -> (u16, String) {
    let route = request.path.split('?').next().unwrap_or_default();
    let nsid = route.strip_prefix("/xrpc/").unwrap_or(route).to_owned();
    *state.counts.entry(nsid.clone()).or_default() += 1;

    match (request.method.as_str(), nsid.as_str()) {
        ("POST", "com.atproto.server.createSession") => (200, state.session_body()),
        ("POST", "com.atproto.server.refreshSession") => {
            let expected = format!("refresh-{}", state.generation);
            if request.authorization.as_deref() == Some(expected.as_str()) {
                state.valid_from = state.generation + 1;
                (200, state.session_body())
            } else {
                (400, error("ExpiredToken", "Token has been revoked"))
            }
        }
        ("POST", "com.atproto.repo.createRecord") => {
            let generation = request
                .authorization
                .as_deref()
                .and_then(State::access_generation);
            match generation {
                None => (401, error("AuthMissing", "Authentication Required")),
                Some(generation) if generation < state.valid_from => {
                    (400, error("ExpiredToken", "Token has expired"))
                }
                Some(_) => {
                    state.records += 1;
                    let body = format!(
                        r#"{{"uri":"at://{DID}/space.atbb.forum.category/bench{}","cid":"{CID}","commit":{{"cid":"{CID}","rev":"{REV}"}},"validationStatus":"unknown"}}"#,
                        state.records
                    );
                    (200, body)
                }
            }
        }
        ("POST", "/admin/expire") => {
            state.valid_from = state.generation + 1;
            (200, "{}".to_owned())
        }
        ("POST", "/admin/reset") => {
            state.counts.clear();
            (200, "{}".to_owned())
        }
        ("GET", "/admin/stats") => (
            200,
            serde_json::to_string(&state.counts).unwrap_or_default(),
        ),
        _ => (404, error("MethodNotImplemented", "Method Not Implemented")),
    }
}

fn error(name: &str, message: &str) -> String {
    format!(r#"{{"error":"{name}","message":"{message}"}}"#)
}

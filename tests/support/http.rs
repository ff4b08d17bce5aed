//! A small XRPC endpoint on 127.0.0.1 for the request tests. It accepts access tokens issued by
//! `ScriptedPds` from a minimum serial on, echoes request bodies, and reports what it saw.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// What one request looked like on arrival.
#[derive(Clone, Debug)]
pub struct SeenRequest {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl SeenRequest {
    pub fn header_values(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(header, _)| header.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
            .collect()
    }
}

#[derive(Clone)]
pub struct Endpoint {
    pub url: String,
    /// Access tokens with a lower serial get 400 `ExpiredToken`.
    pub min_serial: Arc<AtomicU32>,
    pub seen: Arc<Mutex<Vec<SeenRequest>>>,
}

impl Endpoint {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = Endpoint {
            url: format!("http://{}", listener.local_addr().unwrap()),
            min_serial: Arc::new(AtomicU32::new(0)),
            seen: Arc::default(),
        };

        let server = endpoint.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(server.clone().serve(stream));
            }
        });
        endpoint
    }

    pub fn seen(&self) -> Vec<SeenRequest> {
        self.seen.lock().unwrap().clone()
    }

    async fn serve(self, mut stream: TcpStream) {
        let mut buffer = Vec::new();
        while let Some(request) = read_request(&mut stream, &mut buffer).await {
            self.seen.lock().unwrap().push(request.clone());
            if request.path.starts_with("/xrpc/test.hang") {
                std::future::pending::<()>().await;
            }

            let (status, body) = self.respond(&request);
            let head = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/json\r\nx-echo-length: {}\r\ncontent-length: {}\r\n\r\n",
                request.body.len(),
                body.len()
            );
            let written = stream.write_all(head.as_bytes()).await;
            if written.is_err() || stream.write_all(&body).await.is_err() {
                return;
            }
        }
    }

    fn respond(&self, request: &SeenRequest) -> (u16, Vec<u8>) {
        let serial = request
            .header_values("authorization")
            .first()
            .and_then(|value| value.rsplit("signature").next())
            .and_then(|serial| serial.parse::<u32>().ok());
        match serial {
            None => (
                401,
                br#"{"error":"AuthMissing","message":"Authentication Required"}"#.to_vec(),
            ),
            Some(serial) if serial < self.min_serial.load(Ordering::SeqCst) => (
                400,
                br#"{"error":"ExpiredToken","message":"Token has expired"}"#.to_vec(),
            ),
            Some(_) => (200, request.body.clone()),
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<SeenRequest> {
    let head_end = loop {
        if let Some(end) = buffer.windows(4).position(|window| window == b"\r\n\r\n") {
            break end + 4;
        }
        read_more(stream, buffer).await?;
    };

    let head = String::from_utf8(buffer[..head_end].to_vec()).ok()?;
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let (method, path) = (
        request_line.next()?.to_owned(),
        request_line.next()?.to_owned(),
    );
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_owned(), value.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(name, _)| name.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, value)| value.parse().ok())
        .unwrap_or(0);

    while buffer.len() < head_end + length {
        read_more(stream, buffer).await?;
    }
    let body = buffer[head_end..head_end + length].to_vec();
    buffer.drain(..head_end + length);
    Some(SeenRequest {
        method,
        path,
        headers,
        body,
    })
}

/// Appends what the stream has to `buffer`; `None` at end of stream or on an error.
async fn read_more(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<()> {
    let mut chunk = [0u8; 8192];
    let read = stream
        .read(&mut chunk)
        .await
        .ok()
        .filter(|read| *read > 0)?;
    buffer.extend_from_slice(&chunk[..read]);
    Some(())
}

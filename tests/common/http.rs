//! The smallest HTTP client the test helpers need: one HTTP/1.0 request to a loopback server
//! (the simulator's control API, etcd's gateway), without pulling an HTTP client crate into the
//! tests. Included by `sim.rs` and `e2e.rs` with `#[path]`.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// One HTTP/1.0 request (so the body is never chunked and ends at close): (status, body).
pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
) -> (u16, String) {
    http_request_within(addr, method, path, body, Duration::from_secs(30))
}

/// [`http_request`] for an answer that may take long to come (a request that does work before
/// it answers): `read_timeout` bounds each read.
pub fn http_request_within(
    addr: SocketAddr,
    method: &str,
    path: &str,
    body: Option<&str>,
    read_timeout: Duration,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect to the simulator");
    stream
        .set_read_timeout(Some(read_timeout))
        .expect("timeout");
    let body = body.unwrap_or("");
    let request = format!(
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: application/json\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).expect("send request");
    let mut response = Vec::new();
    stream.read_to_end(&mut response).expect("read response");
    let text = String::from_utf8_lossy(&response).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (code, body.to_string())
}

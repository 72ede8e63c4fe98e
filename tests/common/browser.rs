//! Shared test helper: a real headless Chromium, driven over the W3C WebDriver protocol by
//! Debian's `chromedriver` (package `chromium-driver`), which is plain JSON over HTTP, so the
//! tests need no browser-automation crate. Include it with
//! `#[path = "common/browser.rs"] mod browser;`.
//!
//! ```ignore
//! let browser = Browser::start();
//! browser.goto("file:///tmp/report.html");
//! browser.wait_until("return document.body.dataset.ready === '1'", Duration::from_secs(60));
//! let rows: i64 = browser.eval("return document.querySelectorAll('.pod').length").as_i64().unwrap();
//! browser.hover(".mk.restart");
//! assert!(browser.console_errors().is_empty());
//! ```
//!
//! Missing binaries are a failure naming the packages, not a skip: CI installs them (.ci/run).
//! `KUBETRAIL_TEST_WEBDRIVER_LOG=/tmp/cd.log` prints every WebDriver command on stderr and
//! makes chromedriver log verbosely to that file, for a test that hangs or fails oddly.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// The key WebDriver names an element reference by.
const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// A chromedriver child and one browser session; both end on drop.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and opens a headless session. Panics, naming
    /// the Debian packages, when the binaries are missing.
    pub fn start() -> Browser {
        for (binary, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
            assert!(
                Path::new(binary).exists(),
                "{binary} is missing: the browser tests need Debian's {package} package \
                 (apt-get install -y chromium chromium-driver; .ci/run installs them)"
            );
        }
        let mut command = Command::new(CHROMEDRIVER);
        if let Some(log) = std::env::var_os("KUBETRAIL_TEST_WEBDRIVER_LOG") {
            command
                .arg("--verbose")
                .arg(format!("--log-path={}", log.to_string_lossy()));
        }
        let mut driver = command
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromedriver");
        let stdout = driver.stdout.take().expect("stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("started successfully on port ").nth(1) {
                    let port = rest.trim_end_matches('.').trim().parse::<u16>().ok();
                    let _ = tx.send(port);
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Some(port)) => port,
            _ => {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not say which port it listens on");
            }
        };
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": [
                        "--headless=new", "--no-sandbox", "--disable-gpu",
                        "--disable-dev-shm-usage", "--window-size=1400,1000",
                        "--no-first-run", "--disable-extensions",
                    ],
                },
                "goog:loggingPrefs": { "browser": "ALL" },
                "timeouts": { "pageLoad": 120000, "script": 120000 },
            }}
        });
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
        };
        // A loaded machine starts Chromium slowly; one retry covers a start that timed out.
        let mut answer = browser.request("POST", "/session", Some(&capabilities));
        if answer["value"]["sessionId"].as_str().is_none() {
            std::thread::sleep(Duration::from_secs(2));
            answer = browser.request("POST", "/session", Some(&capabilities));
        }
        browser.session = answer["value"]["sessionId"]
            .as_str()
            .unwrap_or_else(|| panic!("no browser session: {answer}"))
            .to_string();
        browser
    }

    /// One WebDriver command: HTTP/1.1 with `Connection: close` (chromedriver answers with a
    /// Content-Length and closes). Returns the JSON answer.
    fn request(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let body = body.map(Value::to_string).unwrap_or_default();
        if std::env::var_os("KUBETRAIL_TEST_WEBDRIVER_LOG").is_some() {
            eprintln!(
                "webdriver: {method} {path} {}",
                &body[..body.len().min(200)]
            );
        }
        let mut stream = TcpStream::connect(self.addr).expect("connect to chromedriver");
        stream
            .set_read_timeout(Some(Duration::from_secs(180)))
            .expect("timeout");
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Type: \
             application/json\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        // chromedriver may keep the connection open after its answer: read the head, then
        // exactly Content-Length bytes.
        let mut reader = BufReader::new(stream);
        let mut length = None;
        let mut status = String::new();
        reader.read_line(&mut status).expect("read status");
        loop {
            let mut line = String::new();
            reader.read_line(&mut line).expect("read header");
            let line = line.trim_end();
            if line.is_empty() {
                break;
            }
            if let Some((name, value)) = line.split_once(':')
                && name.eq_ignore_ascii_case("content-length")
            {
                length = value.trim().parse::<usize>().ok();
            }
        }
        let mut body = vec![0; length.unwrap_or_else(|| panic!("no Content-Length: {status}"))];
        reader.read_exact(&mut body).expect("read body");
        let text = String::from_utf8_lossy(&body);
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {status} {text}"))
    }

    fn command(&self, method: &str, what: &str, body: Option<&Value>) -> Value {
        let answer = self.request(method, &format!("/session/{}{what}", self.session), body);
        if let Some(error) = answer["value"]["error"].as_str() {
            panic!(
                "WebDriver {what} failed: {error}: {}",
                answer["value"]["message"]
            );
        }
        answer["value"].clone()
    }

    pub fn goto(&self, url: &str) {
        self.command("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Runs `script` (a function body: `return ...`) in the page and returns its value.
    pub fn eval(&self, script: &str) -> Value {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Polls `script` until it returns something truthy; panics after `timeout` with the last
    /// value and `context`.
    pub fn wait_until(&self, script: &str, timeout: Duration) -> Value {
        let deadline = Instant::now() + timeout;
        loop {
            let value = self.eval(script);
            let truthy = match &value {
                Value::Null => false,
                Value::Bool(b) => *b,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return value;
            }
            assert!(
                Instant::now() < deadline,
                "not true within {timeout:?}: {script} (last value {value}); console: {:?}",
                self.console()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn element(&self, css: &str) -> String {
        let found = self.command(
            "POST",
            "/element",
            Some(&json!({ "using": "css selector", "value": css })),
        );
        found[ELEMENT]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {found}"))
            .to_string()
    }

    /// Scrolls the element to the middle of the window (clear of the page's sticky header).
    fn scroll_to(&self, id: &str) {
        self.command(
            "POST",
            "/execute/sync",
            Some(&json!({
                "script": "arguments[0].scrollIntoView({block: 'center', inline: 'center'}); return 0",
                "args": [{ ELEMENT: id }],
            })),
        );
    }

    /// Moves the real (virtual) mouse over the centre of the first element matching `css`.
    pub fn hover(&self, css: &str) {
        let id = self.element(css);
        self.scroll_to(&id);
        let actions = json!({ "actions": [{
            "type": "pointer", "id": "mouse", "parameters": { "pointerType": "mouse" },
            "actions": [{ "type": "pointerMove", "duration": 0, "x": 0, "y": 0,
                          "origin": { ELEMENT: id } }],
        }]});
        self.command("POST", "/actions", Some(&actions));
    }

    /// A real click on the first element matching `css`.
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.scroll_to(&id);
        self.command("POST", &format!("/element/{id}/click"), Some(&json!({})));
    }

    /// Types `text` into the element (as keystrokes).
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.command(
            "POST",
            &format!("/element/{id}/value"),
            Some(&json!({ "text": text })),
        );
    }

    /// Every console line and page error since the last call, as "LEVEL message".
    pub fn console(&self) -> Vec<String> {
        let logs = self.command("POST", "/se/log", Some(&json!({ "type": "browser" })));
        logs.as_array()
            .map(|entries| {
                entries
                    .iter()
                    .map(|e| format!("{} {}", e["level"].as_str().unwrap_or("?"), e["message"]))
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The errors among [`Browser::console`] (SEVERE: console.error, uncaught exceptions,
    /// failed loads).
    pub fn console_errors(&self) -> Vec<String> {
        self.console()
            .into_iter()
            .filter(|l| l.starts_with("SEVERE"))
            .collect()
    }

    /// A PNG of the viewport, for a person to look at when a test fails.
    pub fn screenshot(&self, path: &Path) {
        use base64::Engine;
        let b64 = self.command("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or_default())
            .expect("base64 screenshot");
        std::fs::write(path, png).expect("write screenshot");
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.request("DELETE", &format!("/session/{}", self.session), None)
            }));
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

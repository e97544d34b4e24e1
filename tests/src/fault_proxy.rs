//! A fault-injecting HTTP proxy on loopback, between a client and the S3 server.
//!
//! Each request gets its own upstream connection (the proxy sets `Connection: close`),
//! so each can be faulted on its own: answered 503 SlowDown or 500 InternalError,
//! reset before it reaches the server, reset after the server acted on it (the write
//! happened, the answer is lost), or delayed. Decisions come from a seeded generator.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// An error the proxy answers in the server's place.
#[derive(Debug, Clone, Copy)]
pub struct Answer {
    pub matching: &'static str,
    /// e.g. "403 Forbidden".
    pub status: &'static str,
    pub code: &'static str,
    pub message: &'static str,
    /// Extra header lines ("Name: value\r\n"), e.g. x-amz-bucket-region.
    pub headers: &'static str,
    /// How many times (0: every time).
    pub times: usize,
}

/// Shares of requests that get each fault (the rest pass untouched).
#[derive(Debug, Clone, Copy)]
pub struct Faults {
    pub slow_down: f64,
    pub internal_error: f64,
    pub reset_before: f64,
    pub reset_after: f64,
    pub delay: f64,
    pub delay_for: Duration,
    /// When set, only requests whose head contains this text are delayed (a header
    /// name such as `x-amz-copy-source` picks out the copies; `a && b`: both); the
    /// others pass.
    pub delay_only: Option<&'static str>,
    /// The first this many requests `delay_only` picks pass undelayed.
    pub delay_skip: usize,
    /// Requests whose head contains the first text (`a && b`: both) are answered, at
    /// most the last number of times (0: always), with this error instead of reaching
    /// the server: an answer no local server gives (S3's 301 PermanentRedirect, a
    /// KMS refusal, an expired token, ACLs not supported).
    pub answer: Option<Answer>,
    pub seed: u64,
}

impl Faults {
    /// No faults: the proxy only forwards (and records what passes).
    pub fn none() -> Faults {
        Faults {
            slow_down: 0.0,
            internal_error: 0.0,
            reset_before: 0.0,
            reset_after: 0.0,
            delay: 0.0,
            delay_for: Duration::ZERO,
            delay_only: None,
            delay_skip: 0,
            answer: None,
            seed: 0,
        }
    }
}

#[derive(Debug, Default)]
pub struct FaultCounts {
    pub passed: AtomicUsize,
    pub slow_down: AtomicUsize,
    pub internal_error: AtomicUsize,
    pub reset_before: AtomicUsize,
    pub reset_after: AtomicUsize,
    pub delayed: AtomicUsize,
    pub answered: AtomicUsize,
}

impl FaultCounts {
    pub fn summary(&self) -> String {
        format!(
            "passed {}, 503 {}, 500 {}, reset before {}, reset after {}, delayed {}",
            self.passed.load(Ordering::Relaxed),
            self.slow_down.load(Ordering::Relaxed),
            self.internal_error.load(Ordering::Relaxed),
            self.reset_before.load(Ordering::Relaxed),
            self.reset_after.load(Ordering::Relaxed),
            self.delayed.load(Ordering::Relaxed),
        )
    }
}

pub struct FaultProxy {
    pub endpoint: String,
    pub counts: Arc<FaultCounts>,
    /// The head (request line and headers) of every request that reached the proxy.
    pub heads: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

#[derive(Clone, Copy)]
enum Fault {
    Pass,
    SlowDown,
    InternalError,
    ResetBefore,
    ResetAfter,
    Delay,
}

impl FaultProxy {
    /// Listens on 127.0.0.1 (a free port) and forwards to `upstream` ("http://host:port").
    pub async fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let upstream = upstream
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind proxy");
        let endpoint = format!("http://{}", listener.local_addr().expect("proxy address"));
        let counts = Arc::new(FaultCounts::default());
        let heads = Arc::new(Mutex::new(Vec::new()));
        let task_heads = heads.clone();
        let rng = Arc::new(Mutex::new(rand::rngs::StdRng::seed_from_u64(faults.seed)));
        let task_counts = counts.clone();
        let picked = Arc::new(AtomicUsize::new(0));
        let answered = Arc::new(AtomicUsize::new(0));
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let fault = {
                    let r: f64 = rng.lock().expect("rng").random();
                    pick(&faults, r)
                };
                tokio::spawn(serve(
                    client,
                    upstream.clone(),
                    fault,
                    (
                        faults.delay_for,
                        faults.delay_only,
                        faults.delay_skip,
                        picked.clone(),
                    ),
                    (faults.answer, answered.clone()),
                    task_counts.clone(),
                    task_heads.clone(),
                ));
            }
        });
        FaultProxy {
            endpoint,
            counts,
            heads,
            task,
        }
    }
}

impl FaultProxy {
    /// Waits until a request whose head contains `text` (case aside) has reached the
    /// proxy, e.g. `partnumber=` for the first part of a multipart upload.
    pub async fn wait_for(&self, text: &str) {
        let text = text.to_ascii_lowercase();
        let started = std::time::Instant::now();
        loop {
            let seen = self
                .heads
                .lock()
                .expect("heads")
                .iter()
                .any(|h| h.to_ascii_lowercase().contains(&text));
            if seen {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "no request with {text:?} within 60 s"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Requests whose head contains `text` (case aside) so far.
    pub fn count(&self, text: &str) -> usize {
        let text = text.to_ascii_lowercase();
        self.heads
            .lock()
            .expect("heads")
            .iter()
            .filter(|h| h.to_ascii_lowercase().contains(&text))
            .count()
    }
}

fn pick(f: &Faults, r: f64) -> Fault {
    let mut edge = 0.0;
    for (share, fault) in [
        (f.slow_down, Fault::SlowDown),
        (f.internal_error, Fault::InternalError),
        (f.reset_before, Fault::ResetBefore),
        (f.reset_after, Fault::ResetAfter),
        (f.delay, Fault::Delay),
    ] {
        edge += share;
        if r < edge {
            return fault;
        }
    }
    Fault::Pass
}

/// Reads up to the end of the request head; returns the head and any body bytes after it.
async fn read_head(client: &mut TcpStream) -> Option<(String, Vec<u8>)> {
    let mut buf = Vec::with_capacity(8192);
    let mut chunk = [0u8; 8192];
    loop {
        let n = client.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end + 4]).into_owned();
            return Some((head, buf[end + 4..].to_vec()));
        }
        if buf.len() > 1 << 20 {
            return None;
        }
    }
}

/// Closes with a TCP reset rather than a clean FIN. A zero linger does not block on
/// drop (the warning on set_linger is about non-zero values).
#[allow(deprecated)]
fn reset(stream: &TcpStream) {
    let _ = stream.set_linger(Some(Duration::ZERO));
}

fn content_length(head: &str) -> u64 {
    head.split("\r\n")
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0)
}

fn error_response(status: &str, code: &str, message: &str) -> String {
    let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message><RequestId>FAULT</RequestId></Error>");
    format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/xml\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
}

async fn serve(
    mut client: TcpStream,
    upstream: String,
    fault: Fault,
    (delay_for, delay_only, delay_skip, picked): (
        Duration,
        Option<&'static str>,
        usize,
        Arc<AtomicUsize>,
    ),
    (answer, answered): (Option<Answer>, Arc<AtomicUsize>),
    counts: Arc<FaultCounts>,
    heads: Arc<Mutex<Vec<String>>>,
) {
    let Some((head, rest)) = read_head(&mut client).await else {
        return;
    };
    heads.lock().expect("heads").push(head.clone());
    if let Some(a) = answer {
        let lower = head.to_ascii_lowercase();
        let matches = a
            .matching
            .split("&&")
            .all(|part| lower.contains(&part.trim().to_ascii_lowercase()));
        if matches && (a.times == 0 || answered.fetch_add(1, Ordering::Relaxed) < a.times) {
            counts.answered.fetch_add(1, Ordering::Relaxed);
            let body = format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><RequestId>FAULT</RequestId></Error>", a.code, a.message);
            // A HEAD's answer has no body.
            let body = if lower.starts_with("head ") {
                String::new()
            } else {
                body
            };
            let response = format!(
                "HTTP/1.1 {}\r\nContent-Type: application/xml\r\n{}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
                a.status,
                a.headers,
                body.len(),
            );
            let _ = client.write_all(response.as_bytes()).await;
            return;
        }
    }
    let fault = match (fault, delay_only) {
        (Fault::Delay, Some(text)) => {
            let lower = head.to_ascii_lowercase();
            let matches = text
                .split("&&")
                .all(|part| lower.contains(&part.trim().to_ascii_lowercase()));
            if matches && picked.fetch_add(1, Ordering::Relaxed) >= delay_skip {
                Fault::Delay
            } else {
                Fault::Pass
            }
        }
        (fault, _) => fault,
    };
    match fault {
        Fault::SlowDown => {
            counts.slow_down.fetch_add(1, Ordering::Relaxed);
            let _ = client
                .write_all(
                    error_response(
                        "503 Slow Down",
                        "SlowDown",
                        "Please reduce your request rate.",
                    )
                    .as_bytes(),
                )
                .await;
            return;
        }
        Fault::InternalError => {
            counts.internal_error.fetch_add(1, Ordering::Relaxed);
            let _ = client
                .write_all(
                    error_response(
                        "500 Internal Server Error",
                        "InternalError",
                        "We encountered an internal error. Please try again.",
                    )
                    .as_bytes(),
                )
                .await;
            return;
        }
        Fault::ResetBefore => {
            counts.reset_before.fetch_add(1, Ordering::Relaxed);
            reset(&client);
            return;
        }
        Fault::Delay => {
            counts.delayed.fetch_add(1, Ordering::Relaxed);
            tokio::time::sleep(delay_for).await;
        }
        Fault::Pass | Fault::ResetAfter => {}
    }
    let Ok(mut server) = TcpStream::connect(&upstream).await else {
        return;
    };
    // One request per connection, so the next request meets its own fault.
    let mut lines: Vec<&str> = head
        .trim_end_matches("\r\n\r\n")
        .split("\r\n")
        .filter(|l| !l.to_ascii_lowercase().starts_with("connection:"))
        .collect();
    lines.push("Connection: close");
    let head = format!("{}\r\n\r\n", lines.join("\r\n"));
    if server.write_all(head.as_bytes()).await.is_err() || server.write_all(&rest).await.is_err() {
        return;
    }
    if let Fault::ResetAfter = fault {
        counts.reset_after.fetch_add(1, Ordering::Relaxed);
        // Let the rest of the body through and the server act, then lose the answer.
        let remaining = content_length(&head).saturating_sub(rest.len() as u64);
        let (client_read, _client_write) = client.split();
        let (_server_read, mut server_write) = server.split();
        let mut body = client_read.take(remaining);
        let _ = tokio::time::timeout(
            Duration::from_secs(5),
            tokio::io::copy(&mut body, &mut server_write),
        )
        .await;
        let mut first = [0u8; 1];
        let _ = tokio::time::timeout(Duration::from_secs(5), server.read(&mut first)).await;
        reset(&client);
        return;
    }
    counts.passed.fetch_add(1, Ordering::Relaxed);
    let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
}

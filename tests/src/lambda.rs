//! The function binaries as Lambda runs them: a small emulator of the Lambda Runtime
//! API (the documented `2018-06-01` interface: `invocation/next`, `…/response`,
//! `…/error`, `init/error`) on loopback, and the binary started against it with the
//! environment Lambda gives a function.
//!
//! Why not `cargo lambda watch`: it builds and starts the function itself, so a test
//! could not run the exact binary under test with the environment (keys, IAM
//! principal) the test chose, nor set each invocation's deadline; this emulator does
//! both in ~200 lines and adds no build.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot, watch};

/// What an invocation ended with.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// The handler's answer (`…/response`).
    Response(Value),
    /// The handler's error (`…/error`): Lambda's `{errorType, errorMessage}`.
    Error(Value),
    /// The process died (or never came up) before answering.
    Exited(String),
}

impl Outcome {
    pub fn response(self) -> Value {
        match self {
            Outcome::Response(v) => v,
            other => panic!("the invocation did not succeed: {other:?}"),
        }
    }
}

struct Pending {
    id: String,
    payload: Vec<u8>,
    deadline_ms: u128,
}

#[derive(Default)]
struct State {
    queue: tokio::sync::Mutex<Option<mpsc::UnboundedReceiver<Pending>>>,
    answers: Mutex<HashMap<String, oneshot::Sender<Outcome>>>,
    init_error: Mutex<Option<Value>>,
    first_next: Mutex<Option<Instant>>,
}

/// A function binary running under the emulated Runtime API.
pub struct LambdaFunction {
    pub name: String,
    state: Arc<State>,
    send: mpsc::UnboundedSender<Pending>,
    child: Arc<tokio::sync::Mutex<tokio::process::Child>>,
    exited: watch::Receiver<Option<String>>,
    logs: Arc<Mutex<Vec<String>>>,
    /// When the process was started (for cold-start measurements).
    pub started: Instant,
    pub pid: u32,
    server: tokio::task::JoinHandle<()>,
    next_id: Mutex<u64>,
}

/// Where `cargo build` puts the workspace's binaries for the profile of this test
/// (`make test` builds them first); `S3R_FUNCTION_DIR` points elsewhere (the bench
/// uses release builds).
pub fn binary(name: &str) -> PathBuf {
    let dir = match std::env::var_os("S3R_FUNCTION_DIR") {
        Some(dir) => PathBuf::from(dir),
        None => {
            let exe = std::env::current_exe().expect("test executable");
            // target/<profile>/deps/<test> → target/<profile>
            exe.parent()
                .and_then(Path::parent)
                .expect("target directory")
                .to_path_buf()
        }
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "{} is missing: build the functions first (`cargo build --bins`; `make test` does)",
        path.display()
    );
    path
}

impl LambdaFunction {
    /// Starts `binary` with Lambda's environment plus `env`; nothing else of the test
    /// process's environment is passed on but PATH and HOME, so the function sees
    /// exactly the keys and settings a test gives it.
    pub async fn start(name: &str, binary: &Path, env: &[(&str, String)]) -> LambdaFunction {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind runtime API");
        let api = listener.local_addr().expect("runtime API address");
        let (send, receive) = mpsc::unbounded_channel();
        let state = Arc::new(State {
            queue: tokio::sync::Mutex::new(Some(receive)),
            ..State::default()
        });
        let server = tokio::spawn(serve(listener, state.clone()));

        let mut command = tokio::process::Command::new(binary);
        command
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("HOME", std::env::var("HOME").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", format!("/aws/lambda/{name}"))
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "2026/11/22/[$LATEST]test")
            .env("_HANDLER", "bootstrap")
            .env("LAMBDA_TASK_ROOT", "/var/task")
            .env("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in env {
            command.env(k, v);
        }
        let started = Instant::now();
        let mut child = command.spawn().expect("start the function binary");
        let pid = child.id().unwrap_or_default();
        let logs = Arc::new(Mutex::new(Vec::new()));
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn tokio::io::AsyncRead + Unpin + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let logs = logs.clone();
            tokio::spawn(async move {
                let mut lines = BufReader::new(stream).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    logs.lock().expect("logs").push(line);
                }
            });
        }
        let child = Arc::new(tokio::sync::Mutex::new(child));
        let (set_exited, exited) = watch::channel(None);
        {
            let child = child.clone();
            tokio::spawn(async move {
                loop {
                    let status = child.lock().await.try_wait();
                    match status {
                        Ok(Some(status)) => {
                            let _ = set_exited.send(Some(status.to_string()));
                            return;
                        }
                        Ok(None) => tokio::time::sleep(Duration::from_millis(20)).await,
                        Err(e) => {
                            let _ = set_exited.send(Some(e.to_string()));
                            return;
                        }
                    }
                }
            });
        }
        LambdaFunction {
            name: name.to_string(),
            state,
            send,
            child,
            exited,
            logs,
            started,
            pid,
            server,
            next_id: Mutex::new(0),
        }
    }

    /// Invokes the function with `payload`, its deadline `deadline_in` from now, and
    /// waits (up to the deadline plus a margin) for its answer.
    pub async fn invoke(&self, payload: &Value, deadline_in: Duration) -> Outcome {
        let id = {
            let mut n = self.next_id.lock().expect("id");
            *n += 1;
            format!("{}-{:04}", self.name, *n)
        };
        let deadline_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("clock")
            .as_millis()
            + deadline_in.as_millis();
        let (answer, answered) = oneshot::channel();
        self.state
            .answers
            .lock()
            .expect("answers")
            .insert(id.clone(), answer);
        let _ = self.send.send(Pending {
            id,
            payload: serde_json::to_vec(payload).expect("payload"),
            deadline_ms,
        });
        let mut exited = self.exited.clone();
        let limit = deadline_in + Duration::from_secs(60);
        tokio::select! {
            outcome = answered => outcome.unwrap_or(Outcome::Exited("no answer".into())),
            status = exited.wait_for(|e| e.is_some()) => {
                let status = status.map(|s| s.clone().unwrap_or_default()).unwrap_or_default();
                Outcome::Exited(format!("{status}; init error: {:?}", self.init_error()))
            }
            _ = tokio::time::sleep(limit) => Outcome::Exited(format!("no answer within {limit:?}")),
        }
    }

    /// Waits until the function asks for its first invocation (init done), and says
    /// how long that took from exec; `None` if the process exited first.
    pub async fn ready(&self, within: Duration) -> Option<Duration> {
        let until = Instant::now() + within;
        while Instant::now() < until {
            if let Some(at) = *self.state.first_next.lock().expect("first next") {
                return Some(at - self.started);
            }
            if self.exited.borrow().is_some() {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        None
    }

    /// What the function reported through `init/error`, if anything.
    pub fn init_error(&self) -> Option<Value> {
        self.state.init_error.lock().expect("init error").clone()
    }

    /// Waits for the process to exit on its own (a failed init); its status.
    pub async fn exit_status(&self, within: Duration) -> Option<String> {
        let mut exited = self.exited.clone();
        let status = tokio::time::timeout(within, exited.wait_for(|e| e.is_some()))
            .await
            .ok()?
            .ok()?
            .clone();
        status
    }

    /// Every line the function wrote to stdout and stderr so far.
    pub fn logs(&self) -> Vec<String> {
        self.logs.lock().expect("logs").clone()
    }

    /// The log lines that parse as JSON objects.
    pub fn json_logs(&self) -> Vec<Value> {
        self.logs()
            .iter()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .filter(Value::is_object)
            .collect()
    }

    /// Stops the process at once, as Lambda does at a timeout.
    pub async fn kill(&self) {
        let _ = self.child.lock().await.start_kill();
    }
}

impl Drop for LambdaFunction {
    fn drop(&mut self) {
        self.server.abort();
        if let Ok(mut child) = self.child.try_lock() {
            let _ = child.start_kill();
        }
    }
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    while let Ok((stream, _)) = listener.accept().await {
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| route(req, state.clone()));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

fn reply(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
}

async fn route(
    request: Request<Incoming>,
    state: Arc<State>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let method = request.method().clone();
    let body = request
        .into_body()
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let json = || serde_json::from_slice::<Value>(&body).unwrap_or(Value::Null);
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return Ok(reply(StatusCode::NOT_FOUND, "{}"));
    };
    if method == hyper::Method::GET && rest == "invocation/next" {
        state
            .first_next
            .lock()
            .expect("first next")
            .get_or_insert_with(Instant::now);
        // Long-polls, as the real API does, until an invocation is queued.
        let mut guard = state.queue.lock().await;
        let Some(queue) = guard.as_mut() else {
            return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "{}"));
        };
        let Some(next) = queue.recv().await else {
            return Ok(reply(StatusCode::INTERNAL_SERVER_ERROR, "{}"));
        };
        drop(guard);
        let mut response = Response::new(Full::new(Bytes::from(next.payload)));
        let headers = response.headers_mut();
        let header = |v: String| hyper::header::HeaderValue::from_str(&v).expect("header");
        headers.insert("Lambda-Runtime-Aws-Request-Id", header(next.id));
        headers.insert(
            "Lambda-Runtime-Deadline-Ms",
            header(next.deadline_ms.to_string()),
        );
        headers.insert(
            "Lambda-Runtime-Invoked-Function-Arn",
            header("arn:aws:lambda:us-east-1:123456789012:function:test".into()),
        );
        headers.insert(
            "Lambda-Runtime-Trace-Id",
            header(
                "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1".into(),
            ),
        );
        return Ok(response);
    }
    if method == hyper::Method::POST && rest == "init/error" {
        *state.init_error.lock().expect("init error") = Some(json());
        return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
    }
    if method == hyper::Method::POST {
        if let Some((id, what)) = rest
            .strip_prefix("invocation/")
            .and_then(|r| r.rsplit_once('/'))
        {
            let outcome = match what {
                "response" => Outcome::Response(json()),
                "error" => Outcome::Error(json()),
                _ => return Ok(reply(StatusCode::NOT_FOUND, "{}")),
            };
            if let Some(answer) = state.answers.lock().expect("answers").remove(id) {
                let _ = answer.send(outcome);
            }
            return Ok(reply(StatusCode::ACCEPTED, r#"{"status":"OK"}"#));
        }
    }
    Ok(reply(StatusCode::NOT_FOUND, "{}"))
}

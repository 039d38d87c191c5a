//! A Lambda Runtime API on loopback that feeds invocations, for timing a
//! function process from the outside (`peer.rs`): what Lambda's own
//! endpoint does for one execution environment, one invocation at a time.
//!
//! - `GET /2018-06-01/runtime/invocation/next` waits for the next event
//!   [`RuntimeApi::invoke`] queues and answers it with the headers the
//!   runtimes read (request id, deadline, function ARN, trace id).
//! - `POST .../invocation/<id>/response` and `.../<id>/error` are the
//!   function's answer (202); `POST .../init/error` a failed start.
//!
//! HTTP/1.1 with keep-alive, `Content-Length` or chunked bodies and
//! `Expect: 100-continue` (lambda_runtime's hyper and awslambdaric's curl
//! both keep one connection open). One thread per connection.

use crate::Result;
use std::collections::{HashMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::Child;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const NEXT: &str = "/2018-06-01/runtime/invocation/next";
const INVOCATION: &str = "/2018-06-01/runtime/invocation/";
const INIT_ERROR: &str = "/2018-06-01/runtime/init/error";

/// The function's answer to one invocation.
#[derive(Debug, Clone)]
pub struct Answer {
    /// When the event was handed over (just before its bytes were written).
    pub sent: Instant,
    /// When the answer had been read whole.
    pub at: Instant,
    /// `/error` rather than `/response`.
    pub error: bool,
    /// The answer's body.
    pub body: Vec<u8>,
}

impl Answer {
    /// Event handed over to answer read: the invocation's wall time as the
    /// Lambda service sees it.
    pub fn wall(&self) -> Duration {
        self.at.saturating_duration_since(self.sent)
    }
}

#[derive(Debug, Default)]
struct State {
    first_next: Option<Instant>,
    queue: VecDeque<(String, Vec<u8>)>,
    sent: HashMap<String, Instant>,
    answers: HashMap<String, Answer>,
    init_error: Option<String>,
    closed: bool,
}

#[derive(Debug, Default)]
struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The endpoint; stopped when dropped.
#[derive(Debug)]
pub struct RuntimeApi {
    addr: SocketAddr,
    shared: Arc<Shared>,
    acceptor: Option<JoinHandle<()>>,
}

impl RuntimeApi {
    /// Listens on a free loopback port.
    pub fn start() -> Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("runtime API: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let shared = Arc::new(Shared::default());
        let s = Arc::clone(&shared);
        let acceptor = std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.lock().closed {
                    return;
                }
                if let Ok(conn) = conn {
                    let s = Arc::clone(&s);
                    std::thread::spawn(move || {
                        let _ = serve(conn, &s);
                    });
                }
            }
        });
        Ok(RuntimeApi {
            addr,
            shared,
            acceptor: Some(acceptor),
        })
    }

    /// `host:port`, as `AWS_LAMBDA_RUNTIME_API` takes it.
    pub fn address(&self) -> String {
        self.addr.to_string()
    }

    /// Waits for the process's first `GET .../next` (ready for its first
    /// event) and says when it came.
    pub fn wait_first_next(&self, child: &mut Child, timeout: Duration) -> Result<Instant> {
        self.wait(child, timeout, "ask for its first event", |s| s.first_next)
    }

    /// Hands `event` to the process as invocation `id` and waits for its
    /// answer.
    pub fn invoke(
        &self,
        id: &str,
        event: Vec<u8>,
        child: &mut Child,
        timeout: Duration,
    ) -> Result<Answer> {
        self.shared.lock().queue.push_back((id.to_string(), event));
        self.shared.changed.notify_all();
        self.wait(child, timeout, &format!("answer invocation {id}"), |s| {
            s.answers.remove(id)
        })
    }

    fn wait<T>(
        &self,
        child: &mut Child,
        timeout: Duration,
        what: &str,
        mut ready: impl FnMut(&mut State) -> Option<T>,
    ) -> Result<T> {
        let start = Instant::now();
        let mut state = self.shared.lock();
        loop {
            if let Some(v) = ready(&mut state) {
                return Ok(v);
            }
            if let Some(e) = &state.init_error {
                return Err(format!("the function failed to start: {e}"));
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "the function exited ({status}) before it could {what}"
                ));
            }
            if start.elapsed() > timeout {
                return Err(format!("the function did not {what} within {timeout:?}"));
            }
            state = self
                .shared
                .changed
                .wait_timeout(state, Duration::from_millis(20))
                .unwrap_or_else(|p| p.into_inner())
                .0;
        }
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.changed.notify_all();
        // Wakes the acceptor, which then sees `closed`.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(a) = self.acceptor.take() {
            let _ = a.join();
        }
    }
}

struct Request {
    method: String,
    path: String,
    close: bool,
    body: Vec<u8>,
}

/// One connection: requests until the peer closes it or asks to.
fn serve(conn: TcpStream, shared: &Shared) -> std::io::Result<()> {
    conn.set_nodelay(true)?;
    let mut reader = BufReader::new(conn.try_clone()?);
    let mut writer = conn;
    while let Some(req) = read_request(&mut reader, &mut writer)? {
        match (req.method.as_str(), req.path.as_str()) {
            ("GET", NEXT) => {
                let Some((id, event)) = next_event(shared) else {
                    return respond(&mut writer, "503 Service Unavailable", &[], b"");
                };
                let deadline = SystemTime::now()
                    .duration_since(UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis()
                    + 30_000;
                respond(
                    &mut writer,
                    "200 OK",
                    &[
                        ("Content-Type", "application/json".into()),
                        ("Lambda-Runtime-Aws-Request-Id", id),
                        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                        (
                            "Lambda-Runtime-Invoked-Function-Arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:bench".into(),
                        ),
                        (
                            "Lambda-Runtime-Trace-Id",
                            "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=0"
                                .into(),
                        ),
                    ],
                    &event,
                )?;
            }
            ("POST", INIT_ERROR) => {
                shared.lock().init_error = Some(String::from_utf8_lossy(&req.body).into_owned());
                shared.changed.notify_all();
                respond(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
            }
            ("POST", path) if path.starts_with(INVOCATION) => {
                let rest = &path[INVOCATION.len()..];
                let (id, kind) = rest.split_once('/').unwrap_or((rest, ""));
                if kind != "response" && kind != "error" {
                    respond(&mut writer, "404 Not Found", &[], b"")?;
                } else {
                    let at = Instant::now();
                    let mut state = shared.lock();
                    let sent = state.sent.remove(id).unwrap_or(at);
                    state.answers.insert(
                        id.to_string(),
                        Answer {
                            sent,
                            at,
                            error: kind == "error",
                            body: req.body,
                        },
                    );
                    drop(state);
                    shared.changed.notify_all();
                    respond(&mut writer, "202 Accepted", &[], br#"{"status":"OK"}"#)?;
                }
            }
            _ => respond(&mut writer, "404 Not Found", &[], b"")?,
        }
        if req.close {
            return Ok(());
        }
    }
    Ok(())
}

/// Blocks until an event is queued (or the endpoint stops); notes the first
/// request and when the event was handed over.
fn next_event(shared: &Shared) -> Option<(String, Vec<u8>)> {
    let mut state = shared.lock();
    if state.first_next.is_none() {
        state.first_next = Some(Instant::now());
        shared.changed.notify_all();
    }
    loop {
        if state.closed {
            return None;
        }
        if let Some((id, event)) = state.queue.pop_front() {
            state.sent.insert(id.clone(), Instant::now());
            return Some((id, event));
        }
        state = shared
            .changed
            .wait_timeout(state, Duration::from_millis(100))
            .unwrap_or_else(|p| p.into_inner())
            .0;
    }
}

fn respond(
    w: &mut TcpStream,
    status: &str,
    headers: &[(&str, String)],
    body: &[u8],
) -> std::io::Result<()> {
    let mut out = format!("HTTP/1.1 {status}\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        out.push_str(k);
        out.push_str(": ");
        out.push_str(v);
        out.push_str("\r\n");
    }
    out.push_str("\r\n");
    let mut bytes = out.into_bytes();
    bytes.extend_from_slice(body);
    w.write_all(&bytes)?;
    w.flush()
}

fn read_request(
    r: &mut BufReader<TcpStream>,
    w: &mut TcpStream,
) -> std::io::Result<Option<Request>> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or_default().to_string();
    let path = parts.next().unwrap_or_default().to_string();
    let http10 = parts.next() == Some("HTTP/1.0");
    let (mut length, mut chunked, mut close, mut expect) = (0usize, false, http10, false);
    loop {
        line.clear();
        if r.read_line(&mut line)? == 0 {
            return Ok(None);
        }
        let l = line.trim_end();
        if l.is_empty() {
            break;
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let value = value.trim().to_ascii_lowercase();
        match name.trim().to_ascii_lowercase().as_str() {
            "content-length" => length = value.parse().unwrap_or(0),
            "transfer-encoding" => chunked = value.contains("chunked"),
            "connection" => close = value == "close",
            "expect" => expect = value == "100-continue",
            _ => {}
        }
    }
    if expect {
        w.write_all(b"HTTP/1.1 100 Continue\r\n\r\n")?;
    }
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            r.read_line(&mut line)?;
            let size =
                usize::from_str_radix(line.trim().split(';').next().unwrap_or_default().trim(), 16)
                    .unwrap_or(0);
            if size == 0 {
                // Trailers, up to the empty line.
                loop {
                    line.clear();
                    if r.read_line(&mut line)? == 0 || line.trim().is_empty() {
                        break;
                    }
                }
                break;
            }
            let start = body.len();
            body.resize(start + size, 0);
            r.read_exact(&mut body[start..])?;
            line.clear();
            r.read_line(&mut line)?;
        }
    } else {
        body.resize(length, 0);
        r.read_exact(&mut body)?;
    }
    Ok(Some(Request {
        method,
        path,
        close,
        body,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn call(addr: &str, raw: &str) -> String {
        let mut s = TcpStream::connect(addr).unwrap();
        s.write_all(raw.as_bytes()).unwrap();
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    #[test]
    fn feeds_an_event_and_reads_a_chunked_answer() {
        let api = RuntimeApi::start().unwrap();
        let addr = api.address();
        // A process that stays up while the test plays the function.
        let mut child = Command::new("sleep").arg("30").spawn().unwrap();
        let a = addr.clone();
        let function = std::thread::spawn(move || {
            let next = call(
                &a,
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
            );
            assert!(next.starts_with("HTTP/1.1 200"), "{next}");
            assert!(
                next.contains("Lambda-Runtime-Aws-Request-Id: inv-1\r\n"),
                "{next}"
            );
            assert!(next.ends_with("{\"n\":1}"), "{next}");
            let answer = call(
                &a,
                "POST /2018-06-01/runtime/invocation/inv-1/response HTTP/1.1\r\nHost: x\r\n\
                 Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n3\r\n{\"o\r\n4\r\nk\":1\r\n1\r\n}\r\n0\r\n\r\n",
            );
            assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");
        });
        let first = api.wait_first_next(&mut child, Duration::from_secs(10));
        let answer = api.invoke(
            "inv-1",
            b"{\"n\":1}".to_vec(),
            &mut child,
            Duration::from_secs(10),
        );
        function.join().unwrap();
        let _ = child.kill();
        let _ = child.wait();
        first.unwrap();
        let answer = answer.unwrap();
        assert!(!answer.error);
        assert_eq!(answer.body, b"{\"ok\":1}");
        assert!(answer.at >= answer.sent);
    }
}

//! The hub's `webhook-square` beside a peer doing the same job the way the
//! Python Lambda world does it: `bench/peer/handler.py`, Python 3.11 with
//! Powertools for AWS Lambda 3 (signature check, DynamoDB idempotency on
//! the event id, SQS) under `awslambdaric`, the AWS Lambda Runtime
//! Interface Client. Part of `cargo xtask bench`; `--peer-only` runs it
//! alone.
//!
//! Both sides get the same thing: the same signed Square `payment.updated`
//! webhooks as API Gateway HTTP API v2 payloads ([`NEW_EVENTS`] new event
//! ids, then [`REDELIVERIES`] redeliveries of the first), fed one at a time
//! by the same loopback Lambda Runtime API (`runtime_api.rs`), each side
//! against a fresh emulator of its own (moto, each request atomic) that
//! counts every request it serves (`bench/peer/moto_counting.py`). The hub
//! routes the merchant to a tenant (a connection is registered), as in
//! production.
//!
//! Figures per side, timed and measured from outside the process:
//! - init: spawn to the first `GET .../invocation/next`, median of
//!   [`INIT_STARTS`] starts;
//! - CPU per invocation: user+sys of the process (its `/proc/<pid>/stat`,
//!   or the sum of its threads' `schedstat` where that is larger: the
//!   former counts in 10 ms ticks), init included, over the invocations of
//!   one process: one process for the new events, another for the
//!   redeliveries;
//! - warm wall p50 (and p99) for new events: event handed over to answer
//!   read, the first invocation left out;
//! - peak RSS (`VmHWM`), the larger of the two processes;
//! - AWS calls per accepted webhook and per redelivery, at the emulator,
//!   by operation, each process's start-up calls included.
//!
//! `--profile-hub` (with `--peer-only`) also builds `webhook-square` with
//! symbols (profile `bench-symbols`: `bench` unstripped, line tables) and
//! records `perf record -g` (DWARF call graphs, cpu-clock) on it over
//! another [`NEW_EVENTS`] new events, after its start-up, into
//! `target/bench-figures/peer/hub-new-events.perf.data`, with `perf report`
//! summaries beside it.

#![allow(clippy::float_arithmetic)] // timings and ratios for people to read

use crate::runtime_api::{Answer, RuntimeApi};
use crate::{Moto, Result, cargo, ensure_venv_with, root, run, stamp, start_moto_script};
use base64::Engine;
use hmac::{Hmac, KeyInit, Mac};
use serde_json::{Value, json};
use sha2::Sha256;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// New event ids delivered to each side.
pub const NEW_EVENTS: usize = 300;
/// Redeliveries of one (already accepted) event to each side.
pub const REDELIVERIES: usize = 300;
/// Starts for the init figure.
pub const INIT_STARTS: usize = 5;

const SIGNING_KEY: &str = "bench-square-signature-key-Qm2vT8";
const NOTIFICATION_URL: &str = "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/square";
const HOST: &str = "abc123.execute-api.us-east-1.amazonaws.com";
const MERCHANT: &str = "MLEFBHHSJGVHD";
const INVOKE_TIMEOUT: Duration = Duration::from_secs(30);
const INIT_TIMEOUT: Duration = Duration::from_secs(60);

/// What to run and where the binaries are.
#[derive(Debug)]
pub struct Options {
    /// `hub` (for `hub aws bootstrap` and the seed).
    pub hub: PathBuf,
    /// `webhook-square` as measured.
    pub webhook_square: PathBuf,
    /// The venv with moto (`.venv-tools`).
    pub tools_venv: PathBuf,
    /// `webhook-square` with symbols, to record `perf` on.
    pub profile: Option<PathBuf>,
}

/// The figures of one side.
#[derive(Debug, Default)]
struct Figures {
    init: Vec<Duration>,
    init_cpu: Vec<Duration>,
    cpu_new: Duration,
    cpu_redelivery: Duration,
    wall_new: Vec<Duration>,
    wall_redelivery: Vec<Duration>,
    rss_kib: u64,
    calls_new: BTreeMap<String, u64>,
    calls_redelivery: BTreeMap<String, u64>,
    first_answers: Vec<Value>,
}

/// How one side is started.
#[derive(Debug)]
struct Side {
    program: PathBuf,
    args: Vec<String>,
    cwd: PathBuf,
    env: Vec<(String, String)>,
}

/// A child killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// One process's run.
#[derive(Debug)]
struct ProcessRun {
    init: Duration,
    init_cpu: Duration,
    cpu: Duration,
    rss_kib: u64,
    answers: Vec<Answer>,
}

impl Side {
    fn spawn(&self, api: &RuntimeApi, log: &Path) -> Result<Child> {
        let out = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        Command::new(&self.program)
            .args(&self.args)
            .current_dir(&self.cwd)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", api.address())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .map_err(|e| format!("start {}: {e}", self.program.display()))
    }

    /// Starts a process, feeds it `events` one at a time and measures it;
    /// with `perf`, records a profile of it over the events (after its
    /// start-up) into that file.
    fn run(
        &self,
        events: &[(String, Vec<u8>)],
        log: &Path,
        perf: Option<&Path>,
    ) -> Result<ProcessRun> {
        let api = RuntimeApi::start()?;
        let started = Instant::now();
        let mut child = Killed(self.spawn(&api, log)?);
        let first = api
            .wait_first_next(&mut child.0, INIT_TIMEOUT)
            .map_err(|e| format!("{e} (its log: {})", log.display()))?;
        let pid = child.0.id();
        let init_cpu = cpu_time(pid)?;
        let recorder = match perf {
            Some(path) => Some(start_perf(pid, path)?),
            None => None,
        };
        let mut answers = Vec::with_capacity(events.len());
        for (id, event) in events {
            let a = api
                .invoke(id, event.clone(), &mut child.0, INVOKE_TIMEOUT)
                .map_err(|e| format!("{e} (its log: {})", log.display()))?;
            if a.error {
                return Err(format!(
                    "invocation {id} failed: {} (its log: {})",
                    String::from_utf8_lossy(&a.body),
                    log.display()
                ));
            }
            answers.push(a);
        }
        let cpu = cpu_time(pid)?;
        let rss_kib = peak_rss_kib(pid)?;
        if let Some(p) = recorder {
            stop_perf(p)?;
        }
        drop(child);
        Ok(ProcessRun {
            init: first.saturating_duration_since(started),
            init_cpu,
            cpu,
            rss_kib,
            answers,
        })
    }

    /// Starts a process `n` times up to its first request for an event.
    fn init_starts(&self, n: usize, log: &Path) -> Result<(Vec<Duration>, Vec<Duration>)> {
        let (mut times, mut cpu) = (Vec::new(), Vec::new());
        for _ in 0..n {
            let run = self.run(&[], log, None)?;
            times.push(run.init);
            cpu.push(run.init_cpu);
        }
        Ok((times, cpu))
    }
}

/// The answer's HTTP status and JSON body, as API Gateway would read the
/// function's result.
fn http_answer(a: &Answer) -> Result<(u64, Value)> {
    let v: Value = serde_json::from_slice(&a.body).map_err(|e| {
        format!(
            "the function's answer is not JSON ({e}): {}",
            String::from_utf8_lossy(&a.body)
        )
    })?;
    let status = v["statusCode"].as_u64().unwrap_or_default();
    let body = v["body"]
        .as_str()
        .and_then(|b| serde_json::from_str(b).ok())
        .unwrap_or(Value::Null);
    Ok((status, body))
}

fn check_ok(side: &str, what: &str, answers: &[Answer]) -> Result<Value> {
    let mut first = Value::Null;
    for (i, a) in answers.iter().enumerate() {
        let (status, body) = http_answer(a)?;
        if status != 200 {
            return Err(format!(
                "{side}, {what} #{i}: answered {status}: {body} ({})",
                String::from_utf8_lossy(&a.body)
            ));
        }
        if i == 0 {
            first = body;
        }
    }
    Ok(first)
}

/// Clock ticks per second of `/proc/<pid>/stat`.
fn clock_ticks() -> u64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .filter(|t| *t > 0)
        .unwrap_or(100)
}

/// User+sys CPU of a process so far: `/proc/<pid>/stat` (every thread,
/// ended ones too, in ticks), or the sum of its live threads' `schedstat`
/// run time (nanoseconds) where that is more.
fn cpu_time(pid: u32) -> Result<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map_err(|e| format!("read /proc/{pid}/stat: {e}"))?;
    let after = stat
        .rsplit_once(')')
        .map(|(_, r)| r)
        .ok_or("unreadable /proc/<pid>/stat")?;
    let fields: Vec<&str> = after.split_whitespace().collect();
    // After the command: state is field 3, utime 14, stime 15.
    let tick = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let ticks = tick(11) + tick(12);
    let from_ticks = Duration::from_nanos(ticks * 1_000_000_000 / clock_ticks());
    let mut sched = 0u64;
    if let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in tasks.flatten() {
            if let Ok(s) = std::fs::read_to_string(t.path().join("schedstat")) {
                sched += s
                    .split_whitespace()
                    .next()
                    .and_then(|n| n.parse::<u64>().ok())
                    .unwrap_or(0);
            }
        }
    }
    Ok(from_ticks.max(Duration::from_nanos(sched)))
}

/// Peak resident set (`VmHWM`), KiB.
fn peak_rss_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("read /proc/{pid}/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| format!("no VmHWM in /proc/{pid}/status"))
}

fn start_perf(pid: u32, out: &Path) -> Result<Child> {
    let child = Command::new("perf")
        .args([
            "record",
            "-q",
            "-e",
            "cpu-clock",
            "-F",
            "4000",
            "--call-graph",
            "dwarf,32768",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| format!("start perf record (is perf installed?): {e}"))?;
    // perf attaches in well under this; it says nothing when it has.
    std::thread::sleep(Duration::from_millis(1500));
    Ok(child)
}

fn stop_perf(mut perf: Child) -> Result<()> {
    let _ = Command::new("kill")
        .args(["-INT", &perf.id().to_string()])
        .status();
    let status = perf.wait().map_err(|e| e.to_string())?;
    // Stopped by the SIGINT sent above: it writes its data and exits 130,
    // or dies of the signal (it has written the data by then too).
    let interrupted = status.code() == Some(130)
        || std::os::unix::process::ExitStatusExt::signal(&status) == Some(2);
    if status.success() || interrupted {
        Ok(())
    } else {
        Err(format!("perf record failed ({status})"))
    }
}

/// A small HTTP/1.1 call to the emulator's counters.
fn moto_call(moto: &Moto, method: &str, path: &str) -> Result<Value> {
    let hostport = moto.url.trim_start_matches("http://");
    let mut s = std::net::TcpStream::connect(hostport).map_err(|e| format!("{hostport}: {e}"))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .map_err(|e| e.to_string())?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {hostport}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    s.read_to_end(&mut out).map_err(|e| e.to_string())?;
    let text = String::from_utf8_lossy(&out);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b)
        .ok_or("the emulator's counters: no body")?;
    serde_json::from_str(body).map_err(|e| format!("the emulator's counters: {e}: {body}"))
}

fn reset_calls(moto: &Moto) -> Result<()> {
    moto_call(moto, "POST", "/__bench/reset").map(|_| ())
}

fn calls(moto: &Moto) -> Result<BTreeMap<String, u64>> {
    Ok(moto_call(moto, "GET", "/__bench/counts")?
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap_or(0)))
        .collect())
}

/// Square's signature: base64 of HMAC-SHA256 over notification URL + body.
fn square_signature(body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(SIGNING_KEY.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(NOTIFICATION_URL.as_bytes());
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

/// One signed `payment.updated` delivery as an API Gateway HTTP API v2
/// event: the payment is the first of the Square fixture's ListPayments
/// answer.
fn delivery(payment: &Value, event_id: &str, request_id: &str) -> Vec<u8> {
    let body = json!({
        "merchant_id": MERCHANT,
        "type": "payment.updated",
        "event_id": event_id,
        "created_at": "2026-11-29T10:00:00.000Z",
        "data": {
            "type": "payment",
            "id": payment["id"],
            "object": {"payment": payment},
        },
    })
    .to_string();
    let signature = square_signature(body.as_bytes());
    json!({
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": "/webhooks/square",
        "rawQueryString": "",
        "headers": {
            "host": HOST,
            "content-type": "application/json",
            "user-agent": "Square Connect v2",
            "square-environment": "Production",
            "square-version": "2025-10-16",
            "x-square-hmacsha256-signature": signature,
        },
        "requestContext": {
            "accountId": "123456789012",
            "apiId": "abc123",
            "domainName": HOST,
            "domainPrefix": "abc123",
            "http": {
                "method": "POST",
                "path": "/webhooks/square",
                "protocol": "HTTP/1.1",
                "sourceIp": "203.0.113.9",
                "userAgent": "Square Connect v2",
            },
            "requestId": request_id,
            "routeKey": "$default",
            "stage": "$default",
            "time": "29/Nov/2026:10:00:00 +0000",
            "timeEpoch": 1_795_946_400_000u64,
        },
        "isBase64Encoded": false,
        "body": body,
    })
    .to_string()
    .into_bytes()
}

/// The deliveries: `run` and `batch` make the event ids; `redeliver` sends
/// the first event of the run's batch 0 every time.
fn deliveries(
    payment: &Value,
    run: u32,
    batch: u32,
    n: usize,
    redeliver: bool,
) -> Vec<(String, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let event_id = if redeliver {
                event_id(run, 0, 0)
            } else {
                event_id(run, batch, i)
            };
            let id = format!("bench-{batch}-{i:04}");
            let payload = delivery(payment, &event_id, &id);
            (id, payload)
        })
        .collect()
}

fn event_id(run: u32, batch: u32, i: usize) -> String {
    format!("{run:08x}-{batch:04x}-4000-8000-{i:012x}")
}

fn fixture_payment() -> Result<Value> {
    let path = root().join("tests/fixtures/square/list_payments_response.json");
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let v: Value = serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))?;
    Ok(v["payments"][0].clone())
}

fn aws_creds(endpoint: &str) -> Vec<(String, String)> {
    let missing = root().join("target/bench-figures/peer/no-aws-config");
    [
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
        // Neither side reads this machine's ~/.aws.
        ("AWS_CONFIG_FILE", missing.display().to_string()),
        ("AWS_SHARED_CREDENTIALS_FILE", missing.display().to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Runs `hub` with `env`, `stdin` on its standard input.
fn hub_cli(hub: &Path, env: &[(String, String)], args: &[&str], stdin: &str) -> Result<()> {
    let mut child = Command::new(hub)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("hub {}: {e}", args.join(" ")))?;
    if let Some(mut i) = child.stdin.take() {
        i.write_all(stdin.as_bytes()).map_err(|e| e.to_string())?;
    }
    let out = child.wait_with_output().map_err(|e| e.to_string())?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "hub {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr)
        ))
    }
}

/// The hub's side: `hub aws bootstrap`, a tenant owning the merchant, the
/// signing key; `webhook-square` with the AWS backend's environment.
fn hub_side(opts: &Options, moto: &Moto) -> Result<Side> {
    let mut env = crate::bench::aws_env(&opts.hub, &moto.url)?;
    env.extend(aws_creds(&moto.url));
    env.push(("HUB_BACKEND".into(), "aws".into()));
    hub_cli(
        &opts.hub,
        &env,
        &["tenant", "add", "bench", "--name", "Bench"],
        "",
    )?;
    hub_cli(
        &opts.hub,
        &env,
        &[
            "connection",
            "add",
            "--tenant",
            "bench",
            "--id",
            "pos",
            "--provider",
            "square",
            "--account",
            MERCHANT,
            "--time-zone",
            "America/New_York",
        ],
        "",
    )?;
    hub_cli(
        &opts.hub,
        &env,
        &["secret", "set", "webhooks/square"],
        SIGNING_KEY,
    )?;
    env.push((
        "HUB_SQUARE_NOTIFICATION_URL".into(),
        NOTIFICATION_URL.into(),
    ));
    Ok(Side {
        program: opts.webhook_square.clone(),
        args: Vec::new(),
        cwd: root(),
        env,
    })
}

/// The peer's side: its venv, its table, queue and secret
/// (`bench/peer/setup_aws.py`), `python -m awslambdaric handler.handler`.
fn peer_side(venv: &Path, moto: &Moto) -> Result<Side> {
    let dir = root().join("bench/peer");
    let python = venv.join("bin/python");
    let mut env = aws_creds(&moto.url);
    let mut setup = Command::new(&python)
        .arg(dir.join("setup_aws.py"))
        .arg("bench")
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("bench/peer/setup_aws.py: {e}"))?;
    if let Some(mut i) = setup.stdin.take() {
        i.write_all(SIGNING_KEY.as_bytes())
            .map_err(|e| e.to_string())?;
    }
    let out = setup.wait_with_output().map_err(|e| e.to_string())?;
    if !out.status.success() {
        return Err(format!(
            "bench/peer/setup_aws.py failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    env.extend(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    env.extend(
        [
            ("PEER_NOTIFICATION_URL", NOTIFICATION_URL),
            ("POWERTOOLS_SERVICE_NAME", "webhook-square-peer"),
            ("LAMBDA_TASK_ROOT", &dir.display().to_string()),
            // Nothing written into bench/peer/ (site-packages' bytecode
            // was compiled at install).
            ("PYTHONDONTWRITEBYTECODE", "1"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string())),
    );
    Ok(Side {
        program: python,
        args: ["-m", "awslambdaric", "handler.handler"]
            .map(String::from)
            .to_vec(),
        cwd: dir,
        env,
    })
}

/// Runs one side's measurement on its emulator.
fn measure(
    name: &str,
    side: &Side,
    moto: &Moto,
    payment: &Value,
    run: u32,
    dir: &Path,
) -> Result<Figures> {
    let log = |what: &str| dir.join(format!("{name}-{what}.log"));
    eprintln!("    {name}: {INIT_STARTS} starts");
    let (init, init_cpu) = side.init_starts(INIT_STARTS, &log("init"))?;
    eprintln!("    {name}: {NEW_EVENTS} new events");
    reset_calls(moto)?;
    let new = side.run(
        &deliveries(payment, run, 0, NEW_EVENTS, false),
        &log("new"),
        None,
    )?;
    let calls_new = calls(moto)?;
    eprintln!("    {name}: {REDELIVERIES} redeliveries of one event");
    reset_calls(moto)?;
    let again = side.run(
        &deliveries(payment, run, 1, REDELIVERIES, true),
        &log("redeliveries"),
        None,
    )?;
    let calls_redelivery = calls(moto)?;
    let first_new = check_ok(name, "new event", &new.answers)?;
    let first_again = check_ok(name, "redelivery", &again.answers)?;
    let per = |cpu: Duration, n: usize| cpu / u32::try_from(n.max(1)).unwrap_or(u32::MAX);
    let mut init_all = init;
    init_all.extend([new.init, again.init]);
    let mut init_cpu_all = init_cpu;
    init_cpu_all.extend([new.init_cpu, again.init_cpu]);
    Ok(Figures {
        init: init_all,
        init_cpu: init_cpu_all,
        cpu_new: per(new.cpu, NEW_EVENTS),
        cpu_redelivery: per(again.cpu, REDELIVERIES),
        wall_new: new.answers.iter().skip(1).map(Answer::wall).collect(),
        wall_redelivery: again.answers.iter().skip(1).map(Answer::wall).collect(),
        rss_kib: new.rss_kib.max(again.rss_kib),
        calls_new,
        calls_redelivery,
        first_answers: vec![first_new, first_again],
    })
}

/// The comparison: the figures as JSON (`figures.json`'s `peer`) and the
/// table's lines.
pub fn compare(opts: &Options) -> Result<(Value, Vec<String>)> {
    let started = Instant::now();
    let dir = root().join("target/bench-figures/peer");
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let python = std::env::var("PEER_PYTHON").unwrap_or_else(|_| "python3.11".into());
    let peer_venv = ensure_venv_with(
        "target/bench-peer-venv",
        "bench/peer/requirements.txt",
        &python,
    )?;
    let peer_python = peer_venv.join("bin/python");
    let version = Command::new(&peer_python)
        .args(["-c", "import sys; print(sys.version.split()[0])"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let payment = fixture_payment()?;
    let counting = root().join("bench/peer/moto_counting.py");
    let run = (stamp() & 0xffff_ffff) as u32;

    eprintln!("\n==> the hub's webhook-square against its emulator");
    let hub = {
        let moto = start_moto_script(&opts.tools_venv, &counting, &dir.join("moto-hub.log"))?;
        let side = hub_side(opts, &moto)?;
        let figures = measure("hub", &side, &moto, &payment, run, &dir)?;
        if let Some(symbols) = &opts.profile {
            let perf_data = dir.join("hub-new-events.perf.data");
            eprintln!(
                "    hub: perf record over {NEW_EVENTS} more new events ({})",
                symbols.display()
            );
            let profiled = Side {
                program: symbols.clone(),
                args: Vec::new(),
                cwd: side.cwd.clone(),
                env: side.env.clone(),
            };
            let r = profiled.run(
                &deliveries(&payment, run, 2, NEW_EVENTS, false),
                &dir.join("hub-profiled.log"),
                Some(&perf_data),
            )?;
            check_ok("hub (profiled)", "new event", &r.answers)?;
            perf_reports(&perf_data)?;
        }
        figures
    };

    eprintln!("\n==> the peer (Python {version}, Powertools, awslambdaric) against its emulator");
    let peer = {
        let moto = start_moto_script(&opts.tools_venv, &counting, &dir.join("moto-peer.log"))?;
        let side = peer_side(&peer_venv, &moto)?;
        measure("peer", &side, &moto, &payment, run, &dir)?
    };

    let h = summary(&hub);
    let p = summary(&peer);
    let mut ratio = serde_json::Map::new();
    for (k, hv) in h.as_object().into_iter().flatten() {
        if let (Some(a), Some(b)) = (hv.as_f64(), p[k].as_f64()) {
            ratio.insert(k.clone(), json!(round(a / b.max(1e-9), 3)));
        }
    }
    let figures = json!({
        "what": "webhook-square (profile bench) and a Python peer (bench/peer/handler.py: Powertools for AWS Lambda 3 under awslambdaric) fed the same signed Square webhooks through the same loopback Lambda Runtime API, each on a fresh moto of its own",
        "peer_runtime": format!("Python {version}; bench/peer/requirements.txt"),
        "new_events": NEW_EVENTS,
        "redeliveries": REDELIVERIES,
        "init_starts": INIT_STARTS + 2,
        "aws_calls_counted": "at the emulator: bench/peer/moto_counting.py counts every request moto serves, by SigV4 service and X-Amz-Target operation; each process's start-up calls included",
        "cpu_measured": "user+sys of the process (/proc/<pid>/stat, or its threads' schedstat where larger), init included, divided by the invocations of that process",
        "hub": with_detail(h, &hub),
        "peer": with_detail(p, &peer),
        "ratio_hub_over_peer": ratio,
        "seconds": round(started.elapsed().as_secs_f64(), 1),
    });
    let table = table(&figures);
    Ok((figures, table))
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn median(v: &[Duration]) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    s.get(s.len() / 2).copied().unwrap_or_default()
}

fn percentile(v: &[Duration], p: f64) -> Duration {
    let mut s = v.to_vec();
    s.sort();
    if s.is_empty() {
        return Duration::ZERO;
    }
    let i = ((s.len() - 1) as f64 * p).round() as usize;
    s[i.min(s.len() - 1)]
}

fn total(calls: &BTreeMap<String, u64>) -> u64 {
    calls.values().sum()
}

/// The headline figures of one side (the table's rows).
fn summary(f: &Figures) -> Value {
    json!({
        "init_ms": round(ms(median(&f.init)), 2),
        "cpu_per_new_event_ms": round(ms(f.cpu_new), 3),
        "cpu_per_redelivery_ms": round(ms(f.cpu_redelivery), 3),
        "wall_p50_new_ms": round(ms(percentile(&f.wall_new, 0.5)), 3),
        "peak_rss_mib": round(f.rss_kib as f64 / 1024.0, 1),
        "aws_calls_per_accepted": round(total(&f.calls_new) as f64 / NEW_EVENTS as f64, 3),
        "aws_calls_per_redelivery": round(total(&f.calls_redelivery) as f64 / REDELIVERIES as f64, 3),
    })
}

fn with_detail(mut v: Value, f: &Figures) -> Value {
    let extra = json!({
        "init_max_ms": round(ms(f.init.iter().copied().max().unwrap_or_default()), 2),
        "init_cpu_ms": round(ms(median(&f.init_cpu)), 2),
        "wall_p99_new_ms": round(ms(percentile(&f.wall_new, 0.99)), 3),
        "wall_p50_redelivery_ms": round(ms(percentile(&f.wall_redelivery, 0.5)), 3),
        "wall_p99_redelivery_ms": round(ms(percentile(&f.wall_redelivery, 0.99)), 3),
        "aws_calls_new": f.calls_new,
        "aws_calls_redelivery": f.calls_redelivery,
        "first_answer_new": f.first_answers.first(),
        "first_answer_redelivery": f.first_answers.get(1),
    });
    if let (Some(o), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        o.extend(e.clone());
    }
    v
}

/// The printed table.
fn table(f: &Value) -> Vec<String> {
    let rows = [
        ("init, spawn to first /next (ms, median)", "init_ms"),
        (
            "CPU per invocation, new events (ms)",
            "cpu_per_new_event_ms",
        ),
        (
            "CPU per invocation, redeliveries (ms)",
            "cpu_per_redelivery_ms",
        ),
        ("warm wall p50, new events (ms)", "wall_p50_new_ms"),
        ("peak RSS (MiB)", "peak_rss_mib"),
        ("AWS calls per accepted webhook", "aws_calls_per_accepted"),
        ("AWS calls per redelivery", "aws_calls_per_redelivery"),
    ];
    let mut out = vec![format!(
        "{:<42} {:>10} {:>10} {:>9}",
        "", "HUB", "PEER", "HUB/PEER"
    )];
    for (label, key) in rows {
        out.push(format!(
            "{label:<42} {:>10} {:>10} {:>9}",
            f["hub"][key], f["peer"][key], f["ratio_hub_over_peer"][key]
        ));
    }
    for side in ["hub", "peer"] {
        for (what, key) in [
            ("per new event", "aws_calls_new"),
            ("per redelivery", "aws_calls_redelivery"),
        ] {
            let n = if key == "aws_calls_new" {
                NEW_EVENTS
            } else {
                REDELIVERIES
            };
            let calls: Vec<String> = f[side][key]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(op, c)| format!("{op} {}", c.as_u64().unwrap_or(0)))
                .collect();
            out.push(format!(
                "{side} AWS calls ({n} invocations, {what}): {}",
                calls.join(", ")
            ));
        }
    }
    out
}

/// `perf report` summaries beside the profile: self time by symbol, and
/// inclusive (children) time.
fn perf_reports(data: &Path) -> Result<()> {
    for (suffix, extra) in [
        ("self.txt", &["--no-children"][..]),
        ("children.txt", &["--children"][..]),
    ] {
        let out_path = data.with_extension(suffix);
        let out = Command::new("perf")
            .args(["report", "--stdio", "-i"])
            .arg(data)
            .args(extra)
            .args(["--sort", "symbol", "--percent-limit", "0.5", "-g", "none"])
            .stderr(Stdio::null())
            .output()
            .map_err(|e| format!("perf report: {e}"))?;
        std::fs::write(&out_path, &out.stdout)
            .map_err(|e| format!("write {}: {e}", out_path.display()))?;
        eprintln!("    perf report ({suffix}): {}", out_path.display());
    }
    Ok(())
}

/// Builds `webhook-square` with symbols (profile `bench-symbols`: `bench`
/// unstripped, with line tables), for `--profile-hub`.
pub fn build_with_symbols() -> Result<PathBuf> {
    run(
        "build webhook-square with symbols (profile bench-symbols)",
        cargo().args([
            "build",
            "--config",
            "profile.bench-symbols.inherits=\"bench\"",
            "--config",
            "profile.bench-symbols.strip=false",
            "--config",
            "profile.bench-symbols.debug=\"line-tables-only\"",
            "--profile",
            "bench-symbols",
            "-p",
            "webhook-square",
        ]),
    )?;
    Ok(root().join("target/bench-symbols/webhook-square"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_is_squares_known_answer() {
        // Square's published vector (shared/src/webhooks/verify.rs):
        // key, notification URL and body give this signature.
        let key = "Ibxx_5AKakO-3qeNVR61Dw";
        let url = "https://webhook.site/679a4f3a-dcfa-49ee-bac5-9d0edad886b9";
        let body =
            std::fs::read(root().join("tests/fixtures/square/webhook_test_notification.json"))
                .unwrap();
        let mut mac = Hmac::<Sha256>::new_from_slice(key.as_bytes()).unwrap();
        mac.update(url.as_bytes());
        mac.update(&body);
        let sig = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert_eq!(sig, "GF4YkrJgGBDZ9NIYbNXBnMzqb2HoL4RW/S6vkZ9/2N4=");
    }

    #[test]
    fn deliveries_are_signed_api_gateway_v2_events() {
        let payment = fixture_payment().unwrap();
        let new = deliveries(&payment, 7, 0, 3, false);
        let again = deliveries(&payment, 7, 1, 3, true);
        let event = |p: &[u8]| -> Value { serde_json::from_slice(p).unwrap() };
        let id = |p: &[u8]| -> String {
            let body: Value = serde_json::from_str(event(p)["body"].as_str().unwrap()).unwrap();
            body["event_id"].as_str().unwrap().to_string()
        };
        let e = event(&new[0].1);
        assert_eq!(e["version"], "2.0");
        assert_eq!(e["requestContext"]["http"]["method"], "POST");
        let body = e["body"].as_str().unwrap();
        assert_eq!(
            e["headers"]["x-square-hmacsha256-signature"],
            square_signature(body.as_bytes())
        );
        assert_ne!(id(&new[0].1), id(&new[1].1), "new events have new ids");
        assert!(
            again.iter().all(|(_, p)| id(p) == id(&new[0].1)),
            "redeliveries repeat the first event"
        );
    }
}

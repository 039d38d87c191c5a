//! `cargo xtask bench`: the figures the README's Performance section quotes,
//! written to `target/bench-figures/figures.json` and printed as a table.
//!
//! - Cold start: each function binary (and a hello-world `lambda_runtime`
//!   binary built the same way, profile `bench`) is started against a local
//!   Lambda Runtime API that this module serves; the figure is the time from
//!   spawning the process to its first `GET .../invocation/next` (ready for
//!   its first event), the median of several starts, on the AWS backend
//!   (the emulator; the functions carry no embedded store), and its ratio
//!   to hello-world.
//! - Webhook intake (`cargo bench -p hub-tests --bench intake`), transforms
//!   and the 100,000-order pull (`--bench pull`), posting under the
//!   providers' limits (`--bench posting`), daily journals for 1,000
//!   restaurants under the same limits (`--bench journal`): each prints a
//!   `figures: {json}` line that is collected here.
//!
//! - The Python peer (`peer.rs`): `webhook-square` beside a Powertools
//!   handler under awslambdaric doing the same job, fed the same signed
//!   webhooks through the same loopback Runtime API, each on its own
//!   emulator: init, CPU per invocation, warm wall time, peak RSS and AWS
//!   calls per webhook, side by side (`peer` in figures.json).
//!
//! `--quick` scales the pull, posting and journal runs down (10,000 orders,
//! 1,000 transactions, 100 restaurants) for a fast look; the README's figures are from a full run.
//! `--peer-only` runs the peer comparison alone (builds only `hub` and
//! `webhook-square`) and puts its figures into an existing figures.json.

use crate::{Result, cargo, ensure_venv, infra, peer, root, run, start_moto};
use std::io::{BufRead, BufReader, Read};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const STARTS: usize = 15;

/// Time from spawn to the first request for the next event, `STARTS` times;
/// the median and the slowest.
fn cold_start(binary: &Path, env: &[(String, String)]) -> Result<(Duration, Duration)> {
    let mut times = Vec::new();
    for _ in 0..STARTS {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("runtime API: {e}"))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        let started = Instant::now();
        let mut child = Command::new(binary)
            .env_clear()
            .env("PATH", std::env::var("PATH").unwrap_or_default())
            .env("AWS_LAMBDA_RUNTIME_API", addr.to_string())
            .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
            .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
            .env("AWS_REGION", "us-east-1")
            .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("start {}: {e}", binary.display()))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let elapsed = loop {
            match listener.accept() {
                Ok((mut conn, _)) => {
                    let at = started.elapsed();
                    let _ = conn.set_nonblocking(false);
                    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
                    let mut line = String::new();
                    let _ = BufReader::new(&mut conn).read_line(&mut line);
                    if !line.contains("/runtime/invocation/next") {
                        let _ = child.kill();
                        return Err(format!(
                            "{}: first runtime call was {line:?}",
                            binary.display()
                        ));
                    }
                    break at;
                }
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    if let Ok(Some(status)) = child.try_wait() {
                        let mut err = String::new();
                        if let Some(mut s) = child.stderr.take() {
                            let _ = s.read_to_string(&mut err);
                        }
                        return Err(format!(
                            "{} exited ({status}) before asking for an event: {}",
                            binary.display(),
                            err.lines().last().unwrap_or_default()
                        ));
                    }
                    if started.elapsed() > Duration::from_secs(30) {
                        let _ = child.kill();
                        return Err(format!("{} did not start in 30 s", binary.display()));
                    }
                    std::thread::sleep(Duration::from_micros(200));
                }
                Err(e) => return Err(e.to_string()),
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        times.push(elapsed);
    }
    times.sort();
    Ok((times[times.len() / 2], times[times.len() - 1]))
}

/// Runs a bench target and returns its `figures:` line as JSON text.
fn bench_figures(bench: &str, env: &[(&str, String)]) -> Result<String> {
    eprintln!("\n==> cargo bench -p hub-tests --bench {bench}");
    let mut cmd = cargo();
    cmd.args(["bench", "-p", "hub-tests", "--bench", bench])
        .stdout(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().map_err(|e| format!("start {bench}: {e}"))?;
    let mut figures = None;
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            eprintln!("    {line}");
            if let Some(rest) = line.strip_prefix("figures: ") {
                figures = Some(rest.to_string());
            }
        }
    }
    let status = child.wait().map_err(|e| e.to_string())?;
    if !status.success() {
        return Err(format!("bench {bench} failed ({status})"));
    }
    figures.ok_or_else(|| format!("bench {bench} printed no figures"))
}

#[allow(clippy::float_arithmetic)] // timings for people to read
fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}

#[allow(clippy::float_arithmetic)] // timings for people to read
fn ratio(a: Duration, b: Duration) -> String {
    format!("{:.2}", a.as_secs_f64() / b.as_secs_f64().max(1e-9))
}

/// `cargo xtask bench` options.
#[derive(Debug, Default, clap::Args)]
pub struct BenchArgs {
    /// Smaller pull and posting runs (10,000 orders, 1,000 transactions):
    /// a few minutes instead of about 35.
    #[arg(long)]
    pub quick: bool,
    /// Only the comparison with the Python peer (bench/peer/: Powertools
    /// under awslambdaric) against webhook-square; its figures go into
    /// figures.json's `peer`.
    #[arg(long)]
    pub peer_only: bool,
    /// With --peer-only: also build webhook-square with symbols and record
    /// `perf record -g` on it over 300 new events
    /// (target/bench-figures/peer/hub-new-events.perf.data).
    #[arg(long, requires = "peer_only")]
    pub profile_hub: bool,
}

/// `hub` (debug), which the bench uses only to make tables, queues and
/// secrets on an emulator. Built in a command of its own, so the functions
/// measured are built with their own features only.
fn build_hub() -> Result<PathBuf> {
    run("build hub (debug)", cargo().args(["build", "-p", "hub"]))?;
    Ok(root().join("target/debug/hub"))
}

/// `cargo xtask bench --peer-only [--profile-hub]`.
fn peer_only(args: &BenchArgs) -> Result<()> {
    let started = Instant::now();
    // Apart: built in one command, webhook-square would get the features
    // `hub` turns on (the embedded store), which the function does not ship.
    run(
        "build webhook-square (profile bench)",
        cargo().args(["build", "--profile", "bench", "-p", "webhook-square"]),
    )?;
    let hub = build_hub()?;
    let profile = if args.profile_hub {
        Some(peer::build_with_symbols()?)
    } else {
        None
    };
    let bin = |name: &str| root().join("target/release").join(name);
    let opts = peer::Options {
        hub,
        webhook_square: bin("webhook-square"),
        tools_venv: ensure_venv()?,
        profile,
    };
    let (figures, table) = peer::compare(&opts)?;
    let out_dir = root().join("target/bench-figures");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;
    let path = out_dir.join("figures.json");
    // The other figures of an earlier full run stay; `peer` is replaced.
    let mut all = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .filter(serde_json::Value::is_object)
        .unwrap_or_else(|| serde_json::json!({}));
    all["peer"] = figures;
    let text = serde_json::to_string_pretty(&all).map_err(|e| e.to_string())?;
    std::fs::write(&path, text + "\n").map_err(|e| format!("write {}: {e}", path.display()))?;
    print_peer(&table);
    println!(
        "\nFigures written to {} (key `peer`) in {:.0?}",
        path.display(),
        started.elapsed()
    );
    Ok(())
}

fn print_peer(table: &[String]) {
    println!(
        "\nwebhook-square against the Python peer (Powertools 3 under awslambdaric), {} new events and {} redeliveries each:",
        peer::NEW_EVENTS,
        peer::REDELIVERIES
    );
    for l in table {
        println!("  {l}");
    }
}

/// `cargo xtask bench [--quick] [--peer-only [--profile-hub]]`.
pub fn bench(args: &BenchArgs) -> Result<()> {
    if args.peer_only {
        return peer_only(args);
    }
    let quick = args.quick;
    let started = Instant::now();
    let crates = infra::function_crates()?;
    let mut build = cargo();
    build.args(["build", "--profile", "bench", "-p", "hello-lambda"]);
    for c in &crates {
        build.args(["-p", c]);
    }
    run(
        "build the functions and hello-world (profile bench)",
        &mut build,
    )?;
    let hub = build_hub()?;
    // The bench profile builds into target/release.
    let bin = |name: &str| root().join("target/release").join(name);
    let out_dir = root().join("target/bench-figures");
    std::fs::create_dir_all(&out_dir).map_err(|e| e.to_string())?;

    // Cold starts on the emulator, with the AWS SDK clients.
    let venv = ensure_venv()?;
    let moto = start_moto(&venv)?;
    let aws_env = aws_env(&hub, &moto.url)?;
    eprintln!("\n==> cold starts ({STARTS} each, median and slowest)");
    let (hello, hello_max) = cold_start(&bin("hello-lambda"), &[])?;
    eprintln!("    hello-lambda: {} ms (max {})", ms(hello), ms(hello_max));
    let mut cold = Vec::new();
    let mut table = vec![format!(
        "{:<20} {:>14} {:>8} {:>8}",
        "FUNCTION", "AWS SDK ms", "x HELLO", "TARGET"
    )];
    table.push(format!(
        "{:<20} {:>14} {:>8} {:>8}",
        "hello-lambda",
        ms(hello),
        "1.00",
        ""
    ));
    // The functions carry the AWS backend only (no embedded store).
    for c in &crates {
        let (a, a_max) = cold_start(&bin(c), &aws_env)?;
        let target = if c.starts_with("webhook-") || c == "intake" {
            "2.5"
        } else {
            "3"
        };
        eprintln!("    {c}: {} ms", ms(a));
        table.push(format!(
            "{c:<20} {:>14} {:>8} {:>8}",
            ms(a),
            ratio(a, hello),
            format!("<= {target}")
        ));
        cold.push(format!(
            "{{\"function\":\"{c}\",\"aws_ms\":{},\"aws_max_ms\":{},\"aws_ratio\":{},\"target_ratio\":{target}}}",
            ms(a),
            ms(a_max),
            ratio(a, hello),
        ));
    }

    // Webhook intake through `hub serve`, and handler time on the emulator.
    let intake = bench_figures(
        "intake",
        &[
            ("HUB_BENCH_AWS_ENDPOINT", moto.url.clone()),
            ("AWS_ENDPOINT_URL", moto.url.clone()),
            ("AWS_ACCESS_KEY_ID", "testing".into()),
            ("AWS_SECRET_ACCESS_KEY", "testing".into()),
            ("AWS_REGION", "us-east-1".into()),
        ],
    )?;
    drop(moto);

    // The Python peer beside webhook-square, each on an emulator of its own.
    let (peer_figures, peer_table) = peer::compare(&peer::Options {
        hub: hub.clone(),
        webhook_square: bin("webhook-square"),
        tools_venv: venv.clone(),
        profile: None,
    })?;
    let (orders, posts) = if quick {
        ("10000", "1000")
    } else {
        ("100000", "10000")
    };
    let pull = bench_figures("pull", &[("PULL_BENCH_ORDERS", orders.to_string())])?;
    let posting = bench_figures("posting", &[("POSTING_BENCH_COUNT", posts.to_string())])?;
    let restaurants = if quick { "100" } else { "1000" };
    let journal = bench_figures(
        "journal",
        &[("JOURNAL_BENCH_RESTAURANTS", restaurants.to_string())],
    )?;

    let json = format!(
        "{{\n  \"machine\": {{\"cores\": {}}},\n  \"quick\": {quick},\n  \"cold_start\": {{\"starts\": {STARTS}, \"hello_ms\": {}, \"hello_max_ms\": {}, \"functions\": [{}]}},\n  \"intake\": {intake},\n  \"peer\": {peer_figures},\n  \"pull\": {pull},\n  \"posting\": {posting},\n  \"journal\": {journal}\n}}\n",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        ms(hello),
        ms(hello_max),
        cold.join(",")
    );
    let path: PathBuf = out_dir.join("figures.json");
    std::fs::write(&path, json).map_err(|e| format!("write {}: {e}", path.display()))?;
    println!("\nCold start, process spawn to ready for the first event (median of {STARTS}):");
    for l in &table {
        println!("  {l}");
    }
    println!("\nWebhook intake: {intake}");
    print_peer(&peer_table);
    println!("Pull: {pull}");
    println!("Posting: {posting}");
    println!("Daily journals: {journal}");
    println!(
        "\nFigures written to {} in {:.0?}",
        path.display(),
        started.elapsed()
    );
    Ok(())
}

/// Tables and queues on the emulator (`hub aws bootstrap`), as the AWS
/// backend's environment.
pub(crate) fn aws_env(hub: &Path, endpoint: &str) -> Result<Vec<(String, String)>> {
    let creds = [
        ("AWS_ENDPOINT_URL", endpoint),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_REGION", "us-east-1"),
    ];
    let out = Command::new(hub)
        .args(["aws", "bootstrap", "--prefix", "bench"])
        .env_clear()
        .envs(creds)
        .output()
        .map_err(|e| format!("hub aws bootstrap: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "hub aws bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut env: Vec<(String, String)> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.extend(creds.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    Ok(env)
}

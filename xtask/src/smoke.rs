//! The function smoke tests: every function binary under `cargo lambda
//! watch` (the Lambda runtime emulator), fed the sample events in
//! `tests/fixtures/events/` by the ignored test `hub-tests/lambda_smoke`.

use crate::{Result, cargo, free_port, infra, root, run, run_tests, stamp};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The provider endpoints the functions see: a closed loopback port, so a
/// provider call fails at once instead of reaching out.
const CLOSED: &str = "http://127.0.0.1:9";

/// `cargo lambda watch` and every function it started, stopped when dropped.
pub struct Watch {
    child: Child,
    /// The emulator's URL.
    pub url: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        // The emulator stops the functions it runs on an interrupt (as on
        // Ctrl-C); it ignores a plain TERM.
        let pgid = self.child.id();
        let signal = |sig: &str| {
            let _ = Command::new("kill")
                .args([sig, "--", &format!("-{pgid}")])
                .status();
        };
        signal("-INT");
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(15) {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        signal("-KILL");
        let _ = self.child.wait();
        eprintln!("==> stopped cargo lambda watch at {}", self.url);
    }
}

/// The path of the test binary `name` of hub-tests (built, not run).
pub fn test_binary(name: &str) -> Result<String> {
    let out = cargo()
        .args([
            "test",
            "-p",
            "hub-tests",
            "--test",
            name,
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("build the test {name}: {e}"))?;
    if !out.status.success() {
        return Err(format!("the test {name} did not build"));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains(name))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[start..].find('"')? + start;
            Some(l[start..end].to_string())
        })
        .ok_or_else(|| format!("cargo named no executable for the test {name}"))
}

/// Builds every function binary (debug), as `cargo lambda watch` runs them,
/// and `hub`, in one build: one feature resolution, so the smoke tests and
/// the end-to-end step share what it compiled.
pub fn build_binaries() -> Result<()> {
    let crates = infra::function_crates()?;
    let mut build = cargo();
    build.args(["build", "-p", "hub"]);
    for c in &crates {
        build.args(["-p", c]);
    }
    run("build the function binaries and hub", &mut build)
}

/// Starts `cargo lambda watch` on a free port with `env` (and the venv's
/// `cargo-lambda` on the PATH), logging to `log_path`; waits until it
/// answers.
pub fn start_watch(venv: &Path, env: &[(String, String)], log_path: &Path) -> Result<Watch> {
    let port = free_port()?;
    let log = std::fs::File::create(log_path).map_err(|e| e.to_string())?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = cargo();
    cmd.args([
        "lambda",
        "watch",
        "-A",
        "127.0.0.1",
        "-P",
        &port.to_string(),
    ])
    .env("PATH", &path)
    .envs(env.iter().map(|(k, v)| (k, v)))
    .stdin(Stdio::null())
    .stdout(log)
    .stderr(err_log)
    .process_group(0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("start cargo lambda watch: {e}"))?;
    let mut watch = Watch {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = watch.child.try_wait() {
            return Err(format!(
                "cargo lambda watch exited ({status}) before it was ready; its log is {}",
                log_path.display()
            ));
        }
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            break;
        }
        if start.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "cargo lambda watch did not answer on {} within 120 s; its log is {}",
                watch.url,
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    eprintln!(
        "==> cargo lambda watch ready at {} in {:.1?} (log: {})",
        watch.url,
        start.elapsed(),
        log_path.display()
    );
    Ok(watch)
}

/// Runs the smoke tests: (passed, failed, whether all passed).
pub fn smoke(venv: &Path) -> Result<(u64, u64, bool)> {
    build_binaries()?;
    let binary = test_binary("lambda_smoke")?;
    let dir = root().join(format!("target/smoke/{}", stamp()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let log_path = dir.join("watch.log");
    let mut env: Vec<(String, String)> = vec![
        ("HUB_DATA_DIR".into(), dir.display().to_string()),
        (
            "HUB_SQUARE_NOTIFICATION_URL".into(),
            "https://hub.example.com/webhooks/square".into(),
        ),
        ("HUB_LOG_FORMAT".into(), "json".into()),
        ("HUB_BACKEND".into(), "embedded".into()),
    ];
    for name in [
        "TOAST",
        "SQUARE",
        "MARKETMAN",
        "QUICKBOOKS",
        "QUICKBOOKS_TOKEN",
        "XERO",
        "XERO_TOKEN",
        "SQUARE_TOKEN",
    ] {
        env.push((format!("HUB_ENDPOINT_{name}"), CLOSED.into()));
    }
    let watch = start_watch(venv, &env, &log_path)?;
    let mut test = Command::new(&binary);
    test.current_dir(root().join("tests"))
        .args(["--ignored", "--test-threads", "1"])
        .env("HUB_SMOKE_RUNTIME", &watch.url)
        .env("HUB_SMOKE_DATA_DIR", &dir);
    let (passed, failed, ok) = run_tests("function smoke tests (cargo lambda watch)", &mut test)?;
    drop(watch);
    if !ok {
        eprintln!(
            "==> function smoke tests failed; the emulator's log is {}",
            log_path.display()
        );
    }
    Ok((passed, failed, ok))
}

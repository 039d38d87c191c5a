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
struct Watch {
    child: Child,
    url: String,
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

/// The path of the smoke test's binary (built, not run).
fn test_binary() -> Result<String> {
    let out = cargo()
        .args([
            "test",
            "-p",
            "hub-tests",
            "--test",
            "lambda_smoke",
            "--no-run",
            "--message-format=json",
        ])
        .stderr(Stdio::inherit())
        .output()
        .map_err(|e| format!("build the smoke test: {e}"))?;
    if !out.status.success() {
        return Err("the smoke test did not build".into());
    }
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .filter(|l| l.contains("lambda_smoke"))
        .find_map(|l| {
            let start = l.find("\"executable\":\"")? + "\"executable\":\"".len();
            let end = l[start..].find('"')? + start;
            Some(l[start..end].to_string())
        })
        .ok_or_else(|| "cargo named no executable for the smoke test".into())
}

/// Runs the smoke tests: (passed, failed, whether all passed).
pub fn smoke(venv: &Path) -> Result<(u64, u64, bool)> {
    let crates = infra::function_crates()?;
    let mut build = cargo();
    build.arg("build");
    for c in &crates {
        build.args(["-p", c]);
    }
    run("build the function binaries", &mut build)?;
    let binary = test_binary()?;
    let dir = root().join(format!("target/smoke/{}", stamp()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let port = free_port()?;
    let log_path = dir.join("watch.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
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
    .env("HUB_DATA_DIR", &dir)
    .env(
        "HUB_SQUARE_NOTIFICATION_URL",
        "https://hub.example.com/webhooks/square",
    )
    .env("HUB_LOG_FORMAT", "json")
    .env_remove("HUB_BACKEND")
    .stdin(Stdio::null())
    .stdout(log)
    .stderr(err_log)
    .process_group(0);
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
        cmd.env(format!("HUB_ENDPOINT_{name}"), CLOSED);
    }
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

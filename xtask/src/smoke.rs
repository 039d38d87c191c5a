//! The function smoke tests: every function binary under `cargo lambda
//! watch` (the Lambda runtime emulator), fed the sample events in
//! `tests/fixtures/events/` by the ignored test `hub-tests/lambda_smoke`.
//!
//! The stage passes only if that test ran (a green run of 0 tests proves
//! nothing), ignored none, and invoked every function crate under
//! `functions/`: the test lists each function it invoked in
//! `<dir>/invoked` ([`INVOKED`]), and each crate must be there. The
//! functions' logs (`<dir>/watch.log`) and the test's own logs and secrets
//! stay in `<dir>` for the leak scan.

use crate::outcome::Outcome;
use crate::{Result, cargo, free_port, infra, root, run, run_tests};
use std::collections::BTreeSet;
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
/// answers. `embedded`: build the functions with the embedded store
/// (`-F hub-lambda/embedded`), which deployed functions do not carry.
pub fn start_watch(
    venv: &Path,
    env: &[(String, String)],
    log_path: &Path,
    embedded: bool,
) -> Result<Watch> {
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
    ]);
    if embedded {
        cmd.args(["-F", "hub-lambda/embedded"]);
    }
    cmd.env("PATH", &path)
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

/// The file in the smoke folder where the test lists, one a line, each
/// function it invoked and got an answer from.
pub const INVOKED: &str = "invoked";

/// The smoke stage's rule: the test ran and ignored nothing, and every
/// function crate in `crates` was `invoked`.
pub fn verdict(
    outcome: &Outcome,
    crates: &BTreeSet<String>,
    invoked: &BTreeSet<String>,
) -> Result<()> {
    outcome.refuse_empty()?;
    let missing: Vec<&str> = crates.difference(invoked).map(String::as_str).collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "no sample event was run for {} of {} function crate(s): {}",
            missing.len(),
            crates.len(),
            missing.join(", ")
        ))
    }
}

/// Runs the smoke tests with `dir` as the functions' state folder and the
/// logs' folder: the outcome and what went wrong.
pub fn smoke(venv: &Path, dir: &Path) -> Result<(Outcome, Vec<String>)> {
    build_binaries()?;
    let crates = infra::function_crates()?;
    let binary = test_binary("lambda_smoke")?;
    std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
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
    let watch = start_watch(venv, &env, &log_path, true)?;
    let mut test = Command::new(&binary);
    test.current_dir(root().join("tests"))
        .args(["--ignored", "--test-threads", "1"])
        .env("HUB_SMOKE_RUNTIME", &watch.url)
        .env("HUB_SMOKE_DATA_DIR", dir)
        .env("HUB_TEST_LOG_DIR", dir);
    let (outcome, ok) = run_tests(
        "function smoke tests (cargo lambda watch)",
        "lambda_smoke",
        &mut test,
    )?;
    drop(watch);
    let mut problems = outcome.failures(ok);
    let invoked: BTreeSet<String> = std::fs::read_to_string(dir.join(INVOKED))
        .unwrap_or_default()
        .lines()
        .map(str::to_string)
        .collect();
    problems.extend(verdict(&outcome, &crates, &invoked).err());
    if !problems.is_empty() {
        eprintln!(
            "==> function smoke tests failed; the emulator's log is {}",
            log_path.display()
        );
    }
    Ok((outcome, problems))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &[&str]) -> BTreeSet<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    fn outcome(text: &str) -> Outcome {
        let mut o = Outcome::new("lambda_smoke");
        text.lines().for_each(|l| o.line(l));
        o
    }

    #[test]
    fn a_smoke_run_of_no_test_or_missing_a_function_is_refused() {
        let crates = set(&["connect", "intake", "push"]);
        let ran = outcome(
            "test every_function_binary_handles_its_sample_event ... ok\n\
             test result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9.00s",
        );
        verdict(&ran, &crates, &crates).unwrap();
        // Green, with 0 tests: refused.
        let none = outcome(
            "test result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s",
        );
        let why = verdict(&none, &crates, &crates).unwrap_err();
        assert!(why.contains("no test ran"), "{why}");
        // A function crate whose event was not run: refused, by name.
        let why = verdict(&ran, &crates, &set(&["connect", "push"])).unwrap_err();
        assert!(why.contains("1 of 3 function crate(s): intake"), "{why}");
        // Nothing recorded at all (the test lost its list).
        assert!(verdict(&ran, &crates, &set(&[])).is_err());
    }
}

//! Project chores, run as `cargo xtask <verb>` (alias in `.cargo/config.toml`).
//! Needs nothing but cargo and, for `test`, python3 to make its venv.
//!
//! - `test`: the one test command. Creates `.venv-tools/` with the Python
//!   tools in `xtask/python-requirements.txt`, starts the AWS emulator (moto)
//!   on a free loopback port, runs `cargo fmt --check`, clippy with
//!   `-D warnings` and every test with `HUB_TEST_AWS_ENDPOINT` pointing at the
//!   emulator, stops it, and exits non-zero if anything failed.
//!   Before the tests: the template is checked (every function crate has a
//!   resource and every resource a crate; cfn-lint; the template as AWS reads
//!   it, after the SAM transform, with `xtask/template_check.py` and its
//!   tests; checkov). The tests record the sandboxes' traffic
//!   (`HUB_SANDBOX_RECORD`), checked afterwards against the providers'
//!   definitions (`xtask/contracts.py`); then the providers' own SDKs
//!   (squareup, xero-python) run against the sandboxes (`xtask/sdk_check.py`).
//! - `package`: builds every function with cargo lambda (release, arm64) into
//!   `target/lambda/<name>/`, where the template points.
//! - `infra`: the template checks alone.
//! - `bench`: the performance figures (see `bench.rs`).
//! - `moto`: starts the emulator in the foreground, for running single tests.

mod bench;
mod e2e;
mod infra;
mod leaks;
mod smoke;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long moto gets to answer on its port.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("test") => test(&args[1..]),
        Some("moto") => moto_foreground(),
        Some("package") => infra::package(),
        Some("bench") => bench::bench(&args[1..]),
        Some("infra") => infra::check_coverage()
            .and_then(|()| infra::cfn_lint())
            .and_then(|()| infra::template_check())
            .and_then(|()| infra::checkov()),
        _ => {
            eprintln!(
                "usage: cargo xtask <verb>\n\n\
                 verbs:\n  \
                 test [-- <cargo test args>]  fmt, clippy, template checks, every test (AWS emulator), function smoke tests\n  \
                 bench [--quick]            cold starts, intake, transforms, pull, posting -> target/bench-figures/figures.json\n  \
                 package                    build every function (release, arm64, cargo lambda) into target/lambda/\n  \
                 infra                      template checks only: coverage, cfn-lint, the SAM-transformed template, checkov\n  \
                 moto                       run the AWS emulator in the foreground (prints its URL)"
            );
            Err("no verb given".into())
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T> = std::result::Result<T, String>;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace")
        .to_path_buf()
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    c
}

fn run(step: &str, cmd: &mut Command) -> Result<()> {
    eprintln!("\n==> {step}");
    let start = Instant::now();
    let status = cmd
        .status()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    eprintln!(
        "==> {step}: {} in {:.1?}",
        if status.success() { "ok" } else { "FAILED" },
        start.elapsed()
    );
    if status.success() {
        Ok(())
    } else {
        Err(format!("{step} failed ({status})"))
    }
}

/// Makes `.venv-tools/` and installs the pinned Python tools, once per
/// change of the requirements file.
fn ensure_venv() -> Result<PathBuf> {
    ensure_venv_named(".venv-tools", "xtask/python-requirements.txt")
}

/// Makes the venv `name` from the requirements file `requirements` (both
/// relative to the workspace), once per change of the file.
fn ensure_venv_named(name: &str, requirements: &str) -> Result<PathBuf> {
    let venv = root().join(name);
    let requirements = root().join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("read {}: {e}", requirements.display()))?;
    let marker = venv.join(".installed-requirements");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    run(
        &format!("create {name}"),
        Command::new(&python).args(["-m", "venv"]).arg(&venv),
    )
    .map_err(|e| format!("{e}: is {python} (3.9 or newer, with venv) installed?"))?;
    run(
        &format!("install Python tools into {name}"),
        Command::new(venv.join("bin/pip"))
            .args(["install", "--quiet", "--disable-pip-version-check", "-r"])
            .arg(&requirements),
    )?;
    std::fs::write(&marker, wanted).map_err(|e| format!("write {}: {e}", marker.display()))?;
    Ok(venv)
}

/// The emulator, stopped when dropped.
struct Moto {
    child: Child,
    url: String,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        eprintln!("==> stopped the AWS emulator at {}", self.url);
    }
}

/// Milliseconds since the epoch: a fresh folder name per run.
fn stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

fn free_port() -> Result<u16> {
    let l = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("find a free port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

fn start_moto(venv: &Path) -> Result<Moto> {
    let port = free_port()?;
    let log_path = root().join("target/moto.log");
    std::fs::create_dir_all(root().join("target")).map_err(|e| e.to_string())?;
    let log = std::fs::File::create(&log_path)
        .map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    // moto's server with each request handled atomically, as AWS handles
    // conditional writes (xtask/moto_serialized.py says why).
    let child = Command::new(venv.join("bin/python"))
        .arg(root().join("xtask/moto_serialized.py"))
        .args(["-H", "127.0.0.1", "-p", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err_log)
        .spawn()
        .map_err(|e| format!("start moto_server: {e}"))?;
    let mut moto = Moto {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    let start = Instant::now();
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            return Err(format!(
                "the AWS emulator exited ({status}) before it was ready; its log is {}",
                log_path.display()
            ));
        }
        if TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_millis(200))
            .is_ok()
        {
            eprintln!(
                "==> AWS emulator (moto) ready at {} in {:.1?}",
                moto.url,
                start.elapsed()
            );
            return Ok(moto);
        }
        if start.elapsed() > MOTO_START_TIMEOUT {
            let _ = moto.child.kill();
            return Err(format!(
                "the AWS emulator did not answer on {} within {MOTO_START_TIMEOUT:?}; its log is {}",
                moto.url,
                log_path.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn test(extra: &[String]) -> Result<()> {
    let total = Instant::now();
    let mut failed: Vec<String> = Vec::new();
    let step = |failed: &mut Vec<String>, r: Result<()>| {
        if let Err(e) = r {
            failed.push(e);
        }
    };
    step(
        &mut failed,
        run(
            "cargo fmt --check",
            cargo().args(["fmt", "--all", "--check"]),
        ),
    );
    step(
        &mut failed,
        run(
            "cargo clippy -D warnings",
            cargo().args([
                "clippy",
                "--workspace",
                "--all-targets",
                "--",
                "-D",
                "warnings",
            ]),
        ),
    );
    step(&mut failed, infra::check_coverage());
    step(&mut failed, infra::cfn_lint());
    step(&mut failed, infra::template_check());
    step(&mut failed, infra::checkov());
    let venv = ensure_venv()?;
    step(
        &mut failed,
        run(
            "the emulator keeps conditional writes atomic (xtask/moto_serialized_test.py)",
            Command::new(venv.join("bin/python")).arg(root().join("xtask/moto_serialized_test.py")),
        ),
    );
    // If the emulator cannot start, the tests still run without it, so the AWS
    // suites fail loudly rather than vanish.
    let moto = match start_moto(&venv) {
        Ok(m) => Some(m),
        Err(e) => {
            failed.push(e);
            None
        }
    };
    // Logs and the secrets tests write go here, for the leak scan.
    let log_dir = root().join(format!("target/test-logs/{}", stamp()));
    // Every exchange the sandboxes serve during the tests, for the contract
    // checks against the providers' definitions.
    let traffic = root().join(format!("target/contracts/{}", stamp()));
    let mut test_cmd = cargo();
    test_cmd
        .args(["test", "--workspace"])
        .env("HUB_TEST_LOG_DIR", &log_dir)
        .env("HUB_SANDBOX_RECORD", &traffic);
    if !extra.is_empty() {
        test_cmd.args(extra.iter().skip_while(|a| *a == "--"));
    }
    match &moto {
        Some(m) => test_cmd.env("HUB_TEST_AWS_ENDPOINT", &m.url),
        None => test_cmd.env_remove("HUB_TEST_AWS_ENDPOINT"),
    };
    let (mut passed, mut failed_tests) = match run_tests("cargo test --workspace", &mut test_cmd) {
        Ok((passed, failed_tests, true)) => (passed, failed_tests),
        Ok((passed, failed_tests, false)) => {
            failed.push(format!(
                "cargo test --workspace failed: {passed} passed, {failed_tests} failed"
            ));
            (passed, failed_tests)
        }
        Err(e) => {
            failed.push(e);
            (0, 0)
        }
    };
    // The Lambda path on the stack's own resources needs the emulator.
    tally(
        (&mut passed, &mut failed_tests, &mut failed),
        "end-to-end Lambda checks",
        match &moto {
            Some(m) => e2e::e2e(&venv, &m.url),
            None => Err("no AWS emulator".into()),
        },
    );
    drop(moto);
    step(&mut failed, contracts(&venv, &traffic));
    step(&mut failed, official_sdks(&venv));
    eprintln!("\n==> secret-leak scan of the tests' logs");
    match leaks::scan(&log_dir) {
        Ok(scan) if scan.secrets == 0 => failed.push(format!(
            "secret-leak scan: no secrets were recorded in {} (is the capture wired?)",
            log_dir.display()
        )),
        Ok(scan) if scan.hits.is_empty() => eprintln!(
            "==> secret-leak scan: ok: {} secret values, {} log file(s), {} bytes: no hit",
            scan.secrets, scan.logs, scan.log_bytes
        ),
        Ok(scan) => failed.push(format!(
            "secret-leak scan: {} hit(s) of a test's secret in its logs:\n    {}",
            scan.hits.len(),
            scan.hits.join("\n    ")
        )),
        Err(e) => failed.push(format!("secret-leak scan: {e}")),
    }
    tally(
        (&mut passed, &mut failed_tests, &mut failed),
        "function smoke tests",
        smoke::smoke(&venv),
    );
    eprintln!("\n==> cargo xtask test finished in {:.1?}", total.elapsed());
    // One closing line for every test binary together.
    println!("xtask: {passed} passed, {failed_tests} failed");
    if failed.is_empty() {
        eprintln!("==> all steps passed");
        Ok(())
    } else {
        Err(format!(
            "{} step(s) failed:\n  {}",
            failed.len(),
            failed.join("\n  ")
        ))
    }
}

/// The contract checks: every request the tests sent a sandbox and every
/// answer it gave, against the provider's published definition copied into
/// `tests/contracts/` (OpenAPI for Square and Xero, Swagger for Toast, the
/// XSDs for QuickBooks), with a separate pass for fields the definition
/// does not have (`xtask/contracts.py`); first, its tests show each check
/// rejecting the drift it is for.
fn contracts(venv: &Path, traffic: &Path) -> Result<()> {
    let python = venv.join("bin/python");
    run(
        "the contract checks catch drift (xtask/contracts_test.py)",
        Command::new(&python).arg(root().join("xtask/contracts_test.py")),
    )?;
    if !traffic.is_dir() {
        return Err(format!(
            "contract checks: no sandbox traffic was recorded in {}",
            traffic.display()
        ));
    }
    run(
        "sandbox traffic against the providers' definitions (xtask/contracts.py)",
        Command::new(&python)
            .arg(root().join("xtask/contracts.py"))
            .arg("--specs")
            .arg(root().join("tests/contracts"))
            .arg("--traffic")
            .arg(traffic),
    )
}

/// Clients no one here wrote: the providers' own SDKs from PyPI (squareup,
/// xero-python, pinned in the requirements) against every sandbox `hub
/// sandboxes` starts, parsing every answer (`xtask/sdk_check.py`), after
/// the check's own tests show it catches each kind of defect.
fn official_sdks(venv: &Path) -> Result<()> {
    let python = venv.join("bin/python");
    run(
        "the SDK check catches its defects (xtask/sdk_check_test.py)",
        Command::new(&python).arg(root().join("xtask/sdk_check_test.py")),
    )?;
    run(
        "build hub for the SDK check",
        cargo().args(["build", "-p", "hub"]),
    )?;
    run(
        "official SDKs against the sandboxes (xtask/sdk_check.py: squareup, xero-python)",
        Command::new(&python)
            .arg(root().join("xtask/sdk_check.py"))
            .arg("--hub")
            .arg(root().join("target/debug/hub")),
    )
}

/// Adds a test run's counts to the totals (passed, failed, failed steps),
/// and its failure to the failed steps.
fn tally(
    (passed, failed_tests, failed): (&mut u64, &mut u64, &mut Vec<String>),
    what: &str,
    r: Result<(u64, u64, bool)>,
) {
    match r {
        Ok((p, f, ok)) => {
            *passed += p;
            *failed_tests += f;
            if !ok {
                failed.push(format!("{what} failed: {p} passed, {f} failed"));
            }
        }
        Err(e) => failed.push(format!("{what}: {e}")),
    }
}

/// Runs `cargo test`, echoing its output, and adds up its `test result:`
/// lines: (passed, failed, whether cargo succeeded).
fn run_tests(step: &str, cmd: &mut Command) -> Result<(u64, u64, bool)> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!("\n==> {step}");
    let start = Instant::now();
    let mut child = cmd
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{step}: could not start: {e}"))?;
    let (mut passed, mut failed) = (0u64, 0u64);
    if let Some(out) = child.stdout.take() {
        let mut stdout = std::io::stdout().lock();
        for line in BufReader::new(out)
            .lines()
            .map_while(std::result::Result::ok)
        {
            let _ = writeln!(stdout, "{line}");
            if let Some(rest) = line.strip_prefix("test result: ") {
                for part in rest.split(';') {
                    let mut words = part.split_whitespace().rev();
                    let (Some(label), Some(n)) = (words.next(), words.next()) else {
                        continue;
                    };
                    let n: u64 = n
                        .trim_start_matches(|c: char| !c.is_ascii_digit())
                        .parse()
                        .unwrap_or(0);
                    match label {
                        "passed" => passed += n,
                        "failed" => failed += n,
                        _ => {}
                    }
                }
            }
        }
    }
    let status = child.wait().map_err(|e| format!("{step}: {e}"))?;
    eprintln!(
        "==> {step}: {} in {:.1?}",
        if status.success() { "ok" } else { "FAILED" },
        start.elapsed()
    );
    Ok((passed, failed, status.success()))
}

fn moto_foreground() -> Result<()> {
    let venv = ensure_venv()?;
    let mut moto = start_moto(&venv)?;
    println!("HUB_TEST_AWS_ENDPOINT={}", moto.url);
    eprintln!("==> Ctrl-C to stop");
    moto.child.wait().map_err(|e| e.to_string())?;
    Ok(())
}

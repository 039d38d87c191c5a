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
//!   Then the function smoke tests (`smoke.rs`) and the secret-leak scan of
//!   every log the tests and the smoke stage captured (`leaks.rs`). The run
//!   counts ignored tests (`outcome.rs`) and fails on one outside
//!   [`RUN_WITH_IGNORED`].
//! - `package`: builds every function with cargo lambda (release, arm64) into
//!   `target/lambda/<name>/`, where the template points.
//! - `infra`: the template checks alone.
//! - `bench`: the performance figures (see `bench.rs`); `--peer-only`: the
//!   comparison with the Python peer alone (`peer.rs`).
//! - `moto`: starts the emulator in the foreground, for running single tests.
//! - `smoke`: the function smoke tests alone.
//! - `leak-scan <dir>...`: the leak scan alone, on a run's log folders.
//!
//! Arguments are read with clap: `cargo xtask <verb> --help` says what each
//! takes, and an argument it does not know is an error.

mod bench;
mod e2e;
mod infra;
mod leaks;
mod outcome;
mod peer;
mod runtime_api;
mod smoke;

use clap::{Parser, Subcommand};
use outcome::Outcome;

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

/// How long moto gets to answer on its port.
const MOTO_START_TIMEOUT: Duration = Duration::from_secs(60);

/// The only test binaries whose tests may be ignored in `cargo test
/// --workspace`: they need what xtask starts, and it runs them itself with
/// `--ignored` (the smoke stage, the end-to-end step), where each must run
/// at least one test and ignore none.
const RUN_WITH_IGNORED: &[&str] = &["lambda_smoke", "lambda_aws"];

/// Each must have left a non-empty log for the leak scan (file-name
/// prefixes; see `leaks.rs`): the `it` binary's own logs, the `hub`
/// processes of the CLI and chaos tests, the function binaries under the
/// smoke stage's `cargo lambda watch`.
const LOG_SOURCES: &[&str] = &["it-", "cli-", "chaos-", "watch.log"];

/// Project chores: `cargo xtask <verb>`.
#[derive(Debug, Parser)]
#[command(name = "xtask", bin_name = "cargo xtask")]
struct Cli {
    /// What to do.
    #[command(subcommand)]
    verb: Verb,
}

/// The verbs.
#[derive(Debug, Subcommand)]
enum Verb {
    /// fmt, clippy, template checks, every test (AWS emulator), function
    /// smoke tests, contract and SDK checks, the secret-leak scan.
    Test {
        /// Passed on to `cargo test --workspace` (after `--`, e.g.
        /// `cargo xtask test -- -p shared`; a test filter may come first).
        #[arg(trailing_var_arg = true, value_name = "CARGO TEST ARGS")]
        args: Vec<String>,
    },
    /// Cold starts, intake, the Python peer, transforms, pull, posting ->
    /// target/bench-figures/figures.json.
    Bench(bench::BenchArgs),
    /// Build every function (release, arm64, cargo lambda) into target/lambda/.
    Package,
    /// Template checks only: coverage, cfn-lint, the SAM-transformed
    /// template, checkov.
    Infra,
    /// The function smoke tests alone (cargo lambda watch) -> target/smoke/<n>.
    Smoke,
    /// The secret-leak scan alone, on a test run's log folders
    /// (target/test-logs/<n>, target/smoke/<n>).
    LeakScan {
        /// The log folders to scan.
        #[arg(required = true, value_name = "DIR")]
        dirs: Vec<String>,
    },
    /// Run the AWS emulator in the foreground (prints its URL).
    Moto,
}

fn main() -> ExitCode {
    // Help and unknown arguments end here: clap prints and exits (0 for
    // `--help`, 2 for an error).
    let cli = Cli::parse();
    let result = match cli.verb {
        Verb::Test { args } => test(&args),
        Verb::Moto => moto_foreground(),
        Verb::Package => infra::package(),
        Verb::Bench(args) => bench::bench(&args),
        Verb::LeakScan { dirs } => leak_scan(&dirs),
        Verb::Smoke => smoke_alone(),
        Verb::Infra => infra::check_coverage()
            .and_then(|()| infra::cfn_lint())
            .and_then(|()| infra::template_check())
            .and_then(|()| infra::checkov()),
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
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    ensure_venv_with(name, requirements, &python)
}

/// [`ensure_venv_named`] with the interpreter `python` making the venv.
fn ensure_venv_with(name: &str, requirements: &str, python: &str) -> Result<PathBuf> {
    let venv = root().join(name);
    let requirements = root().join(requirements);
    let wanted = std::fs::read_to_string(&requirements)
        .map_err(|e| format!("read {}: {e}", requirements.display()))?;
    let marker = venv.join(".installed-requirements");
    if std::fs::read_to_string(&marker).ok().as_deref() == Some(wanted.as_str()) {
        return Ok(venv);
    }
    run(
        &format!("create {name}"),
        Command::new(python).args(["-m", "venv"]).arg(&venv),
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
    // moto's server with each request handled atomically, as AWS handles
    // conditional writes (xtask/moto_serialized.py says why).
    start_moto_script(
        venv,
        &root().join("xtask/moto_serialized.py"),
        &root().join("target/moto.log"),
    )
}

/// The emulator as `script` serves it (moto_server's command line), logging
/// to `log_path`; ready when its port answers.
fn start_moto_script(venv: &Path, script: &Path, log_path: &Path) -> Result<Moto> {
    let port = free_port()?;
    if let Some(dir) = log_path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    }
    let log = std::fs::File::create(log_path)
        .map_err(|e| format!("create {}: {e}", log_path.display()))?;
    let err_log = log.try_clone().map_err(|e| e.to_string())?;
    let child = Command::new(venv.join("bin/python"))
        .arg(script)
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
        .args(["test", "--workspace", "--no-fail-fast"])
        .env("HUB_TEST_LOG_DIR", &log_dir)
        .env("HUB_SANDBOX_RECORD", &traffic);
    if !extra.is_empty() {
        test_cmd.args(extra.iter().skip_while(|a| *a == "--"));
    }
    match &moto {
        Some(m) => test_cmd.env("HUB_TEST_AWS_ENDPOINT", &m.url),
        None => test_cmd.env_remove("HUB_TEST_AWS_ENDPOINT"),
    };
    let mut counts = Outcome::default();
    tally(
        (&mut counts, &mut failed),
        "cargo test --workspace",
        run_tests("cargo test --workspace", "cargo test", &mut test_cmd).map(|(o, ok)| {
            let mut problems = o.failures(ok);
            problems.extend(o.refuse_ignored(RUN_WITH_IGNORED).err());
            (o, problems)
        }),
    );
    // The Lambda path on the stack's own resources needs the emulator.
    tally(
        (&mut counts, &mut failed),
        "end-to-end Lambda checks",
        match &moto {
            Some(m) => e2e::e2e(&venv, &m.url),
            None => Err("no AWS emulator".into()),
        },
    );
    drop(moto);
    step(&mut failed, contracts(&venv, &traffic));
    step(&mut failed, official_sdks(&venv));
    step(&mut failed, console_suite(&venv));
    // The function binaries' logs (`watch.log`) and the smoke test's
    // secrets land here, for the leak scan too.
    let smoke_dir = root().join(format!("target/smoke/{}", stamp()));
    tally(
        (&mut counts, &mut failed),
        "function smoke tests",
        smoke::smoke(&venv, &smoke_dir),
    );
    eprintln!("\n==> secret-leak scan of the tests' logs");
    match leaks::scan(&[&log_dir, &smoke_dir]).and_then(|scan| scan.verdict(LOG_SOURCES)) {
        Ok(summary) => eprintln!("==> secret-leak scan: ok: {summary}"),
        Err(e) => failed.push(format!(
            "secret-leak scan of {} and {}:\n  {e}{}",
            log_dir.display(),
            smoke_dir.display(),
            if extra.is_empty() {
                ""
            } else {
                "\n  (this run was given test arguments: a filter that leaves out the canary or a source fails the scan)"
            }
        )),
    }
    eprintln!("\n==> cargo xtask test finished in {:.1?}", total.elapsed());
    // One closing line for every test binary together, and every test that
    // did not run.
    println!(
        "xtask: {} passed, {} failed, {} ignored",
        counts.passed, counts.failed, counts.ignored
    );
    for t in &counts.ignored_tests {
        println!(
            "xtask: ignored: {}: {}{}",
            t.binary,
            t.test,
            if RUN_WITH_IGNORED.contains(&t.binary.as_str()) {
                " (xtask runs it with --ignored)"
            } else {
                ""
            }
        );
    }
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

/// Debian's Chromium and its driver, for the console's browser tests:
/// installed with apt when missing (as root, or through `sudo -n`).
fn ensure_chromium() -> Result<()> {
    let wanted = ["/usr/bin/chromium", "/usr/bin/chromedriver"];
    if wanted.iter().all(|p| Path::new(p).exists()) {
        return Ok(());
    }
    let root = Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let apt = |args: &[&str]| {
        let mut c = if root {
            Command::new("apt-get")
        } else {
            let mut c = Command::new("sudo");
            c.args(["-n", "apt-get"]);
            c
        };
        c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
        c
    };
    run("apt-get update", &mut apt(&["update", "-qq"]))?;
    run(
        "install chromium and chromium-driver (Debian)",
        &mut apt(&[
            "install",
            "-y",
            "-qq",
            "--no-install-recommends",
            "chromium",
            "chromium-driver",
        ]),
    )?;
    match wanted.iter().find(|p| !Path::new(p).exists()) {
        Some(p) => Err(format!("{p} is still missing after installing chromium")),
        None => Ok(()),
    }
}

/// The console in a real browser (`xtask/console_test.py`): two
/// `hub demo --console` runs driven through Debian's Chromium; screenshots
/// in `target/console-screens/`.
fn console_suite(venv: &Path) -> Result<()> {
    ensure_chromium()?;
    run(
        "build hub for the console's browser tests",
        cargo().args(["build", "-p", "hub"]),
    )?;
    run(
        "the console in Chromium (xtask/console_test.py)",
        Command::new(venv.join("bin/python"))
            .arg(root().join("xtask/console_test.py"))
            .arg("--hub")
            .arg(root().join("target/debug/hub")),
    )
}

/// Adds a test step's counts to the totals, and each of its problems to
/// the failed steps.
fn tally(
    (counts, failed): (&mut Outcome, &mut Vec<String>),
    what: &str,
    r: Result<(Outcome, Vec<String>)>,
) {
    match r {
        Ok((outcome, problems)) => {
            counts.add(&outcome);
            failed.extend(problems.into_iter().map(|p| format!("{what}: {p}")));
        }
        Err(e) => failed.push(format!("{what}: {e}")),
    }
}

/// How long a test command's output may stay open after it exited (a
/// process it started and left running holds it).
const OUTPUT_GRACE: Duration = Duration::from_secs(30);

/// Runs a test command, echoing its output, and reads that into an
/// [`Outcome`] (`binary` names the binary until a `Running` line names
/// another): the outcome, and whether the command succeeded. Its stdout and
/// stderr go through one pipe, so cargo's `Running` lines (stderr) stay in
/// order with the tests' own lines (stdout).
fn run_tests(step: &str, binary: &str, cmd: &mut Command) -> Result<(Outcome, bool)> {
    read_tests(step, binary, cmd, true)
}

/// [`run_tests`], echoing the output only if `echo` (a unit test of the
/// reading must not print lines that read as its own results).
fn read_tests(step: &str, binary: &str, cmd: &mut Command, echo: bool) -> Result<(Outcome, bool)> {
    use std::io::{BufRead, BufReader, Write};
    eprintln!("\n==> {step}");
    let start = Instant::now();
    let (reader, writer) = std::io::pipe().map_err(|e| format!("{step}: make a pipe: {e}"))?;
    let writer_too = writer
        .try_clone()
        .map_err(|e| format!("{step}: make a pipe: {e}"))?;
    let spawned = cmd.stdout(writer_too).stderr(writer).spawn();
    // The command holds its copies of the write end until it is given
    // others: without this the output would never end.
    cmd.stdout(Stdio::null()).stderr(Stdio::null());
    let mut child = spawned.map_err(|e| format!("{step}: could not start: {e}"))?;
    let name = binary.to_string();
    let reading = std::thread::spawn(move || {
        let mut outcome = Outcome::new(&name);
        let mut out = BufReader::new(reader);
        let mut buf = Vec::new();
        // Bytes, not `lines()`: one line that is not UTF-8 must not end the
        // reading (the child would then block on a full pipe).
        while matches!(out.read_until(b'\n', &mut buf), Ok(n) if n > 0) {
            let text = String::from_utf8_lossy(&buf);
            let line = text.trim_end_matches(['\n', '\r']);
            if echo {
                let _ = writeln!(std::io::stdout().lock(), "{line}");
            }
            outcome.line(line);
            buf.clear();
        }
        outcome
    });
    let status = child.wait().map_err(|e| format!("{step}: {e}"))?;
    let exited = Instant::now();
    while !reading.is_finished() && exited.elapsed() < OUTPUT_GRACE {
        std::thread::sleep(Duration::from_millis(50));
    }
    if !reading.is_finished() {
        return Err(format!(
            "{step}: its output was still open {OUTPUT_GRACE:?} after it exited (a process it started holds it)"
        ));
    }
    let outcome = reading
        .join()
        .map_err(|_| format!("{step}: reading its output failed"))?;
    eprintln!(
        "==> {step}: {} in {:.1?} ({} passed, {} failed, {} ignored)",
        if status.success() { "ok" } else { "FAILED" },
        start.elapsed(),
        outcome.passed,
        outcome.failed,
        outcome.ignored
    );
    Ok((outcome, status.success()))
}

/// The smoke stage alone, as `test` runs it.
fn smoke_alone() -> Result<()> {
    let venv = ensure_venv()?;
    let dir = root().join(format!("target/smoke/{}", stamp()));
    let (outcome, problems) = smoke::smoke(&venv, &dir)?;
    println!(
        "xtask: {} passed, {} failed, {} ignored (logs in {})",
        outcome.passed,
        outcome.failed,
        outcome.ignored,
        dir.display()
    );
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems.join("\n  "))
    }
}

/// The leak scan on the folders given, as `test` runs it but requiring no
/// source (a partial run leaves some out); the canary is required still.
fn leak_scan(dirs: &[String]) -> Result<()> {
    if dirs.is_empty() {
        return Err("leak-scan: name the log folders to scan".into());
    }
    let paths: Vec<&Path> = dirs.iter().map(Path::new).collect();
    let summary = leaks::scan(&paths)?.verdict(&[])?;
    eprintln!("==> secret-leak scan: ok: {summary}");
    Ok(())
}

fn moto_foreground() -> Result<()> {
    let venv = ensure_venv()?;
    let mut moto = start_moto(&venv)?;
    println!("HUB_TEST_AWS_ENDPOINT={}", moto.url);
    eprintln!("==> Ctrl-C to stop");
    moto.child.wait().map_err(|e| e.to_string())?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> std::result::Result<Verb, clap::Error> {
        Cli::try_parse_from(std::iter::once("xtask").chain(args.iter().copied())).map(|c| c.verb)
    }

    #[test]
    fn bench_takes_its_flags() {
        match parse(&["bench", "--quick"]).unwrap() {
            Verb::Bench(b) => assert!(b.quick && !b.peer_only && !b.profile_hub),
            v => panic!("{v:?}"),
        }
        match parse(&["bench", "--peer-only", "--profile-hub"]).unwrap() {
            Verb::Bench(b) => assert!(!b.quick && b.peer_only && b.profile_hub),
            v => panic!("{v:?}"),
        }
        match parse(&["bench"]).unwrap() {
            Verb::Bench(b) => assert!(!b.quick && !b.peer_only),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn unknown_flags_and_help_stop_before_any_work() {
        use clap::error::ErrorKind;
        let e = parse(&["bench", "--bogus"]).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::UnknownArgument);
        assert_eq!(e.exit_code(), 2);
        assert_eq!(
            parse(&["bench", "--profile-hub"]).unwrap_err().kind(),
            ErrorKind::MissingRequiredArgument,
            "--profile-hub needs --peer-only"
        );
        assert_eq!(
            parse(&["test", "--bogus"]).unwrap_err().kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(
            parse(&["bogus"]).unwrap_err().kind(),
            ErrorKind::InvalidSubcommand
        );
        assert!(parse(&[]).is_err(), "a verb is required");
        assert!(parse(&["leak-scan"]).is_err(), "leak-scan needs a folder");
        for verb in [
            "test",
            "bench",
            "package",
            "infra",
            "smoke",
            "leak-scan",
            "moto",
        ] {
            let e = parse(&[verb, "--help"]).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::DisplayHelp, "{verb} --help");
            assert_eq!(e.exit_code(), 0, "{verb} --help");
        }
    }

    #[test]
    fn test_passes_cargo_test_arguments_on() {
        let args = |v: Verb| match v {
            Verb::Test { args } => args,
            v => panic!("{v:?}"),
        };
        assert!(args(parse(&["test"]).unwrap()).is_empty());
        assert_eq!(
            args(parse(&["test", "--", "-p", "shared", "--", "--nocapture"]).unwrap()),
            ["-p", "shared", "--", "--nocapture"]
        );
        assert_eq!(
            args(parse(&["test", "webhook", "--", "--nocapture"]).unwrap()),
            ["webhook", "--", "--nocapture"]
        );
        match parse(&["leak-scan", "a", "b"]).unwrap() {
            Verb::LeakScan { dirs } => assert_eq!(dirs, ["a", "b"]),
            v => panic!("{v:?}"),
        }
    }

    #[test]
    fn run_tests_reads_stderr_and_stdout_in_order_and_past_bad_bytes() {
        // Cargo's `Running` lines go to stderr, the tests' lines to stdout.
        let script = "\
            echo '     Running tests/a.rs (target/debug/deps/a-0123abcd)' >&2
            echo 'test t ... ignored'
            echo 'test result: ok. 1 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s'
            printf 'not UTF-8: \\377\\n'
            echo '     Running tests/b.rs (target/debug/deps/b-0123abcd)' >&2
            echo 'test u ... ignored, why'
            echo 'test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s'
            exit 3";
        let (o, ok) =
            read_tests("sh", "sh", Command::new("sh").args(["-c", script]), false).unwrap();
        assert!(!ok, "the exit status is kept");
        assert_eq!((o.passed, o.failed, o.ignored), (3, 0, 2));
        let binaries: Vec<&str> = o.ignored_tests.iter().map(|t| t.binary.as_str()).collect();
        assert_eq!(binaries, ["a", "b"]);
        o.refuse_ignored(&["a", "b"]).unwrap();
        assert!(
            o.refuse_ignored(&["a"])
                .unwrap_err()
                .contains("b: 1 ignored (u)")
        );
    }
}

//! The Lambda path end to end on the stack's own resources, and the checks
//! that hang on it:
//!
//! 1. The transformed template's DynamoDB tables and SQS queues are created
//!    in the AWS emulator through its CloudFormation (`xtask/stack.py
//!    create`), so the functions run against what the stack would make.
//! 2. Drift: `hub aws bootstrap` makes the same resources from
//!    `shared/src/adapters/aws/schema.rs` (what the conformance suites run
//!    against); `stack.py drift` compares the two attribute by attribute.
//! 3. Every function binary under `cargo lambda watch` with the stack's
//!    environment, the provider sandboxes (`hub sandboxes`) and
//!    `HUB_AWS_CALL_LOG`; the ignored test `hub-tests/lambda_aws` plays API
//!    Gateway, the event source mappings and the schedules.
//! 4. IAM: every call the functions made is checked against their policies
//!    in the transformed template (`stack.py iam`): a call no policy allows
//!    fails the run; granted actions no call used are listed.
//! 5. `xtask/stack_test.py`: each of these checks catches the defect it
//!    exists for (a permission taken away, a table drifted, an unknown
//!    caller).

use crate::outcome::Outcome;
use crate::smoke::{build_binaries, start_watch, test_binary};
use crate::{Result, root, run, run_tests, stamp};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The functions the end-to-end test drives; each must have made AWS calls.
const DRIVEN: &str = "webhook-toast,process-events,push,pull-toast,connect,intake,health-monitor";

/// A child process killed when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn aws_env(moto: &str) -> Vec<(String, String)> {
    [
        ("AWS_ENDPOINT_URL", moto),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect()
}

fn read_json(path: &Path) -> Result<serde_json::Value> {
    let text =
        std::fs::read_to_string(path).map_err(|e| format!("read {}: {e}", path.display()))?;
    serde_json::from_str(&text).map_err(|e| format!("{}: {e}", path.display()))
}

/// Runs the four steps: the test's outcome and what went wrong in it.
pub fn e2e(venv: &Path, moto: &str) -> Result<(Outcome, Vec<String>)> {
    let dir = root().join(format!("target/e2e/{}", stamp()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    let python = venv.join("bin/python");
    let stack = root().join("xtask/stack.py");
    let env = aws_env(moto);

    // 1. The stack's tables and queues.
    run(
        "the stack's tables and queues in the emulator (CloudFormation, after the SAM transform)",
        Command::new(&python)
            .arg(&stack)
            .args(["create", "--endpoint", moto, "--out"])
            .arg(&dir)
            .envs(env.iter().map(|(k, v)| (k, v))),
    )?;

    // 2. Drift against schema.rs.
    build_binaries()?;
    let hub = root().join("target/debug/hub");
    let out = Command::new(&hub)
        .args(["aws", "bootstrap", "--prefix", &format!("drift{}", stamp())])
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .map_err(|e| format!("run hub aws bootstrap: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "hub aws bootstrap failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let bootstrap = dir.join("bootstrap.env");
    std::fs::write(&bootstrap, &out.stdout).map_err(|e| e.to_string())?;
    let drift = run(
        "the template's tables and queues against schema.rs (drift)",
        Command::new(&python)
            .arg(&stack)
            .args(["drift", "--endpoint", moto, "--resources"])
            .arg(dir.join("resources.json"))
            .arg("--env")
            .arg(dir.join("function-env.json"))
            .arg("--bootstrap")
            .arg(&bootstrap)
            .envs(env.iter().map(|(k, v)| (k, v))),
    );

    // 3. The sandboxes, the functions, the test.
    let sandboxes_file = dir.join("sandboxes.json");
    let sandboxes_log =
        std::fs::File::create(dir.join("sandboxes.log")).map_err(|e| e.to_string())?;
    let _sandboxes = Killed(
        Command::new(&hub)
            .args(["sandboxes", "--json", "--out"])
            .arg(&sandboxes_file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(sandboxes_log)
            .spawn()
            .map_err(|e| format!("start hub sandboxes: {e}"))?,
    );
    let start = Instant::now();
    let sandboxes = loop {
        if let Ok(v) = read_json(&sandboxes_file) {
            break v;
        }
        if start.elapsed() > Duration::from_secs(60) {
            return Err(format!(
                "hub sandboxes wrote no {} within 60 s",
                sandboxes_file.display()
            ));
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let function_env = read_json(&dir.join("function-env.json"))?;
    let mut watch_env = env.clone();
    for (k, v) in function_env.as_object().into_iter().flatten() {
        watch_env.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
    }
    for (k, v) in sandboxes["settings"].as_object().into_iter().flatten() {
        watch_env.push((k.clone(), v.as_str().unwrap_or_default().to_string()));
    }
    let calls = dir.join("calls.jsonl");
    watch_env.push(("HUB_AWS_CALL_LOG".into(), calls.display().to_string()));
    watch_env.push(("HUB_LOG_FORMAT".into(), "json".into()));
    watch_env.push((
        "HUB_SQUARE_NOTIFICATION_URL".into(),
        "https://abc123.execute-api.us-east-1.amazonaws.com/webhooks/square".into(),
    ));
    // The embedded state folder is never touched: the backend is AWS.
    watch_env.push(("HUB_BACKEND".into(), "aws".into()));
    let binary = test_binary("lambda_aws")?;
    let log_path = dir.join("watch.log");
    let watch = start_watch(venv, &watch_env, &log_path, false)?;
    let mut test = Command::new(&binary);
    test.current_dir(root().join("tests"))
        .args(["--ignored", "--test-threads", "1"])
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("HUB_E2E_RUNTIME", &watch.url)
        .env("HUB_E2E_SANDBOXES", &sandboxes_file)
        .env("HUB_E2E_ENV", dir.join("function-env.json"))
        .env_remove("HUB_AWS_CALL_LOG");
    let tested = run_tests(
        "the Lambda path on the stack's resources (cargo lambda watch, AWS emulator, sandboxes)",
        "lambda_aws",
        &mut test,
    );
    drop(watch);
    let (outcome, ok) = tested?;
    let mut tested_problems = outcome.failures(ok);
    tested_problems.extend(outcome.refuse_empty().err());
    if !ok {
        eprintln!(
            "==> the end-to-end test failed; the emulator's log is {}",
            log_path.display()
        );
    }

    // 4. IAM, both directions.
    let iam = run(
        "every AWS call the functions made, against their policies in the transformed template",
        Command::new(&python)
            .arg(&stack)
            .args(["iam", "--calls"])
            .arg(&calls)
            .arg("--resources")
            .arg(dir.join("resources.json"))
            .arg("--template")
            .arg(dir.join("transformed.json"))
            .args(["--expect-callers", DRIVEN]),
    );
    // 5. The checks catch what they exist for: a missing permission, a
    // drifted table, an unknown caller (mutated templates and call logs).
    let self_test = run(
        "the IAM and drift checks catch their defects (xtask/stack_test.py)",
        Command::new(&python)
            .arg(root().join("xtask/stack_test.py"))
            .args(["--endpoint", moto])
            .env("HUB_BIN", &hub)
            .envs(env.iter().map(|(k, v)| (k, v))),
    );
    let mut problems = Vec::new();
    if let Err(e) = self_test {
        problems.push(e);
    }
    if let Err(e) = drift {
        problems.push(e);
    }
    if let Err(e) = iam {
        problems.push(e);
    }
    if !problems.is_empty() {
        return Err(problems.join("; "));
    }
    Ok((outcome, tested_problems))
}

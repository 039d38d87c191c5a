//! The deployable stack: checks of `infra/template.yaml` and the packaging
//! of every function with cargo lambda.

use crate::{Result, cargo, ensure_venv, ensure_venv_named, root, run};
use std::collections::BTreeSet;
use std::process::Command;
use std::time::Instant;

/// The crates under `functions/` that build a Lambda binary (a `src/main.rs`);
/// `hub-lambda` is their shared library and has none.
pub fn function_crates() -> Result<BTreeSet<String>> {
    let dir = root().join("functions");
    let mut out = BTreeSet::new();
    for entry in std::fs::read_dir(&dir).map_err(|e| format!("read {}: {e}", dir.display()))? {
        let path = entry.map_err(|e| e.to_string())?.path();
        if path.join("src/main.rs").is_file()
            && let Some(name) = path.file_name().and_then(|n| n.to_str())
        {
            out.insert(name.to_string());
        }
    }
    Ok(out)
}

/// Crates for local runs only, which no deployed function may carry.
pub const LOCAL_ONLY: [&str; 4] = ["rusqlite", "libsqlite3-sys", "hub", "hub-sandboxes"];

/// Every crate the deployed functions are built from, resolved as `package`
/// builds them (all the functions in one build, features unified among them
/// only): `cargo tree` over the normal and build dependencies.
pub fn deployed_crates() -> Result<BTreeSet<String>> {
    let mut cmd = cargo();
    cmd.current_dir(root()).args([
        "tree",
        "--offline",
        "-e",
        "normal,build",
        "--prefix",
        "none",
        "--format",
        "{p}",
    ]);
    for c in function_crates()? {
        cmd.args(["-p", &c]);
    }
    let out = cmd.output().map_err(|e| format!("cargo tree: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo tree failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .map(String::from)
        .collect())
}

/// The functions the template deploys: every `CodeUri: ../target/lambda/<name>/`.
pub fn template_functions(template: &str) -> BTreeSet<String> {
    template
        .lines()
        .filter_map(|l| l.trim().strip_prefix("CodeUri:"))
        .filter_map(|v| {
            v.trim()
                .strip_prefix("../target/lambda/")
                .map(|rest| rest.trim_end_matches('/').to_string())
        })
        .collect()
}

/// Every function crate has a resource in the template, and every resource
/// a crate.
pub fn check_coverage() -> Result<()> {
    eprintln!("\n==> template covers every function crate");
    let path = root().join("infra/template.yaml");
    let template =
        std::fs::read_to_string(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
    let crates = function_crates()?;
    let deployed = template_functions(&template);
    let missing: Vec<_> = crates.difference(&deployed).collect();
    let orphans: Vec<_> = deployed.difference(&crates).collect();
    if missing.is_empty() && orphans.is_empty() {
        eprintln!(
            "==> template covers every function crate: ok ({} functions)",
            crates.len()
        );
        return Ok(());
    }
    Err(format!(
        "template and functions/ disagree: crates without a resource {missing:?}, resources without a crate {orphans:?}"
    ))
}

/// cfn-lint (with the SAM transform) on the template: zero errors.
pub fn cfn_lint() -> Result<()> {
    let venv = ensure_venv()?;
    run(
        "cfn-lint infra/template.yaml",
        Command::new(venv.join("bin/cfn-lint"))
            .current_dir(root())
            .arg("infra/template.yaml"),
    )
}

/// The template as AWS reads it: `xtask/template_check.py` runs the SAM
/// transform (aws-sam-translator) and checks the CloudFormation it makes for
/// what cfn-lint, reading the SAM form, cannot see: dependency cycles, queue
/// visibility against each consumer's timeout, alarm topics CloudWatch can
/// publish to, which routes are public, log groups, NoEcho credentials,
/// schedule inputs, role scope. Then its tests: the template with each defect
/// put back fails the check that exists for it.
pub fn template_check() -> Result<()> {
    let venv = ensure_venv()?;
    let python = venv.join("bin/python");
    let script = |args: &[&str]| {
        let mut c = Command::new(&python);
        // No __pycache__ left in xtask/.
        c.current_dir(root()).arg("-B").args(args);
        c
    };
    let checked = run(
        "template as AWS reads it (SAM transform, xtask/template_check.py)",
        &mut script(&["xtask/template_check.py", "infra/template.yaml"]),
    );
    let tested = run(
        "template checks catch their defects (xtask/template_check_test.py)",
        &mut script(&["xtask/template_check_test.py"]),
    );
    checked.and(tested)
}

/// checkov on the template: zero failed checks (skips carry their reason in
/// the resource's metadata).
pub fn checkov() -> Result<()> {
    let venv = ensure_venv_named(".venv-infra", "xtask/python-infra-requirements.txt")?;
    run(
        "checkov infra/template.yaml",
        Command::new(venv.join("bin/checkov"))
            .current_dir(root())
            // Offline: no mapping download, no vendor calls.
            .env("BC_SKIP_MAPPING", "TRUE")
            .env("CHECKOV_RUN_SCA_PACKAGE_SCAN_V2", "false")
            .args([
                "--file",
                "infra/template.yaml",
                "--framework",
                "cloudformation",
                "--skip-download",
                "--compact",
                "--quiet",
            ]),
    )
}

/// Builds every function once (release, arm64, cargo lambda) into
/// `target/lambda/<name>/bootstrap`, where the template's `CodeUri`s point,
/// and reports each stripped binary's size.
pub fn package() -> Result<()> {
    let venv = ensure_venv()?;
    let start = Instant::now();
    // cargo lambda adds the target itself; say clearly if it cannot.
    let rustup = Command::new("rustup")
        .args(["target", "add", "aarch64-unknown-linux-gnu"])
        .status();
    if !matches!(rustup, Ok(s) if s.success()) {
        eprintln!(
            "xtask: `rustup target add aarch64-unknown-linux-gnu` failed; cargo lambda will try itself"
        );
    }
    let crates = function_crates()?;
    // A deployed function carries the AWS backend only.
    let deployed = deployed_crates()?;
    if let Some(local) = LOCAL_ONLY.into_iter().find(|c| deployed.contains(*c)) {
        return Err(format!(
            "the functions would be built with {local}, which is for local runs only \
             (is the `embedded` feature on for them?)"
        ));
    }
    let path = format!(
        "{}:{}",
        venv.join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut cmd = cargo();
    cmd.env("PATH", &path)
        .args(["lambda", "build", "--release", "--arm64"]);
    for c in &crates {
        cmd.args(["-p", c]);
    }
    run(
        "cargo lambda build --release --arm64 (every function)",
        &mut cmd,
    )?;
    let mut total = 0u64;
    println!("{:<20} {:>12}", "FUNCTION", "BYTES");
    for c in &crates {
        let bin = root().join(format!("target/lambda/{c}/bootstrap"));
        let size = std::fs::metadata(&bin)
            .map_err(|e| format!("{}: {e} (was it built?)", bin.display()))?
            .len();
        total += size;
        println!("{c:<20} {size:>12} ({:.1} MiB)", mib(size));
    }
    println!(
        "{} functions, {:.1} MiB in all, packaged in {:.1?}",
        crates.len(),
        mib(total),
        start.elapsed()
    );
    Ok(())
}

#[allow(clippy::float_arithmetic)] // a size for people to read
fn mib(bytes: u64) -> f64 {
    bytes as f64 / 1_048_576.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_functions_are_read_from_code_uris() {
        let t = "  A:\n    Properties:\n      CodeUri: ../target/lambda/push/\n  B:\n      CodeUri: ../target/lambda/webhook-toast/\n      Other: x\n";
        let got = template_functions(t);
        assert_eq!(
            got,
            ["push", "webhook-toast"]
                .into_iter()
                .map(String::from)
                .collect()
        );
    }

    #[test]
    fn the_deployed_functions_carry_no_embedded_store() {
        let crates = deployed_crates().unwrap();
        assert!(crates.contains("shared"), "{crates:?}");
        assert!(crates.contains("aws-sdk-dynamodb"), "{crates:?}");
        for local_only in LOCAL_ONLY {
            assert!(
                !crates.contains(local_only),
                "a deployed function pulls in {local_only}"
            );
        }
    }

    #[test]
    fn the_template_and_the_function_crates_agree() {
        check_coverage().unwrap();
    }
}

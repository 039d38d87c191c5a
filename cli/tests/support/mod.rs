//! What `cli.rs` and `chaos.rs` share: running `hub` with its logs captured
//! for the secret-leak scan (`tests/tests/it/leaks.rs` says how the scan
//! works). With `HUB_TEST_LOG_DIR` set (`cargo xtask test` sets it), each
//! `hub` process logs at debug level (`RUST_LOG`) and its stderr ends in
//! `<dir>/<binary>-<pid>.hub.log`; the secrets it was given (`--secret`, the
//! input of `hub secret set`) or keeps in its data folder
//! (`<HUB_DATA_DIR or --data-dir>/secrets.json`: its own and those it
//! rotated) are registered. Without it, `hub` runs as it always did.

// Each test binary uses a part of it.
#![allow(dead_code)]

#[path = "../../../tests/tests/it/leaks.rs"]
pub mod leaks;

use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Output};

/// The data folder `cmd` runs on: `--data-dir`, else `HUB_DATA_DIR`.
fn data_dir(cmd: &Command) -> Option<PathBuf> {
    let args: Vec<_> = cmd.get_args().collect();
    args.windows(2)
        .find(|w| w[0] == "--data-dir")
        .map(|w| PathBuf::from(w[1]))
        .or_else(|| {
            cmd.get_envs()
                .find(|(k, _)| *k == "HUB_DATA_DIR")
                .and_then(|(_, v)| v)
                .map(PathBuf::from)
        })
}

/// Registers the secrets `cmd` was given (with `stdin`) and keeps.
fn register(cmd: &Command, stdin: Option<&str>) {
    let args: Vec<String> = cmd
        .get_args()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    for w in args.windows(2) {
        if w[0] == "--secret" {
            leaks::register_secret(&w[1]);
        }
    }
    if let Some(input) = stdin
        && args.iter().any(|a| a == "secret")
    {
        leaks::register_secret(input);
    }
    if let Some(dir) = data_dir(cmd) {
        leaks::register_secrets_file(&dir.join("secrets.json"));
    }
}

/// Makes `cmd` (a `hub` command) log at debug level when capturing.
pub fn capture(cmd: &mut Command) -> &mut Command {
    if leaks::capturing() {
        cmd.env("RUST_LOG", leaks::SUBPROCESS_FILTER);
    }
    cmd
}

/// After `cmd` (prepared with [`capture`]) ran on `stdin`: its stderr into
/// the log, its secrets registered.
pub fn record(cmd: &Command, stdin: Option<&str>, out: &Output) {
    if let Some(mut log) = leaks::hub_log() {
        let _ = log.write_all(&out.stderr);
    }
    register(cmd, stdin);
}

/// `cmd.output()` (a `hub` command), captured.
pub fn output(cmd: &mut Command) -> Output {
    capture(cmd);
    let out = cmd.output().expect("run hub");
    record(cmd, None, &out);
    out
}

/// Prepares a `hub` command whose stderr the test reads itself (the chaos
/// test's): when capturing, it logs at debug level, and the secrets its data
/// folder holds now (before it runs) are registered. Hand each line it
/// writes to [`log_line`], or its output to [`record`].
pub fn prepare(cmd: &mut Command) -> &mut Command {
    capture(cmd);
    register(cmd, None);
    cmd
}

/// One line of a `hub` process's stderr, into the log when capturing.
pub fn log_line(line: &str) {
    if let Some(mut log) = leaks::hub_log() {
        let _ = log.write_all(format!("{line}\n").as_bytes());
    }
}

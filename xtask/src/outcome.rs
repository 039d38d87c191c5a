//! What a test run printed, read line by line as it runs: libtest's `test
//! result:` lines added up, per test binary (cargo's `Running` and
//! `Doc-tests` lines name the binary the lines after them come from), and
//! each test reported ignored. Then the rules a run must meet: no test is
//! ignored outside the binaries xtask runs itself with `--ignored`, and such
//! a binary ran something and ignored nothing.

use crate::Result;
use std::collections::BTreeMap;
use std::path::Path;

/// A test reported ignored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ignored {
    pub binary: String,
    pub test: String,
}

/// The counts of one test run, or of several added up.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub passed: u64,
    pub failed: u64,
    pub ignored: u64,
    /// Ignored tests per binary, as its `test result:` lines count them.
    pub ignored_by_binary: BTreeMap<String, u64>,
    /// Each test reported ignored.
    pub ignored_tests: Vec<Ignored>,
    /// The binary the lines being read come from.
    binary: String,
}

/// The binary's name in the tail of cargo's `Running` line:
/// `unittests src/lib.rs (target/debug/deps/shared-0123abcd)` is `shared`.
fn binary_name(running: &str) -> Option<String> {
    let path = running.rsplit_once('(')?.1.strip_suffix(')')?;
    let file = Path::new(path).file_name()?.to_str()?;
    let (name, hash) = file.rsplit_once('-')?;
    (!hash.is_empty() && hash.chars().all(|c| c.is_ascii_hexdigit())).then(|| name.to_string())
}

impl Outcome {
    /// Reading the output of `binary`, until a `Running` line names another
    /// (a test binary run directly prints none).
    pub fn new(binary: &str) -> Self {
        Outcome {
            binary: binary.to_string(),
            ..Outcome::default()
        }
    }

    /// Reads one line of output.
    pub fn line(&mut self, line: &str) {
        // Cargo right-aligns its verbs in twelve columns.
        if let Some(rest) = line.strip_prefix("     Running ") {
            if let Some(name) = binary_name(rest) {
                self.binary = name;
            }
        } else if let Some(rest) = line.strip_prefix("   Doc-tests ") {
            self.binary = format!("doc-tests {}", rest.trim());
        } else if let Some(rest) = line.strip_prefix("test result: ") {
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
                    "passed" => self.passed += n,
                    "failed" => self.failed += n,
                    "ignored" if n > 0 => {
                        self.ignored += n;
                        *self
                            .ignored_by_binary
                            .entry(self.binary.clone())
                            .or_default() += n;
                    }
                    _ => {}
                }
            }
        } else if let Some((name, status)) = line
            .strip_prefix("test ")
            .and_then(|rest| rest.rsplit_once(" ... "))
            && (status == "ignored" || status.starts_with("ignored, "))
        {
            self.ignored_tests.push(Ignored {
                binary: self.binary.clone(),
                test: name.to_string(),
            });
        }
    }

    /// Adds `other`'s counts to these.
    pub fn add(&mut self, other: &Outcome) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.ignored += other.ignored;
        for (binary, n) in &other.ignored_by_binary {
            *self.ignored_by_binary.entry(binary.clone()).or_default() += n;
        }
        self.ignored_tests
            .extend(other.ignored_tests.iter().cloned());
    }

    /// What went wrong in a run whose process exited `ok`, if anything.
    pub fn failures(&self, ok: bool) -> Vec<String> {
        if ok {
            Vec::new()
        } else {
            vec![format!(
                "failed: {} passed, {} failed",
                self.passed, self.failed
            )]
        }
    }

    /// Refuses a test ignored in any binary but `allowed` (those xtask runs
    /// itself with `--ignored`): an ignored test would vanish from a green
    /// run.
    pub fn refuse_ignored(&self, allowed: &[&str]) -> Result<()> {
        let outside: Vec<String> = self
            .ignored_by_binary
            .iter()
            .filter(|(binary, n)| **n > 0 && !allowed.contains(&binary.as_str()))
            .map(|(binary, n)| {
                let names: Vec<&str> = self
                    .ignored_tests
                    .iter()
                    .filter(|t| &t.binary == binary)
                    .map(|t| t.test.as_str())
                    .collect();
                format!("{binary}: {n} ignored ({})", names.join(", "))
            })
            .collect();
        if outside.is_empty() {
            Ok(())
        } else {
            Err(format!(
                "ignored tests (only {} may hold them; xtask runs those itself): {}",
                allowed.join(", "),
                outside.join("; ")
            ))
        }
    }

    /// Refuses a run of a binary of ignored tests (run with `--ignored`) that
    /// ran none, or left any ignored.
    pub fn refuse_empty(&self) -> Result<()> {
        if self.passed + self.failed == 0 {
            Err("no test ran (0 passed, 0 failed)".into())
        } else if self.ignored > 0 {
            Err(format!("{} test(s) ignored", self.ignored))
        } else {
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(binary: &str, text: &str) -> Outcome {
        let mut o = Outcome::new(binary);
        for line in text.lines() {
            o.line(line);
        }
        o
    }

    /// Cargo's and libtest's lines, as `cargo test --workspace` prints them.
    const WORKSPACE: &str = "\
   Compiling hub-tests v0.1.0 (/work/main/tests)
     Running unittests src/lib.rs (target/debug/deps/shared-0a1b2c3d4e5f6789)

running 3 tests
test a ... ok
test b ... ignored
test c ... ok

test result: ok. 2 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.01s

     Running tests/lambda_smoke.rs (target/debug/deps/lambda_smoke-00ff00ff00ff00ff)

running 1 test
test every_function_binary_handles_its_sample_event ... ignored, needs cargo lambda's runtime emulator

test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s

     Running tests/it/main.rs (/abs/target/debug/deps/it-1234abcd1234abcd)

running 2 tests
test conformance::x ... FAILED
test tokens::y ... ok

test result: FAILED. 1 passed; 1 failed; 0 ignored; 0 measured; 0 filtered out; finished in 1.00s

   Doc-tests shared

running 1 test
test shared/src/lib.rs - (line 3) ... ignored

test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
";

    #[test]
    fn ignored_tests_are_counted_with_their_binary() {
        let o = read("cargo test", WORKSPACE);
        assert_eq!((o.passed, o.failed, o.ignored), (3, 1, 3));
        assert_eq!(
            o.ignored_by_binary,
            [
                ("doc-tests shared".to_string(), 1),
                ("lambda_smoke".to_string(), 1),
                ("shared".to_string(), 1)
            ]
            .into_iter()
            .collect()
        );
        let names: Vec<String> = o
            .ignored_tests
            .iter()
            .map(|t| format!("{}: {}", t.binary, t.test))
            .collect();
        assert_eq!(
            names,
            [
                "shared: b",
                "lambda_smoke: every_function_binary_handles_its_sample_event",
                "doc-tests shared: shared/src/lib.rs - (line 3)"
            ]
        );
        // Only the smoke binary may hold ignored tests.
        let why = o.refuse_ignored(&["lambda_smoke"]).unwrap_err();
        assert!(why.contains("shared: 1 ignored (b)"), "{why}");
        assert!(why.contains("doc-tests shared: 1 ignored"), "{why}");
        assert!(!why.contains("lambda_smoke:"), "{why}");
        // The smoke binary's ignored test alone passes; one more in the next
        // binary does not.
        let smoke = "
     Running tests/lambda_smoke.rs (target/debug/deps/lambda_smoke-00ff00ff00ff00ff)
test every_function_binary_handles_its_sample_event ... ignored, needs the emulator
test result: ok. 0 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.00s
     Running tests/it/main.rs (target/debug/deps/it-1234abcd1234abcd)
test result: ok. 5 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.00s
";
        read("cargo test", smoke)
            .refuse_ignored(&["lambda_smoke"])
            .unwrap();
        let why = read(
            "cargo test",
            &smoke.replace("0 failed; 0 ignored", "0 failed; 1 ignored"),
        )
        .refuse_ignored(&["lambda_smoke"])
        .unwrap_err();
        assert!(why.contains("it: 1 ignored"), "{why}");
    }

    #[test]
    fn a_run_of_ignored_tests_that_ran_none_is_refused() {
        let none = read(
            "lambda_smoke",
            "\nrunning 0 tests\n\ntest result: ok. 0 passed; 0 failed; 0 ignored; 0 measured; 1 filtered out; finished in 0.00s\n",
        );
        assert!(none.refuse_empty().unwrap_err().contains("no test ran"));
        // No output at all (the binary printed nothing it could read).
        assert!(read("lambda_smoke", "").refuse_empty().is_err());
        let ran = read(
            "lambda_smoke",
            "test every_function_binary_handles_its_sample_event ... ok\n\ntest result: ok. 1 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 9.00s\n",
        );
        ran.refuse_empty().unwrap();
        let mut total = Outcome::default();
        total.add(&ran);
        total.add(&read("cargo test", WORKSPACE));
        assert_eq!((total.passed, total.failed, total.ignored), (4, 1, 3));
    }
}

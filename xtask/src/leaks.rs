//! The secret-leak scan: after the tests, every captured log (`*.log` in
//! the folders given) is searched for every secret value the tests
//! registered (`*.secrets`, hex, one per line), in each form a log line or a
//! request could carry it (see [`Form`]). One hit fails the run; the report
//! names the file, the line and the form, and only the first characters of
//! the value.
//!
//! An empty scan proves nothing, so [`Scan::verdict`] also fails unless:
//! - some secrets were registered and the logs held some bytes;
//! - every expected source (a file-name prefix such as `it-` or `watch.log`)
//!   left a non-empty log;
//! - the canary was caught: `*.canary.log` is written by a test that logs a
//!   registered secret on purpose (`tests/tests/it/leak_canary.rs`), as
//!   written, JSON-escaped and in an HTTP Basic header. Each canary log must
//!   show a hit in each of [`CANARY_FORMS`]; its hits are the canary's, not
//!   leaks.
//!
//! Files the tests write into the folder: `<binary>-<pid>.log` (the test
//! binary's own logs), `<binary>-<pid>.hub.log` (the stderr of the `hub`
//! processes it ran), `<binary>-<pid>.secrets`, `it-<pid>.canary.log`; the
//! smoke stage adds `watch.log` (the function binaries under `cargo lambda
//! watch`).

use crate::Result;
use aho_corasick::{AhoCorasick, MatchKind};
use base64::Engine;
use base64::engine::general_purpose::STANDARD_NO_PAD;
use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::{Path, PathBuf};

/// Leak hits reported in full; the rest are only counted.
const MAX_REPORTED: usize = 50;

/// A base64 fragment shorter than this is not looked for (too likely by
/// chance).
const MIN_BASE64_CHARS: usize = 8;

/// The canary's logs end so.
const CANARY_SUFFIX: &str = ".canary.log";

/// How a secret appears in a log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Form {
    /// As written.
    Raw,
    /// JSON-escaped, once or twice (a JSON document inside a JSON log line).
    Json,
    /// Base64, standard or URL-safe, at any byte offset: alone, or inside
    /// `client:secret` as HTTP Basic auth sends it.
    Base64,
    /// Percent-encoded, as in a query string or a form body.
    Url,
}

/// The forms each canary log must be caught in.
pub const CANARY_FORMS: [Form; 3] = [Form::Raw, Form::Json, Form::Base64];

impl fmt::Display for Form {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Form::Raw => "as written",
            Form::Json => "JSON-escaped",
            Form::Base64 => "base64",
            Form::Url => "percent-encoded",
        })
    }
}

/// One secret found in one log.
#[derive(Debug, Clone)]
pub struct Hit {
    pub file: PathBuf,
    pub line: usize,
    pub form: Form,
    /// The secret's first characters (never all of it).
    shown: String,
    /// The secret's length.
    len: usize,
}

impl fmt::Display for Hit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}: {}… ({} chars, {})",
            self.file.display(),
            self.line,
            self.shown,
            self.len,
            self.form
        )
    }
}

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Distinct secret values looked for.
    pub secrets: usize,
    /// Log files read, the canary's included.
    pub logs: usize,
    /// Bytes of logs read, the canary's not included.
    pub log_bytes: u64,
    /// Every log but the canary's, by file name, with its size.
    pub sizes: BTreeMap<String, u64>,
    /// Leak hits (the first [`MAX_REPORTED`]).
    pub hits: Vec<Hit>,
    /// Leak hits in all.
    pub hit_count: usize,
    /// Each canary log and the forms its secrets were caught in.
    pub canaries: Vec<(PathBuf, BTreeSet<Form>)>,
    /// Folders that were not there.
    pub missing: Vec<PathBuf>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

fn percent_encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn json_escape(s: &str) -> String {
    let quoted = serde_json::to_string(s).unwrap_or_default();
    quoted
        .strip_prefix('"')
        .and_then(|q| q.strip_suffix('"'))
        .unwrap_or_default()
        .to_string()
}

/// The base64 characters that `secret` alone decides when it starts `r`
/// bytes into a 3-byte group (`r` in 0..3), in the standard alphabet: a
/// substring of the encoding of anything that holds the secret at such an
/// offset, whatever comes before or after it.
fn base64_core(secret: &[u8], r: usize) -> String {
    let mut buf = vec![0u8; r];
    buf.extend_from_slice(secret);
    let encoded = STANDARD_NO_PAD.encode(&buf);
    // Character i carries bits 6i..6i+6 of the input.
    let start = (8 * r).div_ceil(6);
    let end = 8 * buf.len() / 6;
    encoded.get(start..end).unwrap_or_default().to_string()
}

/// Every form `secret` is looked for in.
pub fn forms(secret: &[u8]) -> Vec<(Vec<u8>, Form)> {
    let mut out = vec![(secret.to_vec(), Form::Raw)];
    if let Ok(text) = std::str::from_utf8(secret) {
        let once = json_escape(text);
        let twice = json_escape(&once);
        out.push((once.into_bytes(), Form::Json));
        out.push((twice.into_bytes(), Form::Json));
        let url = percent_encode(text);
        out.push((url.replace("%20", "+").into_bytes(), Form::Url));
        out.push((url.into_bytes(), Form::Url));
    }
    for r in 0..3 {
        let core = base64_core(secret, r);
        if core.len() >= MIN_BASE64_CHARS {
            // The URL-safe alphabet differs only in `+` and `/`.
            let url_safe = core.replace('+', "-").replace('/', "_");
            out.push((url_safe.into_bytes(), Form::Base64));
            out.push((core.into_bytes(), Form::Base64));
        }
    }
    // The first form of a value wins: a secret with nothing to escape is
    // reported as written.
    let mut seen = BTreeSet::new();
    out.retain(|(p, _)| !p.is_empty() && seen.insert(p.clone()));
    out
}

fn is_canary(path: &Path) -> bool {
    path.file_name()
        .and_then(|n| n.to_str())
        .is_some_and(|n| n.ends_with(CANARY_SUFFIX))
}

/// Scans the folders `dirs` together: every secret registered in any of them
/// against every log in any of them. A missing folder is noted, not an
/// error ([`Scan::verdict`] names what it lacked).
pub fn scan(dirs: &[&Path]) -> Result<Scan> {
    let mut secrets: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut logs = Vec::new();
    let mut out = Scan::default();
    for dir in dirs {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                out.missing.push(dir.to_path_buf());
                continue;
            }
            Err(e) => return Err(format!("read {}: {e}", dir.display())),
        };
        for e in entries {
            let path = e.map_err(|e| e.to_string())?.path();
            match path.extension().and_then(|x| x.to_str()) {
                Some("secrets") => {
                    let text = std::fs::read_to_string(&path)
                        .map_err(|e| format!("read {}: {e}", path.display()))?;
                    secrets.extend(text.lines().filter_map(unhex).filter(|s| !s.is_empty()));
                }
                Some("log") => logs.push(path),
                _ => {}
            }
        }
    }
    logs.sort();
    out.secrets = secrets.len();
    out.logs = logs.len();
    let list: Vec<Vec<u8>> = secrets.into_iter().collect();
    // Each pattern: the secret it stands for and its form.
    let mut patterns: Vec<Vec<u8>> = Vec::new();
    let mut meaning: Vec<(usize, Form)> = Vec::new();
    let mut seen = BTreeSet::new();
    for (i, secret) in list.iter().enumerate() {
        for (p, form) in forms(secret) {
            if seen.insert(p.clone()) {
                patterns.push(p);
                meaning.push((i, form));
            }
        }
    }
    let ac = AhoCorasick::builder()
        .match_kind(MatchKind::LeftmostLongest)
        .build(&patterns)
        .map_err(|e| e.to_string())?;
    for path in logs {
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        let canary = is_canary(&path);
        let mut caught = BTreeSet::new();
        if !canary {
            out.log_bytes += bytes.len() as u64;
            let name = path.file_name().unwrap_or_default().to_string_lossy();
            *out.sizes.entry(name.into_owned()).or_default() += bytes.len() as u64;
        }
        for m in ac.find_iter(&bytes) {
            let (i, form) = meaning[m.pattern().as_usize()];
            if canary {
                caught.insert(form);
                continue;
            }
            out.hit_count += 1;
            if out.hits.len() < MAX_REPORTED {
                let secret = &list[i];
                out.hits.push(Hit {
                    file: path.clone(),
                    line: bytes[..m.start()].iter().filter(|b| **b == b'\n').count() + 1,
                    form,
                    shown: String::from_utf8_lossy(&secret[..secret.len().min(4)]).into(),
                    len: secret.len(),
                });
            }
        }
        if canary {
            out.canaries.push((path, caught));
        }
    }
    Ok(out)
}

impl Scan {
    /// Whether the scan may pass: a one-line summary, or every reason it may
    /// not. `sources` are the file-name prefixes of which each must have left
    /// a non-empty log.
    pub fn verdict(&self, sources: &[&str]) -> Result<String> {
        let mut problems = Vec::new();
        for dir in &self.missing {
            problems.push(format!("no folder {}", dir.display()));
        }
        if self.secrets == 0 {
            problems.push("no secrets were registered (is the capture wired?)".to_string());
        }
        if self.log_bytes == 0 {
            problems.push("read no log bytes (did the log subscriber install?)".to_string());
        }
        for source in sources {
            if !self
                .sizes
                .iter()
                .any(|(name, size)| name.starts_with(source) && *size > 0)
            {
                problems.push(format!("no non-empty log from {source}*"));
            }
        }
        if self.canaries.is_empty() {
            problems.push(format!(
                "no canary log (*{CANARY_SUFFIX}): the canary test did not run, so nothing shows the scan can find a secret"
            ));
        }
        for (path, caught) in &self.canaries {
            let missed: Vec<String> = CANARY_FORMS
                .iter()
                .filter(|f| !caught.contains(f))
                .map(Form::to_string)
                .collect();
            if !missed.is_empty() {
                problems.push(format!(
                    "the canary in {} was not caught {}",
                    path.display(),
                    missed.join(", ")
                ));
            }
        }
        if self.hit_count > 0 {
            let more = self.hit_count - self.hits.len();
            problems.push(format!(
                "{} hit(s) of a test's secret in its logs:\n    {}{}",
                self.hit_count,
                self.hits
                    .iter()
                    .map(Hit::to_string)
                    .collect::<Vec<_>>()
                    .join("\n    "),
                if more > 0 {
                    format!("\n    … and {more} more")
                } else {
                    String::new()
                }
            ));
        }
        if problems.is_empty() {
            Ok(format!(
                "{} secret values, {} log file(s), {} bytes: no hit; the canary caught in {} log(s)",
                self.secrets,
                self.logs,
                self.log_bytes,
                self.canaries.len()
            ))
        } else {
            Err(problems.join("\n  "))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;

    /// A fresh folder holding `files` (name, contents).
    fn folder(name: &str, files: &[(&str, &str)]) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-leaks-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        for (file, text) in files {
            std::fs::write(dir.join(file), text).unwrap();
        }
        dir
    }

    fn hex(s: &str) -> String {
        s.bytes().map(|b| format!("{b:02x}")).collect()
    }

    /// A canary log caught in every form, as the canary test writes it.
    fn canary() -> (String, String) {
        let plain = "canary-0123456789";
        let quoted = "canary\"quoted\\0123";
        let basic = STANDARD_NO_PAD.encode(format!("canary-client:{plain}"));
        let log = serde_json::json!({"plain": plain, "quoted": quoted, "authorization": format!("Basic {basic}")})
            .to_string();
        (format!("{}\n{}\n", hex(plain), hex(quoted)), log)
    }

    fn scan_of(name: &str, files: &[(&str, &str)]) -> Scan {
        let dir = folder(name, files);
        let s = scan(&[&dir]).unwrap();
        let _ = std::fs::remove_dir_all(&dir);
        s
    }

    #[test]
    fn a_logged_secret_is_found_and_a_clean_log_passes() {
        let (canary_secrets, canary_log) = canary();
        let secrets = format!("{}\n", hex("s3cr3t!-value"));
        let clean = scan_of(
            "clean",
            &[
                ("t.secrets", &secrets),
                ("c.secrets", &canary_secrets),
                ("t.log", "{\"msg\":\"refresh ok\"}\n"),
                ("it-1.canary.log", &canary_log),
            ],
        );
        assert_eq!((clean.secrets, clean.logs, clean.hits.len()), (3, 2, 0));
        clean.verdict(&["t."]).unwrap();
        let dirty = scan_of(
            "dirty",
            &[
                ("t.secrets", &secrets),
                ("c.secrets", &canary_secrets),
                (
                    "t.log",
                    "line one\n{\"msg\":\"token s3cr3t!-value refused\"}\n",
                ),
                ("it-1.canary.log", &canary_log),
            ],
        );
        assert_eq!(dirty.hits.len(), 1, "{:?}", dirty.hits);
        let hit = dirty.hits[0].to_string();
        assert!(
            hit.contains("t.log:2: s3cr… (13 chars, as written)"),
            "{hit}"
        );
        assert!(
            !hit.contains("s3cr3t!"),
            "the report does not repeat the secret"
        );
        assert!(dirty.verdict(&[]).unwrap_err().contains("1 hit(s)"));
    }

    /// Each encoded form is caught; one line holding the secret so.
    fn caught(line: &str) -> Vec<Form> {
        let secrets = format!("{}\n", hex("tok/en+sec\"ret=42"));
        scan_of("form", &[("t.secrets", &secrets), ("t.log", line)])
            .hits
            .iter()
            .map(|h| h.form)
            .collect()
    }

    #[test]
    fn base64_json_escaped_and_percent_encoded_secrets_are_caught() {
        let secret = "tok/en+sec\"ret=42";
        let b64 = |s: &str| STANDARD_NO_PAD.encode(s);
        // Alone, padded or not, standard or URL-safe.
        assert_eq!(caught(&b64(secret)), [Form::Base64]);
        assert_eq!(
            caught(&base64::engine::general_purpose::STANDARD.encode(secret)),
            [Form::Base64]
        );
        assert_eq!(caught(&URL_SAFE_NO_PAD.encode(secret)), [Form::Base64]);
        // HTTP Basic: `client:secret`, whatever the client id's length.
        for client in ["c", "ab", "client", "client-id-1"] {
            let header = format!(
                "authorization: Basic {}",
                b64(&format!("{client}:{secret}"))
            );
            assert_eq!(caught(&header), [Form::Base64], "{client}");
            let other_way = format!("Basic {}", b64(&format!("{secret}:{client}")));
            assert_eq!(caught(&other_way), [Form::Base64], "{client}");
        }
        // JSON-escaped, once and inside a JSON string in JSON.
        let once = serde_json::json!({ "body": secret }).to_string();
        assert_eq!(caught(&once), [Form::Json], "{once}");
        let twice = serde_json::json!({ "msg": once }).to_string();
        assert_eq!(caught(&twice), [Form::Json], "{twice}");
        // Percent-encoded in a form body.
        assert_eq!(
            caught("grant_type=refresh_token&refresh_token=tok%2Fen%2Bsec%22ret%3D42"),
            [Form::Url]
        );
        // A log without it, near misses included, is clean.
        assert!(caught(&format!("tok/en+sec ret=42 {}", b64("tok/en+sec"))).is_empty());
    }

    #[test]
    fn a_scan_that_saw_nothing_fails() {
        let (canary_secrets, canary_log) = canary();
        let secrets = format!("{}\n", hex("s3cr3t!-value"));
        // No log bytes at all (the subscriber never installed).
        let empty = scan_of(
            "empty",
            &[
                ("t.secrets", &secrets),
                ("c.secrets", &canary_secrets),
                ("t.log", ""),
                ("it-1.canary.log", &canary_log),
            ],
        );
        let why = empty.verdict(&[]).unwrap_err();
        assert!(why.contains("read no log bytes"), "{why}");
        // No secrets registered.
        let unregistered = scan_of("unregistered", &[("t.log", "{\"msg\":\"hi\"}\n")]);
        let why = unregistered.verdict(&[]).unwrap_err();
        assert!(why.contains("no secrets were registered"), "{why}");
        // A source that left nothing.
        let quiet = scan_of(
            "quiet",
            &[
                ("t.secrets", &secrets),
                ("c.secrets", &canary_secrets),
                ("it-1.log", "{\"msg\":\"hi\"}\n"),
                ("cli-2.hub.log", ""),
                ("it-1.canary.log", &canary_log),
            ],
        );
        assert!(quiet.verdict(&["it-"]).is_ok());
        let why = quiet.verdict(&["it-", "cli-"]).unwrap_err();
        assert!(why.contains("no non-empty log from cli-*"), "{why}");
        // A missing folder.
        let s = scan(&[Path::new("/nonexistent/xtask-leaks")]).unwrap();
        assert!(s.verdict(&[]).unwrap_err().contains("no folder"));
    }

    #[test]
    fn a_missing_or_uncaught_canary_fails_and_its_hits_are_not_leaks() {
        let (canary_secrets, canary_log) = canary();
        let base = [
            ("c.secrets", canary_secrets.as_str()),
            ("t.log", "{\"msg\":\"hi\"}\n"),
        ];
        let with = |extra: &[(&str, &str)]| {
            let mut files: Vec<(&str, &str)> = base.to_vec();
            files.extend_from_slice(extra);
            scan_of("canary", &files)
        };
        // Caught in every form: no leak counted.
        let ok = with(&[("it-1.canary.log", &canary_log)]);
        assert!(ok.hits.is_empty());
        assert_eq!(ok.canaries[0].1, CANARY_FORMS.into_iter().collect());
        ok.verdict(&[]).unwrap();
        // No canary log: the canary test did not run.
        let why = with(&[]).verdict(&[]).unwrap_err();
        assert!(why.contains("no canary log"), "{why}");
        // A canary log the scan does not catch (its secret unregistered, or
        // a form the matcher lost).
        let why = with(&[("it-1.canary.log", "{\"msg\":\"nothing here\"}\n")])
            .verdict(&[])
            .unwrap_err();
        assert!(
            why.contains("was not caught as written, JSON-escaped, base64"),
            "{why}"
        );
        let plain_only = "{\"plain\":\"canary-0123456789\"}\n";
        let why = with(&[("it-1.canary.log", plain_only)])
            .verdict(&[])
            .unwrap_err();
        assert!(why.contains("was not caught JSON-escaped, base64"), "{why}");
        // The canary's secret in an ordinary log is a leak.
        let leaked = with(&[
            ("it-1.canary.log", &canary_log),
            ("it-1.log", "canary-0123456789\n"),
        ]);
        assert_eq!(leaked.hits.len(), 1);
        assert!(leaked.verdict(&[]).is_err());
    }
}

//! The secret-leak scan: after the tests, every captured log
//! (`<dir>/*.log`) is searched for every secret value the tests wrote
//! (`<dir>/*.secrets`, hex, one per line). One hit fails the run; the report
//! names the file and line, and only the first characters of the value.

use crate::Result;
use aho_corasick::AhoCorasick;
use std::collections::BTreeSet;
use std::path::Path;

/// What a scan found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Distinct secret values looked for.
    pub secrets: usize,
    /// Bytes of logs read.
    pub log_bytes: u64,
    /// Log files read.
    pub logs: usize,
    /// `file:line: <first chars>… (n chars)` per hit.
    pub hits: Vec<String>,
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).ok())
        .collect()
}

/// Scans `dir`.
pub fn scan(dir: &Path) -> Result<Scan> {
    let mut secrets: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut logs = Vec::new();
    let entries = std::fs::read_dir(dir).map_err(|e| format!("read {}: {e}", dir.display()))?;
    for e in entries {
        let path = e.map_err(|e| e.to_string())?.path();
        match path.extension().and_then(|x| x.to_str()) {
            Some("secrets") => {
                let text = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                secrets.extend(text.lines().filter_map(unhex).filter(|s| !s.is_empty()));
            }
            Some("log") => logs.push(path),
            _ => {}
        }
    }
    let mut out = Scan {
        secrets: secrets.len(),
        logs: logs.len(),
        ..Scan::default()
    };
    if secrets.is_empty() {
        return Ok(out);
    }
    let list: Vec<Vec<u8>> = secrets.into_iter().collect();
    let ac = AhoCorasick::new(&list).map_err(|e| e.to_string())?;
    for path in logs {
        let bytes = std::fs::read(&path).map_err(|e| format!("read {}: {e}", path.display()))?;
        out.log_bytes += bytes.len() as u64;
        for m in ac.find_iter(&bytes) {
            let line = bytes[..m.start()].iter().filter(|b| **b == b'\n').count() + 1;
            let secret = &list[m.pattern().as_usize()];
            let shown: String = String::from_utf8_lossy(&secret[..secret.len().min(4)]).into();
            out.hits.push(format!(
                "{}:{line}: {shown}… ({} chars)",
                path.display(),
                secret.len()
            ));
            if out.hits.len() >= 50 {
                return Ok(out);
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_logged_secret_is_found_and_a_clean_log_passes() {
        let dir = std::env::temp_dir().join(format!("xtask-leaks-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("t.secrets"), format!("{}\n", "73336372337421")).unwrap(); // "s3cr3t!"
        std::fs::write(dir.join("t.log"), "{\"msg\":\"refresh ok\"}\n").unwrap();
        let clean = scan(&dir).unwrap();
        assert_eq!((clean.secrets, clean.logs, clean.hits.len()), (1, 1, 0));
        std::fs::write(
            dir.join("u.log"),
            "line one\n{\"msg\":\"token s3cr3t! refused\"}\n",
        )
        .unwrap();
        let dirty = scan(&dir).unwrap();
        assert_eq!(dirty.hits.len(), 1, "{:?}", dirty.hits);
        assert!(dirty.hits[0].contains("u.log:2: s3cr…"), "{:?}", dirty.hits);
        assert!(
            !dirty.hits[0].contains("s3cr3t!"),
            "the report does not repeat the secret"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}

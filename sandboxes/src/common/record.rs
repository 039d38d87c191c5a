//! Recording the exchanges a sandbox serves, for the contract checks
//! (`xtask/contracts.py`).
//!
//! When the environment variable `HUB_SANDBOX_RECORD` names a directory, every
//! sandbox started in the process appends each request it answers, with its
//! response, as one JSON line to a file of its own in that directory:
//! `<provider>-<pid>-<n>.jsonl` (`n` counts the sandboxes started by the
//! process), so parallel tests and processes never interleave. Without the
//! variable the router is served unchanged and nothing is written.
//!
//! A line holds: `provider`, `method`, `path` (no host), `query` (raw, or
//! null), `route` (the axum route template, null for the fallback),
//! `request.content_type`, `request.body`, `response.status`,
//! `response.content_type`, `response.body`, and `dropped` (the connection was
//! cut instead of answered, so the client saw no response). Bodies are parsed
//! JSON when their content type says JSON, else text (null when empty).
//!
//! No secrets in clear: no header is recorded but the content type (so no
//! `authorization`), and form fields, query parameters and JSON members named
//! like a secret (client_secret, refresh_token, access_token, code, password,
//! ...) have their string values replaced by `"<redacted>"`.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{MatchedPath, Request, State};
use axum::middleware::Next;
use axum::response::Response;
use serde_json::{Map, Value, json};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// The variable naming the directory to record into.
pub const RECORD_ENV: &str = "HUB_SANDBOX_RECORD";

/// What replaces a secret's value.
const REDACTED: &str = "<redacted>";

/// Sandboxes started by this process, for unique file names.
static STARTED: AtomicU64 = AtomicU64::new(0);

/// One sandbox's recording file, opened on the first exchange.
#[derive(Debug)]
struct Recorder {
    provider: &'static str,
    killed: KilledFlag,
    path: PathBuf,
    file: Mutex<Option<BufWriter<File>>>,
}

impl Recorder {
    fn write(&self, line: &Value) {
        let Ok(mut bytes) = serde_json::to_vec(line) else {
            return;
        };
        bytes.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|e| e.into_inner());
        if file.is_none() {
            match File::options().create(true).append(true).open(&self.path) {
                Ok(f) => *file = Some(BufWriter::new(f)),
                Err(e) => {
                    tracing::warn!(path = %self.path.display(), error = %e, "cannot open the sandbox recording");
                    return;
                }
            }
        }
        if let Some(f) = file.as_mut() {
            // One line, then flush: a test process may end without dropping
            // its sandboxes, and a line must never be left half written.
            let _ = f.write_all(&bytes).and_then(|()| f.flush());
        }
    }
}

/// Where a request's connection keeps its kill switch (the server's connect
/// info), so an exchange the sandbox cut is recorded as dropped.
pub(crate) type KilledFlag = fn(&axum::http::Extensions) -> Option<Arc<AtomicBool>>;

/// `router` with the recording layer when [`RECORD_ENV`] is set; unchanged
/// otherwise.
pub(crate) fn wrap(provider: &'static str, killed: KilledFlag, router: Router) -> Router {
    let Some(dir) = std::env::var_os(RECORD_ENV).filter(|d| !d.is_empty()) else {
        return router;
    };
    let dir = PathBuf::from(dir);
    if let Err(e) = std::fs::create_dir_all(&dir) {
        tracing::warn!(dir = %dir.display(), error = %e, "cannot create the sandbox recording directory");
        return router;
    }
    let n = STARTED.fetch_add(1, Ordering::Relaxed);
    let recorder = Arc::new(Recorder {
        provider,
        killed,
        path: dir.join(format!("{provider}-{}-{n}.jsonl", std::process::id())),
        file: Mutex::new(None),
    });
    router.layer(axum::middleware::from_fn_with_state(recorder, record))
}

/// The recording middleware: buffers both bodies, records, passes them on.
async fn record(State(recorder): State<Arc<Recorder>>, request: Request, next: Next) -> Response {
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(redact_query);
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|m| m.as_str().to_string());
    let killed = (recorder.killed)(request.extensions());
    let req_type = content_type(request.headers());
    let (parts, body) = request.into_parts();
    let req_bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let req_body = body_value(req_type.as_deref(), &req_bytes);
    let response = next
        .run(Request::from_parts(parts, Body::from(req_bytes)))
        .await;

    let status = response.status().as_u16();
    let resp_type = content_type(response.headers());
    let (parts, body) = response.into_parts();
    let resp_bytes = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(b) => b,
        Err(_) => Bytes::new(),
    };
    let resp_body = body_value(resp_type.as_deref(), &resp_bytes);
    let dropped = killed.is_some_and(|k| k.load(Ordering::SeqCst));
    recorder.write(&json!({
        "provider": recorder.provider,
        "method": method,
        "path": path,
        "query": query,
        "route": route,
        "request": { "content_type": req_type, "body": req_body },
        "response": { "status": status, "content_type": resp_type, "body": resp_body },
        "dropped": dropped,
    }));
    Response::from_parts(parts, Body::from(resp_bytes))
}

fn content_type(headers: &http::HeaderMap) -> Option<String> {
    headers
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_string)
}

/// A body as recorded: JSON when it says so and parses, form text with its
/// secrets redacted, other text as is; null when empty.
fn body_value(content_type: Option<&str>, bytes: &[u8]) -> Value {
    if bytes.is_empty() {
        return Value::Null;
    }
    let ct = content_type.unwrap_or("").to_ascii_lowercase();
    if ct.contains("json")
        && let Ok(mut v) = serde_json::from_slice::<Value>(bytes)
    {
        redact_json(&mut v);
        return v;
    }
    let text = String::from_utf8_lossy(bytes);
    if ct.contains("x-www-form-urlencoded") {
        return Value::String(redact_query(&text));
    }
    Value::String(text.into_owned())
}

/// Whether a field of this name holds a secret. `code` (an OAuth
/// authorization code) only counts in forms, query strings and JSON token
/// requests (`form`): elsewhere in JSON it is an account or error code.
fn is_secret(name: &str, form: bool) -> bool {
    let n: String = name
        .chars()
        .filter(|c| c.is_ascii_alphanumeric())
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (form && n == "code")
        || n.contains("secret")
        || n.contains("password")
        || n == "token"
        || n.ends_with("accesstoken")
        || n.ends_with("refreshtoken")
        || n.ends_with("idtoken")
        || n.ends_with("bearertoken")
        || n == "apikey"
        || n == "assertion"
}

/// A form or query string with the values of secret fields redacted.
fn redact_query(raw: &str) -> String {
    let pairs = url::form_urlencoded::parse(raw.as_bytes());
    if !pairs.clone().any(|(k, _)| is_secret(&k, true)) {
        return raw.to_string();
    }
    let mut out = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in pairs {
        if is_secret(&k, true) {
            out.append_pair(&k, REDACTED);
        } else {
            out.append_pair(&k, &v);
        }
    }
    out.finish()
}

/// Redacts, in place and recursively, the string values of secret members.
fn redact_json(value: &mut Value) {
    match value {
        Value::Object(map) => redact_map(map),
        Value::Array(items) => items.iter_mut().for_each(redact_json),
        _ => {}
    }
}

fn redact_map(map: &mut Map<String, Value>) {
    // An OAuth token request sent as JSON (Square's ObtainToken): its `code`
    // is the authorization code.
    let oauth = map.contains_key("grant_type");
    for (k, v) in map.iter_mut() {
        if is_secret(k, oauth) && v.is_string() {
            *v = Value::String(REDACTED.to_string());
        } else {
            redact_json(v);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_redacted() {
        assert_eq!(
            redact_query("grant_type=refresh_token&refresh_token=abc&client_secret=s&x=1"),
            "grant_type=refresh_token&refresh_token=%3Credacted%3E&client_secret=%3Credacted%3E&x=1"
        );
        assert_eq!(redact_query("cursor=abc&limit=2"), "cursor=abc&limit=2");
        let mut v = json!({"grant_type": "authorization_code", "code": "c", "client_id": "id"});
        redact_json(&mut v);
        assert_eq!(
            v,
            json!({"grant_type": "authorization_code", "code": "<redacted>", "client_id": "id"})
        );
        let mut v = json!({"errors": [{"code": "NOT_FOUND"}], "Code": "200"});
        redact_json(&mut v);
        assert_eq!(v, json!({"errors": [{"code": "NOT_FOUND"}], "Code": "200"}));
        let mut v = json!({"clientSecret": "s", "token": {"accessToken": "a", "tokenType": "Bearer",
            "expiresIn": 3600}, "nextPageToken": "p", "SyncToken": "0", "items": [{"password": "x"}]});
        redact_json(&mut v);
        assert_eq!(
            v,
            json!({"clientSecret": "<redacted>", "token": {"accessToken": "<redacted>",
                "tokenType": "Bearer", "expiresIn": 3600}, "nextPageToken": "p", "SyncToken": "0",
                "items": [{"password": "<redacted>"}]})
        );
    }

    #[test]
    fn bodies_are_parsed_by_content_type() {
        assert_eq!(
            body_value(Some("application/json; charset=utf-8"), br#"{"a":1}"#),
            json!({"a": 1})
        );
        assert_eq!(body_value(Some("text/plain"), b"hi"), json!("hi"));
        assert_eq!(body_value(Some("application/json"), b""), Value::Null);
        assert_eq!(
            body_value(Some("application/json"), b"{oops"),
            json!("{oops")
        );
    }
}

//! Everything a backend holds, row by row, so a test can require that a
//! request changed nothing at all: not the number of rows (a refused request
//! that overwrites a row keeps every count), but their contents.
//!
//! | backend | what is read |
//! |---|---|
//! | SQLite | every row of every table of the database file (`sqlite_sequence` too) |
//! | AWS | a consistent scan of the state and idempotency tables |
//! | both | the depth (waiting, in flight, parked) of each queue of the `Stores` |
//! | SQLite | each secret of the secrets file, as a SHA-256 of its versions |
//! | AWS | each secret under the backend's prefix: its version ids and stages, and a SHA-256 of each version's value |
//!
//! Secret values never appear in a fingerprint or its diff, only their hashes.

use super::{Backend, Kind};
use aws_sdk_dynamodb::types::AttributeValue;
use sha2::{Digest, Sha256};
use shared::Stores;
use std::collections::BTreeMap;
use std::path::Path;

/// The embedded database's file in the backend's directory.
pub(super) const SQLITE_FILE: &str = "state.db";
/// The secrets file in the backend's directory.
pub(super) const SECRETS_FILE: &str = "secrets.json";

/// The contents of a backend: for each part (a table, a queue, the secrets),
/// its rows rendered canonically and sorted. Equal exactly when nothing was
/// added, removed or overwritten.
#[derive(Clone, PartialEq, Eq)]
pub struct Fingerprint {
    parts: BTreeMap<String, Vec<String>>,
}

impl std::fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map().entries(self.counts()).finish()
    }
}

fn short(row: &str) -> String {
    const MAX: usize = 240;
    if row.chars().count() <= MAX {
        row.to_string()
    } else {
        format!("{}…", row.chars().take(MAX).collect::<String>())
    }
}

fn sha256(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

impl Fingerprint {
    /// Rows per part: what a count-based check compares.
    pub fn counts(&self) -> BTreeMap<String, usize> {
        self.parts
            .iter()
            .map(|(k, v)| (k.clone(), v.len()))
            .collect()
    }

    /// What changed from `self` to `after`, one line per row gone or new
    /// (an overwritten row is both); empty when nothing did.
    pub fn changes(&self, after: &Fingerprint) -> Vec<String> {
        let mut out = Vec::new();
        let empty = Vec::new();
        let names: std::collections::BTreeSet<&String> =
            self.parts.keys().chain(after.parts.keys()).collect();
        for name in names {
            let (was, now) = (
                self.parts.get(name).unwrap_or(&empty),
                after.parts.get(name).unwrap_or(&empty),
            );
            if was == now {
                continue;
            }
            for row in was.iter().filter(|r| !now.contains(r)) {
                out.push(format!("{name}: - {}", short(row)));
            }
            for row in now.iter().filter(|r| !was.contains(r)) {
                out.push(format!("{name}: + {}", short(row)));
            }
        }
        out
    }

    fn insert(&mut self, part: String, mut rows: Vec<String>) {
        rows.sort();
        self.parts.insert(part, rows);
    }
}

impl Backend {
    /// Everything this backend holds now, with the depths of `stores`' queues.
    pub async fn fingerprint(&self, stores: &Stores) -> Fingerprint {
        // Boxed: the SDK calls read at once make a large future.
        Box::pin(self.read_everything(stores)).await
    }

    async fn read_everything(&self, stores: &Stores) -> Fingerprint {
        let mut fp = Fingerprint {
            parts: BTreeMap::new(),
        };
        let queues = async {
            let roles = ["work", "push", "unrouted", "pull", "outbound"];
            let depths = tokio::join!(
                stores.work_queue.depth(),
                stores.push_queue.depth(),
                stores.unrouted_queue.depth(),
                stores.pull_queue.depth(),
                stores.outbound_queue.depth(),
            );
            let depths = [depths.0, depths.1, depths.2, depths.3, depths.4];
            roles
                .into_iter()
                .zip(depths)
                .map(|(role, d)| {
                    let d = d.unwrap_or_else(|e| panic!("depth of the {role} queue: {e}"));
                    let row = format!(
                        "visible={} in_flight={} dead={}",
                        d.visible, d.in_flight, d.dead
                    );
                    (format!("queue {role}"), vec![row])
                })
                .collect::<Vec<_>>()
        };
        let (queues, rest) = match &self.kind {
            Kind::Sqlite { dir, .. } => {
                let (db, secrets) = (dir.join(SQLITE_FILE), dir.join(SECRETS_FILE));
                let tables = async {
                    tokio::task::spawn_blocking(move || sqlite_rows(&db))
                        .await
                        .unwrap()
                };
                let (queues, tables) = tokio::join!(queues, tables);
                let mut rest: Vec<_> = tables
                    .into_iter()
                    .map(|(table, rows)| (format!("sqlite {table}"), rows))
                    .collect();
                rest.push(("secrets".into(), secrets_file_rows(&secrets)));
                (queues, rest)
            }
            Kind::Aws {
                sdk,
                prefix,
                tables: [state, idem],
                ..
            } => {
                let ddb = aws_sdk_dynamodb::Client::new(sdk);
                let sm = aws_sdk_secretsmanager::Client::new(sdk);
                let (queues, state_rows, idem_rows, secrets) = tokio::join!(
                    queues,
                    scan(&ddb, state),
                    scan(&ddb, idem),
                    aws_secret_rows(&sm, prefix)
                );
                let rest = vec![
                    (format!("dynamodb {state}"), state_rows),
                    (format!("dynamodb {idem}"), idem_rows),
                    ("secrets".into(), secrets),
                ];
                (queues, rest)
            }
        };
        for (part, rows) in queues.into_iter().chain(rest) {
            fp.insert(part, rows);
        }
        fp
    }
}

fn sqlite_rows(db: &Path) -> Vec<(String, Vec<String>)> {
    use rusqlite::types::ValueRef;
    let mut c = rusqlite::Connection::open(db)
        .unwrap_or_else(|e| panic!("open {} to fingerprint it: {e}", db.display()));
    // One read transaction: every table as of the same moment.
    let tx = c.transaction().unwrap();
    let tables: Vec<String> = tx
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let mut out = Vec::new();
    for table in tables {
        let mut stmt = tx.prepare(&format!("SELECT * FROM \"{table}\"")).unwrap();
        let columns: Vec<String> = stmt.column_names().map(str::to_string).collect();
        let rows = stmt
            .query_map([], |r| {
                let mut row = serde_json::Map::new();
                for (i, name) in columns.iter().enumerate() {
                    let v = match r.get_ref(i)? {
                        ValueRef::Null => serde_json::Value::Null,
                        ValueRef::Integer(n) => n.into(),
                        ValueRef::Real(x) => x.into(),
                        ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                        ValueRef::Blob(b) => format!("blob:{}", hex::encode(b)).into(),
                    };
                    row.insert(name.clone(), v);
                }
                Ok(serde_json::Value::Object(row).to_string())
            })
            .unwrap()
            .map(Result::unwrap)
            .collect();
        out.push((table, rows));
    }
    out
}

/// One row per secret of the file: its name and a hash of its versions.
fn secrets_file_rows(path: &Path) -> Vec<String> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return vec!["(no file)".into()],
        Err(e) => panic!("read {}: {e}", path.display()),
    };
    match serde_json::from_slice::<serde_json::Value>(&bytes) {
        Ok(serde_json::Value::Object(top)) if top.len() == 1 && top["secrets"].is_object() => {
            top["secrets"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, versions)| {
                    format!("{name} sha256:{}", sha256(versions.to_string().as_bytes()))
                })
                .collect()
        }
        // Not the shape the adapter writes: the whole file, hashed.
        _ => vec![format!("file sha256:{}", sha256(&bytes))],
    }
}

/// An attribute value with map keys and sets sorted, so equal items render
/// equally.
fn render(v: &AttributeValue) -> String {
    let sorted = |mut v: Vec<String>| {
        v.sort();
        v.join(",")
    };
    match v {
        AttributeValue::S(s) => serde_json::Value::from(s.as_str()).to_string(),
        AttributeValue::N(n) => format!("N:{n}"),
        AttributeValue::B(b) => format!("B:{}", hex::encode(b.as_ref())),
        AttributeValue::Bool(b) => b.to_string(),
        AttributeValue::Null(_) => "null".into(),
        AttributeValue::Ss(v) => format!("SS[{}]", sorted(v.clone())),
        AttributeValue::Ns(v) => format!("NS[{}]", sorted(v.clone())),
        AttributeValue::Bs(v) => format!(
            "BS[{}]",
            sorted(v.iter().map(|b| hex::encode(b.as_ref())).collect())
        ),
        AttributeValue::L(items) => format!(
            "[{}]",
            items.iter().map(render).collect::<Vec<_>>().join(",")
        ),
        AttributeValue::M(m) => render_map(m),
        other => format!("{other:?}"),
    }
}

fn render_map(m: &std::collections::HashMap<String, AttributeValue>) -> String {
    let sorted: BTreeMap<&String, String> = m.iter().map(|(k, v)| (k, render(v))).collect();
    let fields: Vec<String> = sorted
        .into_iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!("{{{}}}", fields.join(","))
}

async fn scan(ddb: &aws_sdk_dynamodb::Client, table: &str) -> Vec<String> {
    let mut rows = Vec::new();
    let mut start = None;
    loop {
        let page = ddb
            .scan()
            .table_name(table)
            .consistent_read(true)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap_or_else(|e| panic!("scan {table}: {e:?}"));
        rows.extend(page.items().iter().map(render_map));
        match page.last_evaluated_key() {
            Some(k) if !k.is_empty() => start = Some(k.clone()),
            _ => return rows,
        }
    }
}

/// One row per secret under `prefix`: its versions and their stages, and a
/// hash of each version's value.
async fn aws_secret_rows(sm: &aws_sdk_secretsmanager::Client, prefix: &str) -> Vec<String> {
    use aws_sdk_secretsmanager::types::{Filter, FilterNameStringType};
    let mut names = Vec::new();
    let mut token = None;
    loop {
        let page = sm
            .list_secrets()
            .filters(
                Filter::builder()
                    .key(FilterNameStringType::Name)
                    .values(prefix)
                    .build(),
            )
            .set_next_token(token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("list secrets under {prefix}: {e:?}"));
        names.extend(
            page.secret_list()
                .iter()
                .filter_map(|s| s.name())
                .filter(|n| n.starts_with(prefix))
                .map(str::to_string),
        );
        match page.next_token() {
            Some(t) if !t.is_empty() => token = Some(t.to_string()),
            _ => break,
        }
    }
    // Each secret read at once: this runs before and after every request.
    let mut reads = tokio::task::JoinSet::new();
    for name in names {
        let (sm, prefix) = (sm.clone(), prefix.to_string());
        reads.spawn(async move { aws_secret_row(&sm, &prefix, &name).await });
    }
    let mut rows = Vec::new();
    while let Some(row) = reads.join_next().await {
        rows.push(row.unwrap_or_else(|e| panic!("reading a secret: {e}")));
    }
    rows
}

/// `name` (without `prefix`), each of its versions with its stages, and a
/// hash of each version's value.
async fn aws_secret_row(sm: &aws_sdk_secretsmanager::Client, prefix: &str, name: &str) -> String {
    let described = sm
        .describe_secret()
        .secret_id(name)
        .send()
        .await
        .unwrap_or_else(|e| panic!("describe secret {name}: {e:?}"));
    let stages: BTreeMap<String, Vec<String>> = described
        .version_ids_to_stages()
        .into_iter()
        .flatten()
        .map(|(id, stages)| {
            let mut stages = stages.clone();
            stages.sort();
            (id.clone(), stages)
        })
        .collect();
    let mut versions = Vec::new();
    for (id, stages) in stages {
        let value = sm
            .get_secret_value()
            .secret_id(name)
            .version_id(&id)
            .send()
            .await
            .unwrap_or_else(|e| panic!("get secret {name} version {id}: {e:?}"));
        let hash = match (value.secret_string(), value.secret_binary()) {
            (Some(s), _) => sha256(s.as_bytes()),
            (None, Some(b)) => sha256(b.as_ref()),
            (None, None) => "none".into(),
        };
        versions.push(format!("{id}[{}]=sha256:{hash}", stages.join("+")));
    }
    format!(
        "{} {}",
        name.strip_prefix(prefix).unwrap_or(name),
        versions.join(" ")
    )
}

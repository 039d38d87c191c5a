//! Hostile input against every webhook route and the intake, over HTTP to
//! `hub serve`'s router on the embedded store: a corpus of more than 200
//! requests (forged, truncated and re-keyed signatures, replays, wrong
//! content types, invalid UTF-8, deeply nested and huge JSON, oversized
//! bodies, unknown providers, tenants and accounts, header injection). Each
//! is answered with its documented status and a message saying why; a
//! refused one leaves every table of the store exactly as it was; the server
//! answers its health check afterwards (nothing panicked).

use hub::serve::{AppState, run};
use hub_sandboxes::webhook::signed_headers;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use shared::adapters::file_secrets::FileSecrets;
use shared::adapters::sqlite::SqliteStore;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::webhooks::WebhookSettings;
use shared::{Config, Stores};
use std::io::{Read, Write};
use std::path::PathBuf;

const KEY: &str = "hostile-test-signing-key";
const INTAKE_TOKEN: &str = "hostile-test-intake-token";
const MAX_BODY: usize = 256 * 1024;

struct Case {
    name: String,
    method: &'static str,
    path: String,
    headers: HeaderMap,
    body: Vec<u8>,
    status: u16,
    /// A piece of the documented message.
    says: &'static str,
    /// Refused: nothing may be stored.
    refused: bool,
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

fn providers() -> [(Provider, Vec<u8>, &'static str); 4] {
    [
        (
            Provider::Toast,
            fixture("toast/webhook_order_updated.json"),
            "0cd990c9-fd74-461d-8468-de2a0919ccbba",
        ),
        (
            Provider::Square,
            fixture("square/webhook_test_notification.json"),
            "MLEFBHHSJGVHD",
        ),
        (
            Provider::QuickBooks,
            fixture("qbo/webhook_legacy_event_notifications.json"),
            "1185883450",
        ),
        (
            Provider::Xero,
            fixture("xero/webhook_contact_update.json"),
            "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
        ),
    ]
}

async fn seed(stores: &Stores) {
    let tenant = TenantId::new("bistro").unwrap();
    stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Bistro".into(),
        })
        .await
        .unwrap();
    for (provider, _, account) in providers() {
        stores
            .secrets
            .put(
                &SecretName::new(format!("webhooks/{provider}")).unwrap(),
                &KEY.to_string().into(),
            )
            .await
            .unwrap();
        stores
            .connections
            .register(&Connection {
                id: ConnectionId::new(provider.as_str()).unwrap(),
                tenant: tenant.clone(),
                provider,
                account_id: ProviderAccountId::new(account).unwrap(),
                time_zone: TimeZoneName::new("America/New_York").unwrap(),
                business_day_close: Default::default(),
                credentials: SecretName::new(format!("bistro/{provider}")).unwrap(),
                mappings: Default::default(),
                codes: Default::default(),
                currency: None,
            })
            .await
            .unwrap();
    }
}

/// Rows in every table of the store: what a refused request may not change.
fn fingerprint(db: &PathBuf) -> Vec<(String, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    tables
        .into_iter()
        .map(|t| {
            let n: i64 = c
                .query_row(&format!("SELECT COUNT(*) FROM \"{t}\""), [], |r| r.get(0))
                .unwrap();
            (t, n)
        })
        .collect()
}

/// Headers signing `body`; where the scheme cannot sign it (a Toast body
/// without its timestamp), the headers of the genuine delivery instead.
fn signed_or(
    provider: Provider,
    url: &str,
    body: &[u8],
    key: &str,
    genuine: &HeaderMap,
) -> HeaderMap {
    signed_headers(provider, url, body, key).unwrap_or_else(|_| genuine.clone())
}

fn with(mut h: HeaderMap, name: &str, value: &[u8]) -> HeaderMap {
    h.insert(
        HeaderName::from_bytes(name.as_bytes()).unwrap(),
        HeaderValue::from_bytes(value).unwrap(),
    );
    h
}

fn without(mut h: HeaderMap, name: &str) -> HeaderMap {
    h.remove(name);
    h
}

fn sig_header(p: Provider) -> &'static str {
    shared::webhooks::signature_header(p).unwrap()
}

fn webhook_cases(base: &str, rng: &mut rand::rngs::StdRng) -> Vec<Case> {
    let mut out = Vec::new();
    for (p, body, account) in providers() {
        let path = format!("/webhooks/{p}");
        let url = format!("{base}{path}");
        let ok = signed_headers(p, &url, &body, KEY).unwrap();
        let signed = |body: &[u8], key: &str| signed_or(p, &url, body, key, &ok);
        let sh = sig_header(p);
        let sig = ok.get(sh).unwrap().as_bytes().to_vec();
        // The Toast signature covers the body's timestamp: a body that is not
        // JSON cannot be verified (401); the others verify, then fail to parse.
        let (bad_json, bad_json_says) = if p == Provider::Toast {
            (401, "timestamp")
        } else {
            (400, "malformed")
        };
        let mut case = |name: &str,
                        method: &'static str,
                        headers: HeaderMap,
                        body: Vec<u8>,
                        status: u16,
                        says: &'static str,
                        refused: bool| {
            out.push(Case {
                name: format!("{p}: {name}"),
                method,
                path: path.clone(),
                headers,
                body,
                status,
                says,
                refused,
            });
        };
        case(
            "signed delivery",
            "POST",
            ok.clone(),
            body.clone(),
            200,
            "",
            false,
        );
        case(
            "replayed delivery",
            "POST",
            ok.clone(),
            body.clone(),
            200,
            "",
            true,
        );
        case(
            "no signature",
            "POST",
            without(ok.clone(), sh),
            body.clone(),
            401,
            "missing",
            true,
        );
        case(
            "empty signature",
            "POST",
            with(ok.clone(), sh, b""),
            body.clone(),
            401,
            "missing",
            true,
        );
        case(
            "truncated signature",
            "POST",
            with(ok.clone(), sh, &sig[..sig.len() - 4]),
            body.clone(),
            401,
            "signature",
            true,
        );
        case(
            "signature of one byte",
            "POST",
            with(ok.clone(), sh, &sig[..1]),
            body.clone(),
            401,
            "signature",
            true,
        );
        case(
            "signature not base64",
            "POST",
            with(ok.clone(), sh, b"!!not-base64!!"),
            body.clone(),
            401,
            "signature",
            true,
        );
        case(
            "signature with non-ASCII bytes",
            "POST",
            with(ok.clone(), sh, &[0xC3, 0xA9, 0xFF, 0x80]),
            body.clone(),
            401,
            "signature",
            true,
        );
        case(
            "signature doubled",
            "POST",
            with(ok.clone(), sh, &[sig.clone(), sig.clone()].concat()),
            body.clone(),
            401,
            "signature",
            true,
        );
        case(
            "signed with another key",
            "POST",
            signed(&body, "not-the-key"),
            body.clone(),
            401,
            "does not match",
            true,
        );
        let mut flipped = body.clone();
        let mid = flipped.len() / 2;
        flipped[mid] ^= 0x01;
        case(
            "body changed after signing",
            "POST",
            ok.clone(),
            flipped,
            401,
            "",
            true,
        );
        case(
            "body with a trailing byte",
            "POST",
            ok.clone(),
            [body.clone(), b" ".to_vec()].concat(),
            401,
            "does not match",
            true,
        );
        if p != Provider::Toast {
            // (Toast's scheme cannot sign a body without its timestamp.)
            case(
                "signature of the empty body",
                "POST",
                signed(b"", KEY),
                body.clone(),
                401,
                "",
                true,
            );
        }
        for ct in [
            "text/plain",
            "application/x-www-form-urlencoded",
            "application/xml",
            "multipart/form-data; boundary=x",
        ] {
            case(
                &format!("content type {ct}"),
                "POST",
                with(ok.clone(), "content-type", ct.as_bytes()),
                body.clone(),
                415,
                "is not JSON",
                true,
            );
        }
        let invalid_utf8 = vec![b'{', b'"', 0xFF, 0xFE, b'"', b':', b'1', b'}'];
        case(
            "invalid UTF-8",
            "POST",
            signed(&invalid_utf8, KEY),
            invalid_utf8,
            bad_json,
            bad_json_says,
            true,
        );
        let truncated = body[..body.len() / 2].to_vec();
        case(
            "truncated JSON",
            "POST",
            signed(&truncated, KEY),
            truncated,
            bad_json,
            bad_json_says,
            true,
        );
        case(
            "empty body",
            "POST",
            signed(b"", KEY),
            Vec::new(),
            bad_json,
            bad_json_says,
            true,
        );
        let nested = "[".repeat(100_000).into_bytes();
        case(
            "JSON nested 100,000 deep",
            "POST",
            signed(&nested, KEY),
            nested,
            bad_json,
            bad_json_says,
            true,
        );
        let array = b"[1,2,3]".to_vec();
        case(
            "a JSON array",
            "POST",
            signed(&array, KEY),
            array,
            bad_json,
            bad_json_says,
            true,
        );
        let huge = format!("{{\"junk\":\"{}\"}}", "x".repeat(1_900_000)).into_bytes();
        case(
            "huge JSON under the limit, not an envelope",
            "POST",
            signed(&huge, KEY),
            huge,
            bad_json,
            if p == Provider::Toast {
                "timestamp"
            } else {
                "malformed"
            },
            true,
        );
        let over = vec![b' '; 2 * 1024 * 1024 + 1];
        case(
            "body over the limit",
            "POST",
            signed(&over, KEY),
            over,
            413,
            "over the",
            true,
        );
        for m in ["GET", "PUT", "DELETE", "PATCH"] {
            case(
                &format!("method {m}"),
                m,
                ok.clone(),
                body.clone(),
                405,
                "is not allowed",
                true,
            );
        }
        // Forgeries: random signatures of the right shape.
        for i in 0..12 {
            let mut bytes = vec![0u8; 32];
            rng.fill(&mut bytes[..]);
            let forged = base64_encode(&bytes);
            case(
                &format!("random signature {i}"),
                "POST",
                with(ok.clone(), sh, forged.as_bytes()),
                body.clone(),
                401,
                "does not match",
                true,
            );
        }
        // A signed event for an account no tenant owns: answered 200, kept
        // on the unrouted queue for an operator (documented), not refused.
        let text = String::from_utf8(body.clone()).unwrap();
        let stranger = text.replace(account, "NOBODY0000001").into_bytes();
        case(
            "signed event for an unknown account",
            "POST",
            signed(&stranger, KEY),
            stranger,
            200,
            "",
            false,
        );
    }
    // Routes that are not webhook providers.
    for (name, path, status) in [
        ("unknown provider", "/webhooks/stripe", 404),
        ("provider without webhooks", "/webhooks/marketman", 404),
        (
            "time tracking has no webhooks",
            "/webhooks/timetracking",
            404,
        ),
        ("empty provider", "/webhooks/", 404),
        ("percent-encoded NUL", "/webhooks/toast%00", 404),
        ("dot segments", "/webhooks/..%2Fintake", 404),
        (
            "long provider name",
            &format!("/webhooks/{}", "a".repeat(4000)),
            404,
        ),
        ("nested path", "/webhooks/toast/extra", 404),
        ("no such route", "/admin", 404),
        ("unicode provider", "/webhooks/t%C3%B6ast", 404),
    ] {
        out.push(Case {
            name: name.into(),
            method: "POST",
            path: path.to_string(),
            headers: with(HeaderMap::new(), "content-type", b"application/json"),
            body: b"{}".to_vec(),
            status,
            says: "",
            refused: true,
        });
    }
    out
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn intake_cases() -> Vec<Case> {
    let po = serde_json::json!({"id": "po-h1", "supplier_id": "acme", "location": "main", "delivery_date": "2026-12-02",
        "lines": [{"item_id": "flour", "quantity": "2.5", "unit": "bag", "unit_cost": "18.40"}]});
    let good = serde_json::to_vec(&po).unwrap();
    let auth = format!("Bearer {INTAKE_TOKEN}");
    let base = with(
        with(
            with(HeaderMap::new(), "content-type", b"application/json"),
            "authorization",
            auth.as_bytes(),
        ),
        "idempotency-key",
        b"po-h1-key",
    );
    let mut out = Vec::new();
    let mut case = |name: &str,
                    method: &'static str,
                    path: &str,
                    headers: HeaderMap,
                    body: Vec<u8>,
                    status: u16,
                    says: &'static str,
                    refused: bool| {
        out.push(Case {
            name: format!("intake: {name}"),
            method,
            path: path.to_string(),
            headers,
            body,
            status,
            says,
            refused,
        });
    };
    let po_path = "/intake/bistro/purchase-orders";
    case(
        "accepted purchase order",
        "POST",
        po_path,
        base.clone(),
        good.clone(),
        202,
        "",
        false,
    );
    case(
        "the same key again (replayed)",
        "POST",
        po_path,
        base.clone(),
        good.clone(),
        202,
        "",
        true,
    );
    case(
        "no bearer token",
        "POST",
        po_path,
        without(base.clone(), "authorization"),
        good.clone(),
        401,
        "bearer",
        true,
    );
    case(
        "wrong bearer token",
        "POST",
        po_path,
        with(base.clone(), "authorization", b"Bearer guess"),
        good.clone(),
        401,
        "bearer",
        true,
    );
    case(
        "token without the scheme",
        "POST",
        po_path,
        with(base.clone(), "authorization", INTAKE_TOKEN.as_bytes()),
        good.clone(),
        401,
        "bearer",
        true,
    );
    case(
        "lower-case scheme",
        "POST",
        po_path,
        with(
            base.clone(),
            "authorization",
            format!("bearer {INTAKE_TOKEN}").as_bytes(),
        ),
        good.clone(),
        401,
        "bearer",
        true,
    );
    // (A trailing space is no test: HTTP trims header values.)

    case(
        "token prefix only",
        "POST",
        po_path,
        with(
            base.clone(),
            "authorization",
            format!("Bearer {}", &INTAKE_TOKEN[..10]).as_bytes(),
        ),
        good.clone(),
        401,
        "bearer",
        true,
    );
    case(
        "basic auth",
        "POST",
        po_path,
        with(base.clone(), "authorization", b"Basic YWRtaW46YWRtaW4="),
        good.clone(),
        401,
        "bearer",
        true,
    );
    for m in ["GET", "PUT", "DELETE", "PATCH"] {
        case(
            &format!("method {m}"),
            m,
            po_path,
            base.clone(),
            good.clone(),
            405,
            "is not allowed",
            true,
        );
    }
    for (name, path) in [
        ("unknown kind", "/intake/bistro/invoices"),
        ("unknown tenant", "/intake/nobody/purchase-orders"),
        ("no kind", "/intake/bistro"),
        (
            "tenant with a key separator",
            "/intake/bis%23tro/purchase-orders",
        ),
        ("extra segment", "/intake/bistro/purchase-orders/extra"),
    ] {
        case(
            name,
            "POST",
            path,
            base.clone(),
            good.clone(),
            404,
            "",
            true,
        );
    }
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/xml",
        "text/json",
    ] {
        case(
            &format!("content type {ct}"),
            "POST",
            po_path,
            with(base.clone(), "content-type", ct.as_bytes()),
            good.clone(),
            415,
            "is not JSON",
            true,
        );
    }
    case(
        "no Idempotency-Key",
        "POST",
        po_path,
        without(base.clone(), "idempotency-key"),
        good.clone(),
        400,
        "Idempotency-Key",
        true,
    );
    case(
        "blank Idempotency-Key",
        "POST",
        po_path,
        with(base.clone(), "idempotency-key", b"   "),
        good.clone(),
        400,
        "Idempotency-Key",
        true,
    );
    case(
        "Idempotency-Key of 200 characters",
        "POST",
        po_path,
        with(base.clone(), "idempotency-key", "k".repeat(200).as_bytes()),
        good.clone(),
        400,
        "Idempotency-Key",
        true,
    );
    case(
        "Idempotency-Key with a key separator",
        "POST",
        po_path,
        with(base.clone(), "idempotency-key", b"a#b"),
        good.clone(),
        400,
        "Idempotency-Key",
        true,
    );
    let fresh = |k: &str| with(base.clone(), "idempotency-key", k.as_bytes());
    case(
        "not JSON",
        "POST",
        po_path,
        fresh("k-notjson"),
        b"purchase order please".to_vec(),
        400,
        "not JSON",
        true,
    );
    case(
        "invalid UTF-8",
        "POST",
        po_path,
        fresh("k-utf8"),
        vec![b'{', 0xFF, b'}'],
        400,
        "not JSON",
        true,
    );
    case(
        "empty body",
        "POST",
        po_path,
        fresh("k-empty"),
        Vec::new(),
        400,
        "not JSON",
        true,
    );
    case(
        "a JSON array",
        "POST",
        po_path,
        fresh("k-array"),
        b"[]".to_vec(),
        400,
        "JSON object",
        true,
    );
    case(
        "JSON nested 40,000 deep",
        "POST",
        po_path,
        fresh("k-deep"),
        "{\"a\":".repeat(40_000).into_bytes(),
        400,
        "not JSON",
        true,
    );
    case(
        "body over the limit",
        "POST",
        po_path,
        fresh("k-big"),
        vec![b' '; MAX_BODY + 1],
        413,
        "over the",
        true,
    );
    let invalid = [
        (
            "quantity zero",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "0", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "no supplier",
            serde_json::json!({"id": "p", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
        ),
        (
            "no lines",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
        ),
        (
            "negative cost",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "-1"}]}),
        ),
        (
            "date not a date",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "next week", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "quantity as float",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "lots", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "id with a key separator",
            serde_json::json!({"id": "p#1", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "id of 10,000 characters",
            serde_json::json!({"id": "p".repeat(10_000), "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
    ];
    for (i, (name, body)) in invalid.into_iter().enumerate() {
        let status = 422;
        case(
            name,
            "POST",
            po_path,
            fresh(&format!("k-invalid-{i}")),
            serde_json::to_vec(&body).unwrap_or_else(|_| b"{}".to_vec()),
            status,
            "",
            true,
        );
    }
    let te_path = "/intake/bistro/time-entries";
    case("shift ending before it starts", "POST", te_path, fresh("k-te-1"), serde_json::to_vec(&serde_json::json!({"id": "t", "employee_id": "e", "location": "l", "clock_in": "2026-11-28T10:00:00Z", "clock_out": "2026-11-28T09:00:00Z"})).unwrap(), 422, "clock_out", true);
    case("break outside the shift", "POST", te_path, fresh("k-te-2"), serde_json::to_vec(&serde_json::json!({"id": "t", "employee_id": "e", "location": "l", "clock_in": "2026-11-28T10:00:00Z", "clock_out": "2026-11-28T12:00:00Z", "breaks": [{"start": "2026-11-28T13:00:00Z", "end": "2026-11-28T13:30:00Z"}]})).unwrap(), 422, "breaks[0]", true);
    case(
        "delivery with a bad time",
        "POST",
        "/intake/bistro/deliveries",
        fresh("k-dl-1"),
        serde_json::to_vec(
            &serde_json::json!({"id": "d", "received_at": "yesterday", "lines": []}),
        )
        .unwrap(),
        422,
        "",
        true,
    );
    out
}

/// A raw request with a CR or LF where a header value should end: hyper
/// refuses it before any handler runs.
fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(std::time::Duration::from_secs(5)))
        .unwrap();
    s.write_all(request).unwrap();
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n]).to_string()
}

#[tokio::test]
async fn every_hostile_request_is_answered_as_documented_and_stores_nothing() {
    crate::leaks::init();
    crate::leaks::register_secret(KEY);
    crate::leaks::register_secret(INTAKE_TOKEN);
    let dir = std::env::temp_dir().join(format!("hub-hostile-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("state.db");
    let config = Config::from_lookup(|_| None).unwrap();
    let stores = Stores::embedded(
        SqliteStore::open(&db).unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    );
    seed(&stores).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let base = format!("http://{addr}");
    let state = AppState::new(stores.clone(), WebhookSettings::default())
        .with_intake_token(Some(INTAKE_TOKEN.to_string().into()));
    tokio::spawn(run(listener, state, std::future::pending()));
    let http = reqwest::Client::builder().no_proxy().build().unwrap();

    let mut rng = rand::rngs::StdRng::seed_from_u64(0x5eed);
    let mut cases = webhook_cases(&base, &mut rng);
    cases.extend(intake_cases());
    assert!(
        cases.len() >= 200,
        "the corpus holds {} requests",
        cases.len()
    );
    let mut failures = Vec::new();
    for c in &cases {
        let before = fingerprint(&db);
        let method = reqwest::Method::from_bytes(c.method.as_bytes()).unwrap();
        let r = http
            .request(method, format!("{base}{}", c.path))
            .headers(c.headers.clone())
            .body(c.body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{}: no answer ({e}): did the server panic?", c.name));
        let status = r.status().as_u16();
        let body = r.text().await.unwrap_or_default();
        if status != c.status {
            failures.push(format!(
                "{}: {status} (expected {}) {body}",
                c.name, c.status
            ));
            continue;
        }
        if c.status >= 400 && !c.says.is_empty() && !body.contains(c.says) {
            failures.push(format!(
                "{}: {status} says {body:?}, not {:?}",
                c.name, c.says
            ));
        }
        if c.status >= 400 && body.trim().is_empty() {
            failures.push(format!("{}: {status} with no reason", c.name));
        }
        if c.refused && fingerprint(&db) != before {
            failures.push(format!(
                "{}: refused but the store changed: {before:?} -> {:?}",
                c.name,
                fingerprint(&db)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Header injection: a CR or LF inside a header is refused by the HTTP
    // layer (400, or the connection closed) before any handler; a request id that is not a plain token is
    // never echoed back.
    let before = fingerprint(&db);
    for injected in [
        &b"POST /webhooks/toast HTTP/1.1\r\nHost: x\r\nX-Request-Id: a\rInjected: 1\r\nContent-Length: 2\r\n\r\n{}"[..],
        &b"POST /webhooks/toast HTTP/1.1\r\nHost: x\r\nToast-Signature: a\nInjected: 1\r\nContent-Length: 2\r\n\r\n{}"[..],
        &b"POST /intake/bistro/purchase-orders HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer \r x\r\nContent-Length: 2\r\n\r\n{}"[..],
    ] {
        // hyper answers 400 or closes the connection; no handler runs.
        let answer = raw(&addr, injected);
        assert!(
            answer.is_empty() || answer.starts_with("HTTP/1.1 400"),
            "{answer:?}"
        );
    }
    let long = "i".repeat(129);
    for id in [
        &b"a b"[..],
        b"<script>",
        b"\xc3\xa9t\xc3\xa9",
        long.as_bytes(),
        b"ok%0d%0aSet-Cookie:x",
    ] {
        let r = http
            .post(format!("{base}/webhooks/toast"))
            .header("x-request-id", HeaderValue::from_bytes(id).unwrap())
            .body("{}")
            .send()
            .await
            .unwrap();
        let echoed = r.headers().get("x-request-id").unwrap().as_bytes();
        assert_ne!(echoed, id, "an unsafe request id is replaced, not echoed");
        assert_eq!(r.status(), 401);
    }
    assert_eq!(fingerprint(&db), before, "header injection stored nothing");

    // Still standing.
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    let _ = std::fs::remove_dir_all(&dir);
}

//! Hostile input against every webhook route and the intake, over HTTP to
//! `hub serve`'s router, on both backends: a corpus of more than 200
//! requests (forged, truncated and re-keyed signatures, replays, wrong
//! content types, invalid UTF-8, deeply nested and huge JSON, oversized
//! bodies, unknown providers, tenants and accounts, header injection). Each
//! is answered with its documented status and a message saying why (every
//! refusal names its reason); a refused one leaves the backend exactly as it
//! was: the fingerprint (`backends::Fingerprint`) of every row of every table, every queue's depth
//! and every secret is the same after as before, so a refusal that overwrote
//! a row fails even though no count moved. The server answers its health
//! check afterwards (nothing panicked).
//!
//! Deliveries are signed by the sandboxes' own signer
//! (`hub_sandboxes::webhook`), not by the hub's code.

use crate::backends::{Backend, conformance};
use hub::serve::{AppState, run};
use hub_sandboxes::webhook::signed_headers;
use rand::{Rng, SeedableRng};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use shared::Stores;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::ports::OutgoingMessage;
use shared::webhooks::WebhookSettings;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

conformance!(
    every_hostile_request_is_answered_as_documented_and_changes_nothing,
    the_fingerprint_sees_an_overwrite_that_keeps_every_count,
);

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
    /// A piece of the documented answer: of the body, or of its `error`
    /// message. Every refusal (4xx) has one.
    says: &'static str,
    /// Refused: nothing may be stored.
    refused: bool,
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR"))).unwrap()
}

/// Each provider's delivery fixture, the account it names, and its event id
/// where the dedupe key is that id alone (Toast `guid`, Square `event_id`;
/// the QuickBooks and Xero keys include the account).
fn providers() -> [(Provider, Vec<u8>, &'static str, Option<&'static str>); 4] {
    [
        (
            Provider::Toast,
            fixture("toast/webhook_order_updated.json"),
            "0cd990c9-fd74-461d-8468-de2a0919ccbba",
            Some("534bf25a-b657-45aa-9a63-47f8f35400d6"),
        ),
        (
            Provider::Square,
            fixture("square/webhook_test_notification.json"),
            "MLEFBHHSJGVHD",
            Some("ac3ac95b-f97d-458c-a6e6-18981597e05f"),
        ),
        (
            Provider::QuickBooks,
            fixture("qbo/webhook_legacy_event_notifications.json"),
            "1185883450",
            None,
        ),
        (
            Provider::Xero,
            fixture("xero/webhook_contact_update.json"),
            "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
            None,
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
    for (provider, _, account, _) in providers() {
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
                books: Default::default(),
            })
            .await
            .unwrap();
    }
}

/// `body` with one digit at or after its middle changed (never to a 0, so a
/// number stays a number): the same JSON shape, signed by no one.
fn tampered(body: &[u8]) -> Vec<u8> {
    let mut out = body.to_vec();
    let i = (out.len() / 2..out.len())
        .find(|&i| out[i].is_ascii_digit())
        .expect("a digit after the middle of the fixture");
    out[i] = if out[i] == b'9' { b'8' } else { out[i] + 1 };
    assert!(serde_json::from_slice::<serde_json::Value>(&out).is_ok());
    out
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
    for (p, body, account, event_id) in providers() {
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
        // What a 200 says; Xero's are empty, as Xero requires.
        let (accepted, duplicate, unrouted) = if p == Provider::Xero {
            ("", "", "")
        } else {
            (r#""accepted":1"#, r#""duplicates":1"#, r#""unrouted":1"#)
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
            accepted,
            false,
        );
        case(
            "replayed delivery",
            "POST",
            ok.clone(),
            body.clone(),
            200,
            duplicate,
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
        // Still JSON with its timestamp, so it is the signature that refuses it.
        case(
            "body changed after signing",
            "POST",
            ok.clone(),
            tampered(&body),
            401,
            "does not match",
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
                "does not match",
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
        // on the unrouted queue for an operator (documented), not refused. A
        // new event (id), or it would be the duplicate of the one above.
        let mut text = String::from_utf8(body.clone()).unwrap();
        text = text.replace(account, "NOBODY0000001");
        if let Some(id) = event_id {
            text = text.replace(id, "00000000-0000-4000-8000-00000000beef");
        }
        let stranger = text.into_bytes();
        case(
            "signed event for an unknown account",
            "POST",
            signed(&stranger, KEY),
            stranger,
            200,
            unrouted,
            false,
        );
    }
    // Routes that are not webhook providers.
    let long = format!("/webhooks/{}", "a".repeat(4000));
    for (name, path, says) in [
        (
            "unknown provider",
            "/webhooks/stripe",
            r#"no webhook endpoint for "stripe""#,
        ),
        (
            "provider without webhooks",
            "/webhooks/marketman",
            r#"no webhook endpoint for "marketman""#,
        ),
        (
            "time tracking has no webhooks",
            "/webhooks/timetracking",
            r#"no webhook endpoint for "timetracking""#,
        ),
        ("empty provider", "/webhooks/", "no route for /webhooks/:"),
        (
            "percent-encoded NUL",
            "/webhooks/toast%00",
            r#"no webhook endpoint for "toast\0""#,
        ),
        (
            "dot segments",
            "/webhooks/..%2Fintake",
            r#"no webhook endpoint for "../intake""#,
        ),
        (
            "long provider name",
            &long,
            r#"no webhook endpoint for "aaaaaaaa"#,
        ),
        (
            "nested path",
            "/webhooks/toast/extra",
            "no route for /webhooks/toast/extra:",
        ),
        ("no such route", "/admin", "no route for /admin:"),
        (
            "unicode provider",
            "/webhooks/t%C3%B6ast",
            r#"no webhook endpoint for "töast""#,
        ),
    ] {
        out.push(Case {
            name: name.into(),
            method: "POST",
            path: path.to_string(),
            headers: with(HeaderMap::new(), "content-type", b"application/json"),
            body: b"{}".to_vec(),
            status: 404,
            says,
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
        r#""accepted":true,"id":"po-h1""#,
        false,
    );
    case(
        "the same key again (replayed)",
        "POST",
        po_path,
        base.clone(),
        good.clone(),
        202,
        r#""accepted":true,"id":"po-h1""#,
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
    for (name, path, says) in [
        (
            "unknown kind",
            "/intake/bistro/invoices",
            r#"unknown intake "invoices""#,
        ),
        (
            "unknown tenant",
            "/intake/nobody/purchase-orders",
            "tenant nobody does not exist",
        ),
        (
            "no kind",
            "/intake/bistro",
            "POST to /intake/{tenant}/purchase-orders",
        ),
        (
            "tenant with a key separator",
            "/intake/bis%23tro/purchase-orders",
            "malformed tenant id",
        ),
        (
            "extra segment",
            "/intake/bistro/purchase-orders/extra",
            r#"unknown intake "purchase-orders/extra""#,
        ),
    ] {
        case(
            name,
            "POST",
            path,
            base.clone(),
            good.clone(),
            404,
            says,
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
    // Each names the field at fault.
    let invalid = [
        (
            "quantity zero",
            "lines[0].quantity 0 is not positive",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "0", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "no supplier",
            "missing field `supplier_id`",
            serde_json::json!({"id": "p", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
        ),
        (
            "no lines",
            "lines has no lines",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
        ),
        (
            "negative cost",
            "lines[0].unit_cost -1 is negative",
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "-1"}]}),
        ),
        (
            "date not a date",
            r#""field":"delivery_date""#,
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "next week", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "quantity not a number",
            r#""field":"lines[0].quantity""#,
            serde_json::json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "lots", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "id with a key separator",
            r#""field":"id""#,
            serde_json::json!({"id": "p#1", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
        (
            "id of 10,000 characters",
            r#""field":"id""#,
            serde_json::json!({"id": "p".repeat(10_000), "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"}]}),
        ),
    ];
    for (i, (name, says, body)) in invalid.into_iter().enumerate() {
        case(
            name,
            "POST",
            po_path,
            fresh(&format!("k-invalid-{i}")),
            serde_json::to_vec(&body).unwrap(),
            422,
            says,
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
        r#""field":"received_at""#,
        true,
    );
    out
}

/// Sends `request` as it is and reads the whole answer: the server closes
/// the connection after it (`Connection: close`, or a request it cannot
/// parse). No answer within 10 s fails: silence is not a refusal.
async fn raw(addr: &str, request: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut answer)).await;
    match read {
        Ok(Ok(_)) => {}
        // A reset after the answer still leaves the answer.
        Ok(Err(e)) if answer.is_empty() => panic!("no answer to {request:?}: {e}"),
        Ok(Err(_)) => {}
        Err(_) => panic!("no answer within 10 s to {request:?}"),
    }
    String::from_utf8_lossy(&answer).to_string()
}

/// The `error` message of a JSON answer, or the answer itself.
fn reason(body: &str) -> String {
    serde_json::from_str::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v["error"].as_str().map(str::to_string))
        .unwrap_or_else(|| body.to_string())
}

async fn every_hostile_request_is_answered_as_documented_and_changes_nothing(backend: Backend) {
    crate::leaks::register_secret(KEY);
    crate::leaks::register_secret(INTAKE_TOKEN);
    let stores = backend.stores(5).await;
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
    let unexplained: Vec<&str> = cases
        .iter()
        .filter(|c| c.status >= 400 && c.says.is_empty())
        .map(|c| c.name.as_str())
        .collect();
    assert!(
        unexplained.is_empty(),
        "refusals without an expected reason: {unexplained:?}"
    );
    let mut failures = Vec::new();
    for c in &cases {
        let before = if c.refused {
            Some(backend.fingerprint(&stores).await)
        } else {
            None
        };
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
        if !c.says.is_empty() && !body.contains(c.says) && !reason(&body).contains(c.says) {
            failures.push(format!(
                "{}: {status} says {body:?}, not {:?}",
                c.name, c.says
            ));
        }
        if c.status >= 400 && body.trim().is_empty() {
            failures.push(format!("{}: {status} with no reason", c.name));
        }
        if let Some(before) = before {
            let changes = before.changes(&backend.fingerprint(&stores).await);
            if !changes.is_empty() {
                failures.push(format!(
                    "{}: refused but the backend changed:\n    {}",
                    c.name,
                    changes.join("\n    ")
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases:\n{}",
        failures.len(),
        cases.len(),
        failures.join("\n")
    );

    // Header injection, sent as raw bytes. A bare CR inside a header value is
    // invalid (RFC 9112 §2.2): the HTTP layer answers 400 before any
    // handler. A bare LF ends a header line (RFC 9112 §2.2 lets a recipient
    // accept it), so the "injected" line is just another header and the
    // request is refused as unsigned. Either way a real answer, and a request
    // id that is not a plain token is never echoed back.
    let before = backend.fingerprint(&stores).await;
    for (injected, status, says) in [
        (
            &b"POST /webhooks/toast HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Request-Id: a\rInjected: 1\r\nContent-Length: 2\r\n\r\n{}"[..],
            400,
            "",
        ),
        (
            &b"POST /webhooks/toast HTTP/1.1\r\nHost: x\r\nConnection: close\r\nToast-Signature: a\nInjected: 1\r\nContent-Length: 2\r\n\r\n{}"[..],
            401,
            "toast-signature header is not a base64 HMAC-SHA256 signature",
        ),
        (
            &b"POST /intake/bistro/purchase-orders HTTP/1.1\r\nHost: x\r\nConnection: close\r\nAuthorization: Bearer \r x\r\nContent-Length: 2\r\n\r\n{}"[..],
            400,
            "",
        ),
    ] {
        let answer = raw(&addr, injected).await;
        assert!(
            answer.starts_with(&format!("HTTP/1.1 {status} ")),
            "{injected:?} answered {answer:?}, not {status}"
        );
        assert!(answer.contains(says), "{answer:?} does not say {says:?}");
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
    let changes = before.changes(&backend.fingerprint(&stores).await);
    assert!(
        changes.is_empty(),
        "header injection changed the backend:\n{}",
        changes.join("\n")
    );

    // Still standing.
    let health = http.get(format!("{base}/health")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// The fingerprint itself: stable when nothing changes, and it sees a row
/// overwritten in place, a secret replaced, and a message queued, where a
/// count of rows sees nothing for the first two.
async fn the_fingerprint_sees_an_overwrite_that_keeps_every_count(backend: Backend) {
    crate::leaks::register_secret(KEY);
    let stores = backend.stores(5).await;
    seed(&stores).await;
    let before = backend.fingerprint(&stores).await;
    assert_eq!(
        backend.fingerprint(&stores).await,
        before,
        "reading changes nothing"
    );
    assert!(before.changes(&before).is_empty());

    // Planted between before and after: the tenant's row overwritten.
    stores
        .connections
        .put_tenant(&Tenant {
            id: TenantId::new("bistro").unwrap(),
            name: "Bistro, overwritten".into(),
        })
        .await
        .unwrap();
    let after = backend.fingerprint(&stores).await;
    assert_eq!(after.counts(), before.counts(), "no count moved");
    assert_ne!(after, before, "but the fingerprint did");
    let changes = before.changes(&after);
    assert!(
        changes.iter().any(|c| c.contains("Bistro, overwritten")),
        "{changes:#?}"
    );
    assert_eq!(
        changes.len(),
        2,
        "the old row gone, the new one there: {changes:#?}"
    );
    assert!(changes[0].contains(": - ") && changes[1].contains(": + "));

    // A signing key replaced by another.
    let planted = "planted-signing-key";
    crate::leaks::register_secret(planted);
    let before = after;
    stores
        .secrets
        .put(
            &SecretName::new("webhooks/toast").unwrap(),
            &planted.to_string().into(),
        )
        .await
        .unwrap();
    let after = backend.fingerprint(&stores).await;
    assert_eq!(after.counts(), before.counts(), "no count moved");
    let changes = before.changes(&after);
    assert!(
        !changes.is_empty() && changes.iter().all(|c| c.starts_with("secrets: ")),
        "{changes:#?}"
    );
    let shown = format!("{changes:?} {after:?}");
    assert!(
        !shown.contains(planted) && !shown.contains(KEY),
        "a fingerprint never shows a secret"
    );

    // A message queued.
    let before = after;
    stores
        .unrouted_queue
        .send_batch(&[OutgoingMessage::new(r#"{"planted":true}"#)])
        .await
        .unwrap();
    let after = backend.fingerprint(&stores).await;
    let changes = before.changes(&after);
    assert!(
        changes.iter().any(|c| c.starts_with("queue unrouted: ")),
        "{changes:#?}"
    );
}

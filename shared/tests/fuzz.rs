//! Fuzzing of every parser that reads untrusted bytes: each webhook envelope
//! (Toast, Square, QuickBooks legacy and CloudEvents, Xero), each signature
//! header, the `Content-Type` check, and the intake's bodies.
//!
//! The toolchain here is stable Rust, where cargo-fuzz's sanitizer flags are
//! not available, so this is a mutation fuzzer of our own on a seeded RNG:
//! it starts from the providers' published payloads and mutates them (bit
//! flips, byte insertions and deletions, splices of other seeds, JSON
//! tokens, truncation, repetition) or makes random bytes: a fixed number of
//! inputs per target (`HUB_FUZZ_INPUTS`, default 20,000) from a fixed seed
//! (`HUB_FUZZ_SEED`, default below; `random` draws one), so every run of the
//! test command tries the same inputs, however fast the machine. Each input must be answered without a panic, and the answers
//! must hold their invariants: a signature made with another key never
//! verifies; a parsed envelope's events belong to the provider that signed
//! it; the intake never accepts a body it cannot parse. A failing input is
//! printed (hex) with the seed that made it, so it can be replayed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use secrecy::SecretString;
use shared::model::Provider;
use shared::webhooks::verify::{SignedParts, SigningKeys, sign, verify};
use shared::webhooks::{parse_envelope, signature_header};
const URL: &str = "https://hub.example.com/webhooks/square";

/// The seed every run uses unless `HUB_FUZZ_SEED` says otherwise.
const DEFAULT_SEED: u64 = 0x5eed_2026_1202;

fn inputs() -> u64 {
    std::env::var("HUB_FUZZ_INPUTS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000)
}

fn seed_value() -> u64 {
    match std::env::var("HUB_FUZZ_SEED").ok().as_deref() {
        None => DEFAULT_SEED,
        Some("random") => rand::rng().random(),
        Some(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("HUB_FUZZ_SEED={v}: not a number or `random`")),
    }
}

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!(
        "{}/../tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn seeds(provider: Provider) -> Vec<Vec<u8>> {
    match provider {
        Provider::Toast => vec![
            fixture("toast/webhook_order_updated.json"),
            fixture("toast/webhook_menus_updated.json"),
        ],
        Provider::Square => vec![fixture("square/webhook_test_notification.json")],
        Provider::QuickBooks => vec![
            fixture("qbo/webhook_legacy_event_notifications.json"),
            fixture("qbo/webhook_cloudevents_class_created.json"),
            fixture("qbo/webhook_cloudevents_customer_merged.json"),
            fixture("qbo/webhook_cloudevents_salesreceipt_updated.json"),
        ],
        _ => vec![
            fixture("xero/webhook_contact_update.json"),
            fixture("xero/webhook_creditnote_create.json"),
        ],
    }
}

const TOKENS: &[&[u8]] = &[
    b"{",
    b"}",
    b"[",
    b"]",
    b",",
    b":",
    b"\"",
    b"null",
    b"true",
    b"-0",
    b"1e999",
    b"\\u0000",
    b"\\ud800",
    b"\"timestamp\"",
    b"\"events\"",
    b"\"eventNotifications\"",
    b"\"type\"",
    b"\"merchant_id\"",
    b"\"tenantId\"",
    b"\xff",
    b"\xc3",
    b"\x00",
];

/// One mutation of `input` (or of a splice with another seed).
fn mutate(rng: &mut StdRng, input: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut out = input.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let len = out.len();
        match rng.random_range(0..9) {
            0 if len > 0 => {
                let i = rng.random_range(0..len);
                out[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let i = rng.random_range(0..=len);
                out.insert(i, rng.random());
            }
            2 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(64));
                out.drain(i..i + n);
            }
            3 => {
                let i = rng.random_range(0..=len);
                let t = TOKENS[rng.random_range(0..TOKENS.len())];
                out.splice(i..i, t.iter().copied());
            }
            4 if len > 0 => out.truncate(rng.random_range(0..len)),
            5 if !others.is_empty() => {
                let o = &others[rng.random_range(0..others.len())];
                let cut = rng.random_range(0..=len);
                let from = rng.random_range(0..=o.len());
                out.truncate(cut);
                out.extend_from_slice(&o[from..]);
            }
            6 if len > 0 => {
                let i = rng.random_range(0..len);
                let n = rng.random_range(1..=(len - i).min(32));
                let chunk = out[i..i + n].to_vec();
                for _ in 0..rng.random_range(1..50) {
                    out.splice(i..i, chunk.iter().copied());
                }
            }
            7 => {
                let n = rng.random_range(0..256);
                out = (0..n).map(|_| rng.random()).collect();
            }
            _ => {
                // A deep nest.
                let depth = rng.random_range(1..5000);
                let mut nest = vec![b'['; depth];
                nest.extend(std::iter::repeat_n(b']', rng.random_range(0..=depth)));
                out = nest;
            }
        }
    }
    out
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Runs `check` on [`inputs`] mutated inputs; panics with the input and seed
/// on the first failure. Returns how many inputs ran.
fn fuzz(
    name: &str,
    corpus: Vec<Vec<u8>>,
    mut check: impl FnMut(&[u8]) -> Result<(), String>,
) -> u64 {
    let seed = seed_value();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut n = 0u64;
    for s in &corpus {
        if let Err(e) = check(s) {
            panic!("{name}: seed input fails: {e}");
        }
    }
    while n < inputs() {
        let base = &corpus[rng.random_range(0..corpus.len())];
        let input = mutate(&mut rng, base, &corpus);
        let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&input)));
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => panic!(
                "{name}: {e}\ninput (hex): {}\nHUB_FUZZ_SEED={seed}",
                hex(&input)
            ),
            Err(_) => panic!(
                "{name}: panicked\ninput (hex): {}\nHUB_FUZZ_SEED={seed}",
                hex(&input)
            ),
        }
        n += 1;
    }
    eprintln!("{name}: {n} inputs (HUB_FUZZ_SEED={seed})");
    n
}

fn keys(k: &str) -> SigningKeys {
    SigningKeys {
        current: SecretString::from(k.to_string()),
        previous: None,
    }
}

/// Envelope parsers: the body is signed with the right key, verified, then
/// parsed; an error is fine, a panic or a foreign event is not.
fn envelope_target(provider: Provider) {
    let key = SecretString::from("fuzz-key".to_string());
    let k = keys("fuzz-key");
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "toast-restaurant-external-id",
        http::HeaderValue::from_static("restaurant-guid"),
    );
    fuzz(&format!("{provider} envelope"), seeds(provider), |body| {
        let parts = SignedParts {
            body,
            url: Some(URL),
        };
        // Toast signs the body's timestamp: a body without one cannot be signed.
        let Ok(signature) = sign(provider, parts, &key) else {
            return Ok(());
        };
        let verified = verify(provider, Some(&signature), parts, &k)
            .map_err(|e| format!("a body signed with the key did not verify: {e}"))?;
        if let Ok(envelope) = parse_envelope(&verified, &headers) {
            for e in &envelope.events {
                if e.provider != provider {
                    return Err(format!("a {provider} body gave a {} event", e.provider));
                }
            }
        }
        Ok(())
    });
}

#[test]
fn fuzz_toast_envelope() {
    envelope_target(Provider::Toast);
}

#[test]
fn fuzz_square_envelope() {
    envelope_target(Provider::Square);
}

#[test]
fn fuzz_quickbooks_envelopes() {
    envelope_target(Provider::QuickBooks);
}

#[test]
fn fuzz_xero_envelope() {
    envelope_target(Provider::Xero);
}

/// Signature headers: arbitrary header bytes (mutations of a genuine
/// signature) over a genuine body never verify unless they are the genuine
/// signature, and never panic.
#[test]
fn fuzz_signature_headers() {
    let key = SecretString::from("fuzz-key".to_string());
    let k = keys("fuzz-key");
    for provider in [
        Provider::Toast,
        Provider::Square,
        Provider::QuickBooks,
        Provider::Xero,
    ] {
        let body = seeds(provider).remove(0);
        let parts = SignedParts {
            body: &body,
            url: Some(URL),
        };
        let genuine = sign(provider, parts, &key).unwrap();
        let header = signature_header(provider).unwrap();
        fuzz(
            &format!("{provider} {header} header"),
            vec![
                genuine.clone().into_bytes(),
                b"".to_vec(),
                b"sha256=".to_vec(),
            ],
            |raw| {
                let Ok(text) = std::str::from_utf8(raw) else {
                    // A header that is not text is refused before verify.
                    return Ok(());
                };
                match verify(provider, Some(text), parts, &k) {
                    Ok(_) if text.trim() != genuine => {
                        Err(format!("{text:?} verified but is not the signature"))
                    }
                    _ => Ok(()),
                }
            },
        );
    }
}

/// The same bodies, signed with another key: never verify.
#[test]
fn fuzz_wrong_key_never_verifies() {
    let wrong = SecretString::from("attacker-key".to_string());
    let k = keys("fuzz-key");
    let mut corpus = Vec::new();
    for p in [
        Provider::Toast,
        Provider::Square,
        Provider::QuickBooks,
        Provider::Xero,
    ] {
        corpus.extend(seeds(p));
    }
    fuzz("wrong-key signatures", corpus, |body| {
        for provider in [
            Provider::Toast,
            Provider::Square,
            Provider::QuickBooks,
            Provider::Xero,
        ] {
            let parts = SignedParts {
                body,
                url: Some(URL),
            };
            if let Ok(sig) = sign(provider, parts, &wrong)
                && verify(provider, Some(&sig), parts, &k).is_ok()
            {
                return Err(format!("{provider}: a signature with another key verified"));
            }
        }
        Ok(())
    });
}

/// `Content-Type` values: JSON types pass, the rest are refused, none panic.
#[test]
fn fuzz_content_type() {
    fuzz(
        "content type",
        vec![
            b"application/json".to_vec(),
            b"application/cloudevents+json; charset=utf-8".to_vec(),
            b"text/plain".to_vec(),
            // Found by this fuzzer: a non-ASCII parameter once made a JSON
            // media type "not readable text".
            b"application/cloudevents+jSon; charset=utf-8\xc3\xb1".to_vec(),
        ],
        |raw| {
            let Ok(value) = http::HeaderValue::from_bytes(raw) else {
                return Ok(());
            };
            let mut h = http::HeaderMap::new();
            h.insert(http::header::CONTENT_TYPE, value);
            let verdict = shared::webhooks::intake::json_content_type(&h);
            let media = raw
                .split(|b| *b == b';')
                .next()
                .and_then(|m| std::str::from_utf8(m).ok())
                .map(|m| m.trim().to_ascii_lowercase());
            let json = media.as_deref().is_some_and(|m| {
                m == "application/json" || (m.starts_with("application/") && m.ends_with("+json"))
            });
            if verdict.is_ok() != json {
                return Err(format!(
                    "{:?} judged {verdict:?}",
                    String::from_utf8_lossy(raw)
                ));
            }
            Ok(())
        },
    );
}

/// The intake's bodies, on an in-memory store: any answer but a panic; an
/// accepted body is a valid record of its kind.
#[test]
fn fuzz_intake_bodies() {
    use shared::adapters::file_secrets::FileSecrets;
    use shared::adapters::sqlite::SqliteStore;
    use shared::ops::intake::{Intake, IntakeAuth};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let dir = std::env::temp_dir().join(format!("hub-fuzz-{}", std::process::id()));
    let config = shared::Config::from_lookup(|_| None).unwrap();
    let stores = shared::Stores::embedded(
        SqliteStore::in_memory().unwrap(),
        FileSecrets::new(dir.join("s.json")),
        5,
        &config,
    );
    rt.block_on(stores.connections.put_tenant(&shared::model::Tenant {
        id: shared::ids::TenantId::new("bistro").unwrap(),
        name: "Bistro".into(),
    }))
    .unwrap();
    let intake = Intake::new(stores, IntakeAuth::Iam);
    let corpus = vec![
        br#"{"id": "po-1", "supplier_id": "acme", "location": "main", "delivery_date": "2026-12-02", "lines": [{"item_id": "flour", "quantity": "2.5", "unit": "bag", "unit_cost": "18.40"}], "notes": "weekly"}"#.to_vec(),
        br#"{"id": "dl-1", "purchase_order": "po-1", "invoice_number": "INV-77", "received_at": "2026-12-02T09:30:00Z", "lines": [{"item_id": "flour", "quantity_received": "2.5", "unit": "bag", "unit_cost": "18.40"}]}"#.to_vec(),
        br#"{"id": "t", "employee_id": "e", "location": "l", "clock_in": "2026-11-28T10:00:00Z", "clock_out": "2026-11-28T12:00:00Z", "breaks": [{"start": "2026-11-28T10:30:00Z", "end": "2026-11-28T11:00:00Z"}]}"#.to_vec(),
    ];
    let mut n = 0u64;
    let mut headers = http::HeaderMap::new();
    headers.insert(
        "content-type",
        http::HeaderValue::from_static("application/json"),
    );
    fuzz("intake bodies", corpus, |body| {
        n += 1;
        let mut h = headers.clone();
        h.insert(
            "idempotency-key",
            http::HeaderValue::from_str(&format!("k-{n}")).unwrap(),
        );
        for kind in ["purchase-orders", "deliveries", "time-entries"] {
            let r = rt.block_on(intake.handle("POST", &format!("bistro/{kind}"), &h, body));
            match r.status {
                202 => {
                    if serde_json::from_slice::<serde_json::Value>(body).is_err() {
                        return Err(format!("{kind}: accepted a body that is not JSON"));
                    }
                }
                400 | 413 | 422 => {
                    let v: serde_json::Value = serde_json::from_str(&r.body).map_err(|_| {
                        format!("{kind}: {} with a body that is not JSON", r.status)
                    })?;
                    if v["error"].as_str().is_none_or(str::is_empty) {
                        return Err(format!("{kind}: {} without a reason", r.status));
                    }
                }
                s => return Err(format!("{kind}: unexpected {s}: {}", r.body)),
            }
        }
        Ok(())
    });
}

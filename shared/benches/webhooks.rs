//! Webhook intake cost per delivery: signature verification plus envelope
//! parsing, for a 2 KB and a 600 KB body (Toast order payloads pass 600 kB),
//! and the whole intake path (verify, parse, claim, route, enqueue) on the
//! embedded store. Run with `cargo bench -p shared --bench webhooks`.

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use secrecy::SecretString;
use shared::model::Provider;
use shared::webhooks::{SignedParts, SigningKeys, parse_envelope, sign, verify};
use std::hint::black_box;

/// A Toast order webhook of about `target` bytes: one order whose check
/// carries as many selections as it takes.
fn toast_body(target: usize) -> Vec<u8> {
    let selection = serde_json::json!({
        "guid": "9f0bd3c1-7e53-4c2a-9b1a-0c5d8e2f4a61", "entityType": "MenuItemSelection",
        "displayName": "Cheeseburger", "quantity": 1, "price": 12.5, "tax": 1.03,
        "voided": false, "modifiers": [], "appliedDiscounts": []
    });
    let per = serde_json::to_vec(&selection).unwrap().len() + 1;
    let n = (target.saturating_sub(400) / per).max(1);
    let body = serde_json::json!({
        "timestamp": "2026-11-28T23:30:01.050Z",
        "eventCategory": "orders", "eventType": "order_updated",
        "guid": "534bf25a-b657-45aa-9a63-47f8f35400d6",
        "details": {
            "restaurantGuid": "0cd990c9-fd74-461d-8468-de2a0919ccbb",
            "order": {"guid": "f6d98b95-2816-4f54-b1ab-7a5d71e83769", "entityType": "Order",
                      "checks": [{"guid": "c1", "selections": vec![selection; n]}]}
        }
    });
    serde_json::to_vec(&body).unwrap()
}

fn bench_verify_and_parse(c: &mut Criterion) {
    let key: SecretString = "toast-subscription-secret".to_string().into();
    let keys = SigningKeys {
        current: key.clone(),
        previous: None,
    };
    let mut group = c.benchmark_group("verify_and_parse");
    for (label, size) in [("2KB", 2 * 1024), ("600KB", 600 * 1024)] {
        let body = toast_body(size);
        let parts = SignedParts {
            body: &body,
            url: None,
        };
        let sig = sign(Provider::Toast, parts, &key).unwrap();
        group.throughput(Throughput::Bytes(body.len() as u64));
        group.bench_with_input(BenchmarkId::new("toast", label), &body, |b, body| {
            b.iter(|| {
                let parts = SignedParts { body, url: None };
                let v = verify(Provider::Toast, Some(&sig), parts, &keys).unwrap();
                black_box(parse_envelope(&v, &http::HeaderMap::new()).unwrap())
            })
        });
        group.bench_with_input(
            BenchmarkId::new("toast_verify_only", label),
            &body,
            |b, body| {
                b.iter(|| {
                    let parts = SignedParts { body, url: None };
                    black_box(verify(Provider::Toast, Some(&sig), parts, &keys).unwrap());
                })
            },
        );
    }
    group.finish();
}

fn bench_intake_embedded(c: &mut Criterion) {
    use shared::adapters::file_secrets::FileSecrets;
    use shared::adapters::sqlite::SqliteStore;
    use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
    use shared::model::{Connection, Tenant, TimeZoneName};
    use shared::webhooks::{WebhookIntake, WebhookRequest, signing_key_secret};

    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = std::env::temp_dir().join(format!("hub-bench-{}", std::process::id()));
    let config = shared::Config::from_lookup(|_| None).unwrap();
    let stores = shared::Stores::embedded(
        SqliteStore::in_memory().unwrap(),
        FileSecrets::new(dir.join("secrets.json")),
        5,
        &config,
    );
    let key: SecretString = "toast-subscription-secret".to_string().into();
    rt.block_on(async {
        stores
            .secrets
            .put(&signing_key_secret(Provider::Toast), &key)
            .await
            .unwrap();
        let tenant = TenantId::new("bench").unwrap();
        stores
            .connections
            .put_tenant(&Tenant {
                id: tenant.clone(),
                name: "Bench".into(),
            })
            .await
            .unwrap();
        stores
            .connections
            .register(&Connection {
                id: ConnectionId::new("toast").unwrap(),
                tenant,
                provider: Provider::Toast,
                account_id: ProviderAccountId::new("0cd990c9-fd74-461d-8468-de2a0919ccbb").unwrap(),
                time_zone: TimeZoneName::new("America/New_York").unwrap(),
                business_day_close: Default::default(),
                credentials: SecretName::new("bench/toast").unwrap(),
                mappings: Default::default(),
                codes: Default::default(),
                currency: None,
                books: Default::default(),
            })
            .await
            .unwrap();
    });
    let intake = WebhookIntake::new(stores, Default::default());
    let headers = http::HeaderMap::new();
    let template = String::from_utf8(toast_body(2 * 1024)).unwrap();
    let mut n = 0u64;
    c.bench_function("intake_embedded/toast_2KB_new_event", |b| {
        b.iter(|| {
            n += 1;
            // A new event id each time: the full path, not the duplicate path.
            let body = template.replace(
                "534bf25a-b657-45aa-9a63-47f8f35400d6",
                &format!("bench-{n}"),
            );
            let sig = sign(
                Provider::Toast,
                SignedParts {
                    body: body.as_bytes(),
                    url: None,
                },
                &key,
            )
            .unwrap();
            let mut h = headers.clone();
            h.insert("toast-signature", sig.parse().unwrap());
            let r = rt.block_on(intake.handle(WebhookRequest {
                provider: "toast",
                method: "POST",
                headers: &h,
                body: body.as_bytes(),
                url: None,
            }));
            assert_eq!(r.status, 200, "{}", r.body);
        })
    });
    let _ = std::fs::remove_dir_all(dir);
}

criterion_group!(benches, bench_verify_and_parse, bench_intake_embedded);
criterion_main!(benches);

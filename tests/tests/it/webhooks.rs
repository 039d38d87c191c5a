//! Webhook deliveries over real HTTP to `hub serve`'s routes, signed with the
//! providers' own schemes, on both backends.

use crate::backends::{Backend, conformance};
use hub::serve::{AppState, run};
use shared::Stores;
use shared::ids::{ConnectionId, IdempotencyKey, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::ports::{
    ClaimOutcome, ClaimToken, ConnectionStore, IdempotencyStore, QueueDepth, StoreResult,
};
use shared::webhooks::{
    SignedParts, WebhookSettings, WorkItem, sign, signature_header, signing_key_secret,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

conformance!(
    each_providers_delivery_reaches_the_work_queue_routed_to_its_tenant,
    twenty_concurrent_copies_of_a_delivery_are_enqueued_once,
    a_later_redelivery_is_answered_as_a_duplicate,
    bad_input_is_refused_with_the_reason_and_nothing_is_stored,
    events_for_unknown_accounts_are_answered_200_and_kept_for_rerouting,
    xero_intent_to_receive_is_answered_by_signature,
    both_keys_are_accepted_while_a_key_is_rotated,
    an_event_too_large_for_a_queue_message_is_refused_413_and_nothing_is_stored,
    a_redelivery_completed_in_this_process_is_answered_without_asking_the_store,
    with_the_completed_cache_off_each_redelivery_asks_the_store,
    an_accounts_owner_is_read_once_per_routing_cache_period,
    with_the_routing_cache_off_each_event_reads_its_owner,
);

const SQUARE_URL: &str = "https://hooks.example.com/webhooks/square";
const MAX_BODY: usize = 64 * 1024;

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(format!("{}/fixtures/{path}", env!("CARGO_MANIFEST_DIR")))
        .unwrap_or_else(|e| panic!("fixture {path}: {e}"))
}

struct Hub {
    base: String,
    stores: Stores,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
    _backend: Backend,
}

/// The delivery fixtures and the accounts they name.
const DELIVERIES: [(Provider, &str, &str); 5] = [
    (
        Provider::Toast,
        "toast/webhook_order_updated.json",
        "0cd990c9-fd74-461d-8468-de2a0919ccbba",
    ),
    (
        Provider::Square,
        "square/webhook_test_notification.json",
        "MLEFBHHSJGVHD",
    ),
    (
        Provider::QuickBooks,
        "qbo/webhook_legacy_event_notifications.json",
        "1185883450",
    ),
    (
        Provider::QuickBooks,
        "qbo/webhook_cloudevents_salesreceipt_updated.json",
        "9341455*********",
    ),
    (
        Provider::Xero,
        "xero/webhook_contact_update.json",
        "c2cc9b6e-9458-4c7d-93cc-f02b81b0594f",
    ),
];

fn key_of(provider: Provider) -> String {
    format!("{provider}-signing-key")
}

async fn start(backend: Backend, register: bool) -> Hub {
    start_with(backend, register, MAX_BODY).await
}

async fn start_with(backend: Backend, register: bool, max_body_bytes: usize) -> Hub {
    start_tuned(backend, register, max_body_bytes, |_, _| {}).await
}

/// A hub whose stores and settings `tune` may change first (counting
/// wrappers, cache times).
async fn start_tuned(
    backend: Backend,
    register: bool,
    max_body_bytes: usize,
    tune: impl FnOnce(&mut Stores, &mut WebhookSettings),
) -> Hub {
    let mut stores = backend.stores(5).await;
    for p in [
        Provider::Toast,
        Provider::Square,
        Provider::QuickBooks,
        Provider::Xero,
    ] {
        stores
            .secrets
            .put(&signing_key_secret(p), &key_of(p).into())
            .await
            .unwrap();
    }
    if register {
        let tenant = TenantId::new("bistro").unwrap();
        stores
            .connections
            .put_tenant(&Tenant {
                id: tenant.clone(),
                name: "Bistro Group".into(),
            })
            .await
            .unwrap();
        for (i, (provider, _, account)) in DELIVERIES.iter().enumerate() {
            register_connection(&stores, &tenant, &format!("c{i}"), *provider, account).await;
        }
    }
    let mut settings = WebhookSettings {
        max_body_bytes,
        square_notification_url: Some(SQUARE_URL.into()),
        in_progress_wait: Duration::from_secs(10),
        ..Default::default()
    };
    tune(&mut stores, &mut settings);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(run(
        listener,
        AppState::new(stores.clone(), settings),
        async {
            let _ = stopped.await;
        },
    ));
    Hub {
        base,
        stores,
        http: reqwest::Client::new(),
        _stop: stop,
        _backend: backend,
    }
}

async fn register_connection(
    stores: &Stores,
    tenant: &TenantId,
    id: &str,
    provider: Provider,
    account: &str,
) {
    stores
        .connections
        .register(&Connection {
            id: ConnectionId::new(id).unwrap(),
            tenant: tenant.clone(),
            provider,
            account_id: ProviderAccountId::new(account).unwrap(),
            time_zone: TimeZoneName::new("America/New_York").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new(format!("{tenant}/{id}")).unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        })
        .await
        .unwrap();
}

fn signature(provider: Provider, body: &[u8], key: &str) -> String {
    let url = (provider == Provider::Square).then_some(SQUARE_URL);
    sign(provider, SignedParts { body, url }, &key.to_string().into()).unwrap()
}

struct Answer {
    status: u16,
    body: String,
    headers: reqwest::header::HeaderMap,
}

impl Hub {
    async fn post_raw(&self, path: &str, body: Vec<u8>, headers: &[(&str, String)]) -> Answer {
        let mut req = self.http.post(format!("{}{path}", self.base)).body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let resp = req.send().await.unwrap();
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap(),
        }
    }

    /// Posts `body` correctly signed for `provider`.
    async fn deliver(&self, provider: Provider, body: &[u8]) -> Answer {
        let sig = signature(provider, body, &key_of(provider));
        let header = signature_header(provider).unwrap();
        self.post_raw(
            &format!("/webhooks/{provider}"),
            body.to_vec(),
            &[(header, sig), ("content-type", "application/json".into())],
        )
        .await
    }

    async fn depths(&self) -> (QueueDepth, QueueDepth) {
        (
            self.stores.work_queue.depth().await.unwrap(),
            self.stores.unrouted_queue.depth().await.unwrap(),
        )
    }

    async fn work_items(&self) -> Vec<WorkItem> {
        let mut out = Vec::new();
        for _ in 0..10 {
            let got = self
                .stores
                .work_queue
                .receive(10, Duration::from_secs(60), Duration::from_millis(200))
                .await
                .unwrap();
            if got.is_empty() {
                break;
            }
            for m in got {
                out.push(serde_json::from_str(&m.body).unwrap());
            }
        }
        out
    }

    /// Asserts that nothing was enqueued or parked.
    async fn assert_nothing_stored(&self, case: &str) {
        let (work, unrouted) = self.depths().await;
        assert_eq!(
            (work, unrouted),
            (QueueDepth::default(), QueueDepth::default()),
            "{case}: something was queued"
        );
    }

    /// Asserts that an event's key was never claimed.
    async fn assert_unclaimed(&self, key: &str) {
        let key = IdempotencyKey::new(key).unwrap();
        let lease = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(1);
        assert!(
            matches!(
                self.stores.idempotency.claim(&key, lease).await.unwrap(),
                ClaimOutcome::Claimed(_)
            ),
            "{key} was claimed by a refused request"
        );
    }
}

async fn each_providers_delivery_reaches_the_work_queue_routed_to_its_tenant(b: Backend) {
    let hub = start(b, true).await;
    for (provider, path, _) in DELIVERIES {
        let a = hub.deliver(provider, &fixture(path)).await;
        assert_eq!(a.status, 200, "{path}: {}", a.body);
        if provider == Provider::Xero {
            assert_eq!(a.body, "", "Xero wants an empty 200");
        } else {
            let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
            assert_eq!(v["accepted"], 1, "{path}");
        }
    }
    let items = hub.work_items().await;
    assert_eq!(items.len(), DELIVERIES.len());
    for (i, (provider, path, account)) in DELIVERIES.iter().enumerate() {
        let item = items
            .iter()
            .find(|w| {
                w.event.account.as_ref().map(|a| a.as_str()) == Some(*account)
                    && w.event.provider == *provider
            })
            .unwrap_or_else(|| panic!("{path} not on the work queue"));
        assert_eq!(item.tenant.as_str(), "bistro");
        assert_eq!(item.connection.as_str(), format!("c{i}"));
    }
    let square = items
        .iter()
        .find(|w| w.event.provider == Provider::Square)
        .unwrap();
    assert_eq!(
        square.event.dedupe_key.as_str(),
        "ac3ac95b-f97d-458c-a6e6-18981597e05f"
    );
    assert_eq!(square.event.payload["merchant_id"], "MLEFBHHSJGVHD");
}

async fn twenty_concurrent_copies_of_a_delivery_are_enqueued_once(b: Backend) {
    let hub = std::sync::Arc::new(start(b, true).await);
    for (provider, path) in [
        (Provider::Square, "square/webhook_test_notification.json"),
        (Provider::Xero, "xero/webhook_contact_update.json"),
    ] {
        let body = fixture(path);
        let tasks: Vec<_> = (0..20)
            .map(|_| {
                let (hub, body) = (hub.clone(), body.clone());
                tokio::spawn(async move { hub.deliver(provider, &body).await.status })
            })
            .collect();
        for t in tasks {
            assert_eq!(t.await.unwrap(), 200, "{path}");
        }
    }
    let items = hub.work_items().await;
    assert_eq!(
        items.len(),
        2,
        "each event once: {:?}",
        items
            .iter()
            .map(|i| &i.event.dedupe_key)
            .collect::<Vec<_>>()
    );
}

async fn a_later_redelivery_is_answered_as_a_duplicate(b: Backend) {
    let hub = start(b, true).await;
    let body = fixture("qbo/webhook_legacy_event_notifications.json");
    assert_eq!(hub.deliver(Provider::QuickBooks, &body).await.status, 200);
    let again = hub.deliver(Provider::QuickBooks, &body).await;
    assert_eq!(again.status, 200);
    let v: serde_json::Value = serde_json::from_str(&again.body).unwrap();
    assert_eq!(
        (v["accepted"].as_u64(), v["duplicates"].as_u64()),
        (Some(0), Some(1))
    );
    assert_eq!(hub.work_items().await.len(), 1);
}

async fn bad_input_is_refused_with_the_reason_and_nothing_is_stored(b: Backend) {
    let hub = start(b, true).await;
    let body = fixture("square/webhook_test_notification.json");
    let square_key = "webhook:square:ac3ac95b-f97d-458c-a6e6-18981597e05f";
    let header = "x-square-hmacsha256-signature";

    let a = hub.post_raw("/webhooks/square", body.clone(), &[]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            401,
            r#"{"error":"missing x-square-hmacsha256-signature header"}"#
        )
    );
    hub.assert_nothing_stored("no signature").await;

    let forged = signature(Provider::Square, &body, "not-the-key");
    let a = hub
        .post_raw("/webhooks/square", body.clone(), &[(header, forged)])
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            401,
            r#"{"error":"x-square-hmacsha256-signature signature does not match the body"}"#
        )
    );
    hub.assert_nothing_stored("wrong key").await;

    let good = signature(Provider::Square, &body, &key_of(Provider::Square));
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    let a = hub
        .post_raw("/webhooks/square", tampered, &[(header, good.clone())])
        .await;
    assert_eq!(a.status, 401, "tampered body: {}", a.body);
    let a = hub
        .post_raw(
            "/webhooks/square",
            body.clone(),
            &[(header, good[..good.len() - 4].to_string())],
        )
        .await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            401,
            r#"{"error":"x-square-hmacsha256-signature header is not a base64 HMAC-SHA256 signature"}"#
        )
    );
    hub.assert_nothing_stored("tampered or truncated").await;

    let malformed = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"x","event_id":"e1""#.to_vec();
    let a = hub.deliver(Provider::Square, &malformed).await;
    assert_eq!(a.status, 400);
    assert!(
        a.body
            .contains("malformed square webhook: EOF while parsing"),
        "{}",
        a.body
    );
    let missing = br#"{"merchant_id":"MLEFBHHSJGVHD","type":"payment.updated"}"#;
    let a = hub.deliver(Provider::Square, missing).await;
    assert_eq!(a.status, 400);
    assert!(a.body.contains("missing field `event_id`"), "{}", a.body);
    hub.assert_nothing_stored("malformed or incomplete").await;

    let mut big = body.clone();
    big.resize(MAX_BODY + 1, b' ');
    let a = hub.deliver(Provider::Square, &big).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (
            413,
            r#"{"error":"body of 65537 bytes is over the 65536-byte limit"}"#
        )
    );
    hub.assert_nothing_stored("oversized").await;

    let a = hub
        .http
        .get(format!("{}/webhooks/square", hub.base))
        .send()
        .await
        .unwrap();
    assert_eq!(a.status(), 405);
    assert_eq!(a.headers()["allow"], "POST");
    assert_eq!(
        a.text().await.unwrap(),
        r#"{"error":"GET is not allowed: webhooks are POSTed"}"#
    );

    let a = hub
        .post_raw("/webhooks/paypal", body.clone(), &[(header, good.clone())])
        .await;
    assert_eq!(a.status, 404);
    assert!(
        a.body.contains(r#"no webhook endpoint for \"paypal\""#),
        "{}",
        a.body
    );
    let a = hub.post_raw("/webhooks/marketman", body.clone(), &[]).await;
    assert_eq!(
        a.status, 404,
        "MarketMan does not sign webhooks: {}",
        a.body
    );
    hub.assert_nothing_stored("wrong method or provider").await;
    hub.assert_unclaimed(square_key).await;
    let _ = a.headers;
}

async fn events_for_unknown_accounts_are_answered_200_and_kept_for_rerouting(b: Backend) {
    let hub = start(b, false).await;
    let body = fixture("toast/webhook_menus_updated.json");
    let a = hub.deliver(Provider::Toast, &body).await;
    assert_eq!(a.status, 200, "{}", a.body);
    let v: serde_json::Value = serde_json::from_str(&a.body).unwrap();
    assert_eq!(v["unrouted"], 1);
    let (work, unrouted) = hub.depths().await;
    assert_eq!((work.visible, unrouted.visible), (0, 1));

    let list = shared::webhooks::unrouted::list(&hub.stores, 10)
        .await
        .unwrap();
    assert_eq!(list.len(), 1);
    let item = list[0].item.as_ref().unwrap();
    assert_eq!(
        item.event.account.as_ref().unwrap().as_str(),
        "00000000-1111-2222-3333-444444444444"
    );
    // Listing leaves it in place.
    assert_eq!(
        shared::webhooks::unrouted::list(&hub.stores, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert_eq!(
        shared::webhooks::unrouted::reroute(&hub.stores)
            .await
            .unwrap(),
        (0, 1)
    );

    let tenant = TenantId::new("late").unwrap();
    hub.stores
        .connections
        .put_tenant(&Tenant {
            id: tenant.clone(),
            name: "Late".into(),
        })
        .await
        .unwrap();
    register_connection(
        &hub.stores,
        &tenant,
        "toast",
        Provider::Toast,
        "00000000-1111-2222-3333-444444444444",
    )
    .await;
    assert_eq!(
        shared::webhooks::unrouted::reroute(&hub.stores)
            .await
            .unwrap(),
        (1, 0)
    );
    let items = hub.work_items().await;
    assert_eq!(items.len(), 1);
    assert_eq!(items[0].tenant, tenant);
    assert!(
        shared::webhooks::unrouted::list(&hub.stores, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn xero_intent_to_receive_is_answered_by_signature(b: Backend) {
    let hub = start(b, true).await;
    let itr =
        br#"{"events":[],"lastEventSequence":0,"firstEventSequence":0,"entropy":"S0m3r4Nd0mt3xt"}"#;
    let a = hub.deliver(Provider::Xero, itr).await;
    assert_eq!((a.status, a.body.as_str()), (200, ""));
    assert!(a.headers.get("content-type").is_none());
    let bad = signature(Provider::Xero, itr, "wrong");
    let a = hub
        .post_raw("/webhooks/xero", itr.to_vec(), &[("x-xero-signature", bad)])
        .await;
    assert_eq!(a.status, 401);
    hub.assert_nothing_stored("intent to receive").await;
}

async fn both_keys_are_accepted_while_a_key_is_rotated(b: Backend) {
    let hub = start(b, true).await;
    let old_signed = fixture("qbo/webhook_legacy_event_notifications.json");
    let new_signed = fixture("qbo/webhook_cloudevents_salesreceipt_updated.json");
    hub.stores
        .secrets
        .put(
            &signing_key_secret(Provider::QuickBooks),
            &"rotated-verifier".to_string().into(),
        )
        .await
        .unwrap();
    let header = "intuit-signature";
    let a = hub
        .post_raw(
            "/webhooks/quickbooks",
            old_signed.clone(),
            &[(
                header,
                signature(
                    Provider::QuickBooks,
                    &old_signed,
                    &key_of(Provider::QuickBooks),
                ),
            )],
        )
        .await;
    assert_eq!(a.status, 200, "previous key: {}", a.body);
    let a = hub
        .post_raw(
            "/webhooks/quickbooks",
            new_signed.clone(),
            &[(
                header,
                signature(Provider::QuickBooks, &new_signed, "rotated-verifier"),
            )],
        )
        .await;
    assert_eq!(a.status, 200, "current key: {}", a.body);
    assert_eq!(hub.work_items().await.len(), 2);
}

/// The body limit (2 MiB by default) is above what one queue message holds
/// (256 KiB): an event that cannot travel as a message is refused with 413
/// before anything is stored, rather than answered 503 and sent again by
/// the provider forever.
async fn an_event_too_large_for_a_queue_message_is_refused_413_and_nothing_is_stored(b: Backend) {
    let hub = start_with(b, true, 2 * 1024 * 1024).await;
    let mut event: serde_json::Value =
        serde_json::from_slice(&fixture("square/webhook_test_notification.json")).unwrap();
    event["data"]["object"]["note"] = "x".repeat(300_000).into();
    let body = serde_json::to_vec(&event).unwrap();
    let a = hub.deliver(Provider::Square, &body).await;
    assert_eq!(a.status, 413, "{}", a.body);
    assert!(
        a.body.contains("more than a queue message holds") && a.body.contains("nothing was stored"),
        "{}",
        a.body
    );
    hub.assert_nothing_stored("an event too large for a message")
        .await;
    hub.assert_unclaimed("webhook:square:ac3ac95b-f97d-458c-a6e6-18981597e05f")
        .await;
    // The same event at its own size is accepted.
    let a = hub
        .deliver(
            Provider::Square,
            &fixture("square/webhook_test_notification.json"),
        )
        .await;
    assert_eq!(a.status, 200, "{}", a.body);
}

/// The real idempotency store, counting the claims made on it.
#[derive(Debug)]
struct CountingClaims {
    inner: Arc<dyn IdempotencyStore>,
    claims: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl IdempotencyStore for CountingClaims {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        lease_until: jiff::Timestamp,
    ) -> StoreResult<ClaimOutcome> {
        self.claims.fetch_add(1, Ordering::SeqCst);
        self.inner.claim(key, lease_until).await
    }
    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        result: Option<&str>,
        retain_until: jiff::Timestamp,
    ) -> StoreResult<()> {
        self.inner.complete(key, token, result, retain_until).await
    }
    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> StoreResult<()> {
        self.inner.release(key, token).await
    }
}

/// The real connection store, counting the account look-ups made on it.
#[derive(Debug)]
struct CountingLookups {
    inner: Arc<dyn ConnectionStore>,
    lookups: Arc<AtomicUsize>,
}

#[async_trait::async_trait]
impl ConnectionStore for CountingLookups {
    async fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        self.inner.put_tenant(tenant).await
    }
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.inner.get_tenant(id).await
    }
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.inner.list_tenants().await
    }
    async fn register(&self, connection: &Connection) -> StoreResult<()> {
        self.inner.register(connection).await
    }
    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> StoreResult<Option<Connection>> {
        self.inner.get(tenant, id).await
    }
    async fn list_for_tenant(&self, tenant: &TenantId) -> StoreResult<Vec<Connection>> {
        self.inner.list_for_tenant(tenant).await
    }
    async fn list_all(&self) -> StoreResult<Vec<Connection>> {
        self.inner.list_all().await
    }
    async fn find_by_account(
        &self,
        provider: Provider,
        account: &ProviderAccountId,
    ) -> StoreResult<Option<Connection>> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.inner.find_by_account(provider, account).await
    }
}

/// Redelivers one delivery `times` times to a hub whose completed-event
/// cache lasts `ttl`; the claims the store saw.
async fn claims_for_redeliveries(b: Backend, ttl: Duration, times: usize) -> usize {
    let claims = Arc::new(AtomicUsize::new(0));
    let counter = claims.clone();
    let hub = start_tuned(b, true, MAX_BODY, move |stores, settings| {
        stores.idempotency = Arc::new(CountingClaims {
            inner: stores.idempotency.clone(),
            claims: counter,
        });
        settings.completed_cache_ttl = ttl;
    })
    .await;
    let body = fixture("square/webhook_test_notification.json");
    let first = hub.deliver(Provider::Square, &body).await;
    assert_eq!(first.status, 200, "{}", first.body);
    for _ in 0..times {
        let again = hub.deliver(Provider::Square, &body).await;
        let v: serde_json::Value = serde_json::from_str(&again.body).unwrap();
        assert_eq!(
            (
                again.status,
                v["accepted"].as_u64(),
                v["duplicates"].as_u64()
            ),
            (200, Some(0), Some(1)),
            "{}",
            again.body
        );
    }
    assert_eq!(hub.work_items().await.len(), 1, "queued once");
    claims.load(Ordering::SeqCst)
}

/// A redelivery of an event this process completed is a duplicate without a
/// store round trip.
async fn a_redelivery_completed_in_this_process_is_answered_without_asking_the_store(b: Backend) {
    let claims = claims_for_redeliveries(b, Duration::from_secs(600), 3).await;
    assert_eq!(claims, 1, "only the first delivery claims");
}

/// With the completed-event cache off, each redelivery asks the store (and
/// is told the same).
async fn with_the_completed_cache_off_each_redelivery_asks_the_store(b: Backend) {
    let claims = claims_for_redeliveries(b, Duration::ZERO, 3).await;
    assert_eq!(claims, 4);
}

/// Delivers `n` Square events of one merchant to a hub whose routing cache
/// lasts `ttl`; the account look-ups the store saw.
async fn lookups_for_events(b: Backend, ttl: Duration, n: usize) -> usize {
    let lookups = Arc::new(AtomicUsize::new(0));
    let counter = lookups.clone();
    let hub = start_tuned(b, true, MAX_BODY, move |stores, settings| {
        stores.connections = Arc::new(CountingLookups {
            inner: stores.connections.clone(),
            lookups: counter,
        });
        settings.routing_cache_ttl = ttl;
    })
    .await;
    let template = String::from_utf8(fixture("square/webhook_test_notification.json")).unwrap();
    for i in 0..n {
        let body = template.replace(
            "ac3ac95b-f97d-458c-a6e6-18981597e05f",
            &format!("routing-cache-{i}"),
        );
        let a = hub.deliver(Provider::Square, body.as_bytes()).await;
        assert_eq!(a.status, 200, "{}", a.body);
    }
    let items = hub.work_items().await;
    assert_eq!(items.len(), n, "every event queued");
    assert!(
        items.iter().all(|i| i.connection.as_str() == "c1"),
        "every event routed to the merchant's connection"
    );
    lookups.load(Ordering::SeqCst)
}

/// The owner of an account is read once and reused for the routing cache's
/// time.
async fn an_accounts_owner_is_read_once_per_routing_cache_period(b: Backend) {
    assert_eq!(lookups_for_events(b, Duration::from_secs(60), 4).await, 1);
}

/// With the routing cache off, the owner is read for every event.
async fn with_the_routing_cache_off_each_event_reads_its_owner(b: Backend) {
    assert_eq!(lookups_for_events(b, Duration::ZERO, 4).await, 4);
}

//! The webhook request path, shared by the Lambda functions and `hub serve`.
//!
//! Order of checks, each refusing before anything is stored: unknown provider
//! (404), wrong method (405), body over the limit (413), a `Content-Type`
//! that is not JSON (415), signature (401), envelope (400). Then each event's dedupe key is claimed, the event routed by
//! its provider account, and the claimed events enqueued in one batch before
//! the claims are completed. A correctly signed event no tenant owns is
//! answered 200 and parked on the unrouted queue for an operator.
//!
//! A duplicate whose first delivery is still being enqueued is waited for
//! briefly; if that delivery has not finished, the duplicate is answered 503
//! with `Retry-After`, so the provider sends it again rather than it being
//! lost if the first one fails.

use super::events::{WebhookEvent, parse_envelope};
use super::verify::{SignedParts, SigningKeys, VerifyError, signature_header, signs_url, verify};
use crate::Stores;
use crate::ids::{ConnectionId, IdempotencyKey, ProviderAccountId, SecretName, TenantId};
use crate::model::Provider;
use crate::ports::{ClaimOutcome, ClaimToken, OutgoingMessage, StoreError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use tokio::sync::Mutex;

/// Tunables of the intake, with the defaults the functions use.
#[derive(Debug, Clone)]
pub struct WebhookSettings {
    /// Bodies larger than this are refused with 413 (Toast orders can pass 600 kB).
    pub max_body_bytes: usize,
    /// Square signs the subscription's notification URL: set it here when the
    /// URL the hub sees differs (behind API Gateway or a proxy).
    pub square_notification_url: Option<String>,
    /// How long a claim is held while its event is enqueued.
    pub claim_lease: Duration,
    /// How long a completed event is remembered (providers retry for up to 72 h).
    pub retention: Duration,
    /// How long a duplicate waits for the first delivery to finish.
    pub in_progress_wait: Duration,
    /// Least time between two re-reads of a signing key after a mismatch
    /// (a rotated key is picked up at once, a forgery does not cost a read).
    pub key_refresh_interval: Duration,
    /// How long the tenant found for a provider account is reused without
    /// reading the connection again (zero: read it for every event). Only
    /// found owners are kept: an account connected a moment ago is routed at
    /// once, and an account moved to another connection is routed to the
    /// new one within this time.
    pub routing_cache_ttl: Duration,
    /// How long an event this process saw completed is answered as a
    /// duplicate from memory, without asking the idempotency store again
    /// (zero: ask the store every time). Never longer than the record's own
    /// retention; at most [`COMPLETED_CACHE_ENTRIES`] events are kept. A
    /// completed record never becomes incomplete, so the answer is the one
    /// the store would give (Powertools' `use_local_cache`).
    pub completed_cache_ttl: Duration,
}

/// The most completed events one process remembers.
pub const COMPLETED_CACHE_ENTRIES: usize = 10_000;

impl Default for WebhookSettings {
    fn default() -> Self {
        WebhookSettings {
            max_body_bytes: 2 * 1024 * 1024,
            square_notification_url: None,
            claim_lease: Duration::from_secs(30),
            retention: Duration::from_secs(7 * 24 * 3600),
            in_progress_wait: Duration::from_secs(1),
            key_refresh_interval: Duration::from_secs(30),
            routing_cache_ttl: Duration::from_secs(60),
            completed_cache_ttl: Duration::from_secs(600),
        }
    }
}

/// An HTTP request, as any front end (Lambda, axum) received it.
#[derive(Debug)]
pub struct WebhookRequest<'a> {
    /// The `{provider}` path segment.
    pub provider: &'a str,
    /// The HTTP method.
    pub method: &'a str,
    /// The headers.
    pub headers: &'a http::HeaderMap,
    /// The raw body, exactly as received (base64 already decoded).
    pub body: &'a [u8],
    /// The URL the request was sent to, as the hub can tell (Square's
    /// signature covers it when no notification URL is configured).
    pub url: Option<String>,
}

/// The answer to send back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookResponse {
    /// HTTP status.
    pub status: u16,
    /// Body: JSON, or empty (Xero wants no body on 200).
    pub body: String,
    /// Seconds the provider should wait before sending again (503).
    pub retry_after: Option<u64>,
    /// Methods allowed (405).
    pub allow: Option<&'static str>,
}

impl WebhookResponse {
    fn json(status: u16, value: serde_json::Value) -> Self {
        WebhookResponse {
            status,
            body: value.to_string(),
            retry_after: None,
            allow: None,
        }
    }

    fn error(status: u16, message: impl Into<String>) -> Self {
        Self::json(status, serde_json::json!({ "error": message.into() }))
    }

    /// The `Content-Type` of the body, if it has one.
    pub fn content_type(&self) -> Option<&'static str> {
        (!self.body.is_empty()).then_some("application/json")
    }
}

/// What goes on the work queue for one routed event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkItem {
    /// Whose event.
    pub tenant: TenantId,
    /// The connection it came through.
    pub connection: ConnectionId,
    /// The event.
    pub event: WebhookEvent,
    /// When the hub accepted it.
    pub received_at: Timestamp,
}

/// What goes on the unrouted queue: an event no tenant owns (yet).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnroutedItem {
    /// The event.
    pub event: WebhookEvent,
    /// When the hub accepted it.
    pub received_at: Timestamp,
}

/// Checks a request's `Content-Type`: absent, `application/json` or any
/// `application/*+json` (CloudEvents) passes, parameters aside; anything else
/// is refused with the reason.
pub fn json_content_type(headers: &http::HeaderMap) -> Result<(), String> {
    let Some(value) = headers.get(http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    // Only the media type matters; parameters (charset, ...) may hold any byte.
    let bytes = value.as_bytes();
    let media = bytes.split(|b| *b == b';').next().unwrap_or_default();
    let media = std::str::from_utf8(media)
        .ok()
        .map(|m| m.trim().to_ascii_lowercase());
    match media.as_deref() {
        Some("application/json") => Ok(()),
        Some(m) if m.starts_with("application/") && m.ends_with("+json") => Ok(()),
        Some(m) => Err(format!(
            "Content-Type {m:?} is not JSON: send application/json"
        )),
        None => Err("Content-Type is not readable text: send application/json".into()),
    }
}

/// The secret holding a provider's webhook signing key (its previous version
/// is accepted during rotation).
pub fn signing_key_secret(provider: Provider) -> SecretName {
    SecretName::new(format!("webhooks/{provider}"))
        .unwrap_or_else(|_| unreachable!("provider names are valid secret names"))
}

/// The idempotency key of an event.
pub fn event_key(event: &WebhookEvent) -> IdempotencyKey {
    // Dedupe keys are at most 200 bytes with no separator (longer ones are
    // hashed when the envelope is read), so this key is always valid.
    IdempotencyKey::new(format!("webhook:{}:{}", event.provider, event.dedupe_key))
        .unwrap_or_else(|e| unreachable!("dedupe keys are bounded: {e}"))
}

/// The webhook intake, built once per process.
#[derive(Debug)]
pub struct WebhookIntake {
    stores: Stores,
    settings: WebhookSettings,
    last_key_refresh: Mutex<HashMap<Provider, Instant>>,
    /// Owners of provider accounts, as last read, and when.
    routes: std::sync::Mutex<HashMap<(Provider, String), Route>>,
    /// Events seen completed, until when they may be answered from memory.
    completed: std::sync::Mutex<HashMap<IdempotencyKey, Instant>>,
}

/// Where a provider account's events go, as read at `at`.
#[derive(Debug, Clone)]
struct Route {
    tenant: TenantId,
    connection: ConnectionId,
    at: Instant,
}

fn to_std(d: Duration) -> SignedDuration {
    SignedDuration::try_from(d).unwrap_or(SignedDuration::MAX)
}

impl WebhookIntake {
    /// An intake on `stores`.
    pub fn new(stores: Stores, settings: WebhookSettings) -> Self {
        WebhookIntake {
            stores,
            settings,
            last_key_refresh: Mutex::new(HashMap::new()),
            routes: std::sync::Mutex::new(HashMap::new()),
            completed: std::sync::Mutex::new(HashMap::new()),
        }
    }

    /// The stores it writes to.
    pub fn stores(&self) -> &Stores {
        &self.stores
    }

    /// The largest body accepted; front ends stop reading past it.
    pub fn max_body_bytes(&self) -> usize {
        self.settings.max_body_bytes
    }

    /// The checks that need no body: the provider (404) and the method (405).
    pub fn precheck(&self, provider: &str, method: &str) -> Result<Provider, WebhookResponse> {
        let Some(provider) = provider
            .parse::<Provider>()
            .ok()
            .filter(|p| signature_header(*p).is_some())
        else {
            return Err(WebhookResponse::error(
                404,
                format!(
                    "no webhook endpoint for {provider:?}: expected {}",
                    crate::providers::registry::webhook_providers()
                        .map(|p| p.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        };
        if !method.eq_ignore_ascii_case("POST") {
            let mut r = WebhookResponse::error(
                405,
                format!("{method} is not allowed: webhooks are POSTed"),
            );
            r.allow = Some("POST");
            return Err(r);
        }
        Ok(provider)
    }

    /// The answer for a body over the limit (`size`: its length, where known).
    pub fn too_large(&self, size: Option<usize>) -> WebhookResponse {
        let size = size.map_or_else(|| "the body".to_string(), |n| format!("body of {n} bytes"));
        WebhookResponse::error(
            413,
            format!(
                "{size} is over the {}-byte limit",
                self.settings.max_body_bytes
            ),
        )
    }

    /// Handles one delivery and says what to answer.
    pub async fn handle(&self, req: WebhookRequest<'_>) -> WebhookResponse {
        let provider = match self.precheck(req.provider, req.method) {
            Ok(p) => p,
            Err(r) => return r,
        };
        if req.body.len() > self.settings.max_body_bytes {
            return self.too_large(Some(req.body.len()));
        }
        if let Err(why) = json_content_type(req.headers) {
            tracing::warn!(%provider, status = 415, reason = %why, "webhook refused");
            return WebhookResponse::error(415, why);
        }
        let outcome = self.accept(provider, &req).await;
        match &outcome {
            Ok(r) | Err(r) if r.status >= 400 => {
                tracing::warn!(%provider, status = r.status, reason = %r.body, "webhook refused");
            }
            _ => {}
        }
        outcome.unwrap_or_else(|r| r)
    }

    /// The signing keys; the previous version (rotation) only when
    /// `with_previous`, so a delivery signed with the current key costs one
    /// secret read per cache period, not two.
    async fn keys(
        &self,
        provider: Provider,
        with_previous: bool,
    ) -> Result<SigningKeys, WebhookResponse> {
        let name = signing_key_secret(provider);
        let current = self.stores.secrets.get(&name).await.map_err(|e| {
            tracing::error!(%provider, error = %e, "webhook signing key unavailable");
            match e {
                StoreError::NotFound(_) => WebhookResponse::error(
                    503,
                    format!("{provider} webhooks are not configured on this hub"),
                ),
                _ => unavailable("the signing key could not be read"),
            }
        })?;
        let previous = if with_previous {
            self.stores
                .secrets
                .get_previous(&name)
                .await
                .map_err(|_| unavailable("the signing key could not be read"))?
        } else {
            None
        };
        Ok(SigningKeys { current, previous })
    }

    /// Whether a mismatch may re-read the key (rate-limited per provider).
    async fn may_refresh(&self, provider: Provider) -> bool {
        let mut last = self.last_key_refresh.lock().await;
        let now = Instant::now();
        match last.get(&provider) {
            Some(at) if now.duration_since(*at) < self.settings.key_refresh_interval => false,
            _ => {
                last.insert(provider, now);
                true
            }
        }
    }

    async fn accept(
        &self,
        provider: Provider,
        req: &WebhookRequest<'_>,
    ) -> Result<WebhookResponse, WebhookResponse> {
        let header = |name: &str| req.headers.get(name).and_then(|v| v.to_str().ok());
        let signature = signature_header(provider).and_then(header);
        let url = if signs_url(provider) {
            self.settings
                .square_notification_url
                .clone()
                .or_else(|| req.url.clone())
        } else {
            None
        };
        let parts = SignedParts {
            body: req.body,
            url: url.as_deref(),
        };
        let mut keys = self.keys(provider, false).await?;
        let mut verified = verify(provider, signature, parts, &keys);
        if matches!(verified, Err(VerifyError::Mismatch(_))) {
            // Signed with the previous key, during a rotation?
            keys = self.keys(provider, true).await?;
            verified = verify(provider, signature, parts, &keys);
        }
        if matches!(verified, Err(VerifyError::Mismatch(_))) && self.may_refresh(provider).await {
            // The key may have been rotated since it was cached.
            self.stores
                .secrets
                .invalidate(&signing_key_secret(provider))
                .await;
            keys = self.keys(provider, true).await?;
            verified = verify(provider, signature, parts, &keys);
        }
        let verified = verified.map_err(|e| match e {
            VerifyError::MissingUrl => unavailable("no Square notification URL is configured"),
            e => WebhookResponse::error(401, e.to_string()),
        })?;
        let envelope = parse_envelope(&verified, req.headers)
            .map_err(|e| WebhookResponse::error(400, e.to_string()))?;
        let ok_body = |v: serde_json::Value| {
            if provider == Provider::Xero {
                // Xero: 200 with no body.
                WebhookResponse {
                    status: 200,
                    body: String::new(),
                    retry_after: None,
                    allow: None,
                }
            } else {
                WebhookResponse::json(200, v)
            }
        };
        if envelope.events.is_empty() {
            return Ok(ok_body(
                serde_json::json!({"accepted": 0, "duplicates": 0, "unrouted": 0}),
            ));
        }
        self.enqueue(envelope.events).await.map(|c| {
            ok_body(serde_json::json!({
                "accepted": c.accepted, "duplicates": c.duplicates, "unrouted": c.unrouted,
            }))
        })
    }

    /// Claims, routes and enqueues the events of one delivery.
    async fn enqueue(&self, events: Vec<WebhookEvent>) -> Result<Counts, WebhookResponse> {
        // Each event travels as one queue message. One that cannot fit is
        // refused now, before anything is stored: a 503 would have the
        // provider send it again forever.
        for event in &events {
            let size = serde_json::to_vec(event).map_or(usize::MAX, |v| v.len());
            if size.saturating_add(MESSAGE_ENVELOPE_BYTES) > crate::ports::MAX_MESSAGE_BYTES {
                return Err(WebhookResponse::error(
                    413,
                    format!(
                        "event {} is {size} bytes, more than a queue message holds ({} bytes \
                         with the hub's envelope); nothing was stored",
                        event.dedupe_key,
                        crate::ports::MAX_MESSAGE_BYTES
                    ),
                ));
            }
        }
        let now = Timestamp::now();
        let lease_until = now + to_std(self.settings.claim_lease);
        let mut counts = Counts::default();
        let mut claimed: Vec<(IdempotencyKey, ClaimToken)> = Vec::new();
        let mut routed = Vec::new();
        let mut unrouted = Vec::new();
        let mut still_in_progress = false;
        let received_at = now;

        let result: Result<(), WebhookResponse> = async {
            for event in events {
                let key = event_key(&event);
                if self.seen_completed(&key) {
                    counts.duplicates += 1;
                    continue;
                }
                match self.claim(&key, lease_until).await? {
                    Claim::Mine(token) => claimed.push((key, token)),
                    Claim::Done(retained_until) => {
                        self.remember_completed(key, retained_until);
                        counts.duplicates += 1;
                        continue;
                    }
                    Claim::Busy => {
                        still_in_progress = true;
                        continue;
                    }
                }
                let owner = match &event.account {
                    Some(acct) => self.route(event.provider, acct).await?,
                    None => None,
                };
                match owner {
                    Some(r) => routed.push(WorkItem {
                        tenant: r.tenant,
                        connection: r.connection,
                        event,
                        received_at,
                    }),
                    None => unrouted.push(UnroutedItem { event, received_at }),
                }
            }
            if !routed.is_empty() {
                let msgs = routed.iter().map(to_message).collect::<Vec<_>>();
                self.stores
                    .work_queue
                    .send_batch(&msgs)
                    .await
                    .map_err(|e| store_failure("enqueue the events", e))?;
            }
            if !unrouted.is_empty() {
                for u in &unrouted {
                    tracing::warn!(provider = %u.event.provider, account = ?u.event.account.as_ref().map(|a| a.as_str()),
                        event = %u.event.dedupe_key, "signed event for an account no tenant owns: parked on the unrouted queue");
                }
                let msgs = unrouted.iter().map(to_message).collect::<Vec<_>>();
                self.stores
                    .unrouted_queue
                    .send_batch(&msgs)
                    .await
                    .map_err(|e| store_failure("park the unrouted events", e))?;
            }
            Ok(())
        }
        .await;

        if let Err(resp) = result {
            for (key, token) in &claimed {
                if let Err(e) = self.stores.idempotency.release(key, token).await {
                    tracing::warn!(key = %key, error = %e, "could not release a claim; it expires with its lease");
                }
            }
            return Err(resp);
        }
        let retain_until = Timestamp::now() + to_std(self.settings.retention);
        for (key, token) in &claimed {
            if let Err(e) = self
                .stores
                .idempotency
                .complete(key, token, None, retain_until)
                .await
            {
                // The event is queued; at worst a redelivery after the lease
                // queues it again, which the ledger absorbs.
                tracing::warn!(key = %key, error = %e, "could not complete a claim");
            } else {
                self.remember_completed(key.clone(), retain_until);
            }
        }
        counts.accepted = routed.len();
        counts.unrouted = unrouted.len();
        tracing::info!(
            accepted = counts.accepted,
            duplicates = counts.duplicates,
            unrouted = counts.unrouted,
            in_progress = still_in_progress,
            "webhook accepted"
        );
        if still_in_progress {
            let mut r = WebhookResponse::error(
                503,
                "an earlier delivery of this event is still being accepted; send it again",
            );
            r.retry_after = Some(5);
            return Err(r);
        }
        Ok(counts)
    }

    /// The tenant and connection owning `account`: from the routing cache
    /// while fresh, else read from the connection store (and cached when
    /// found).
    async fn route(
        &self,
        provider: Provider,
        account: &ProviderAccountId,
    ) -> Result<Option<Route>, WebhookResponse> {
        let ttl = self.settings.routing_cache_ttl;
        let key = (provider, account.as_str().to_string());
        if let Some(r) = self.routes_lock().get(&key)
            && r.at.elapsed() < ttl
        {
            return Ok(Some(r.clone()));
        }
        let found = self
            .stores
            .connections
            .find_by_account(provider, account)
            .await
            .map_err(|e| store_failure("look up the account's tenant", e))?;
        let mut routes = self.routes_lock();
        let Some(c) = found else {
            routes.remove(&key);
            return Ok(None);
        };
        let route = Route {
            tenant: c.tenant,
            connection: c.id,
            at: Instant::now(),
        };
        if !ttl.is_zero() {
            routes.insert(key, route.clone());
        }
        Ok(Some(route))
    }

    /// Whether this process saw `key` completed within the cache's time.
    fn seen_completed(&self, key: &IdempotencyKey) -> bool {
        let mut done = self.completed_lock();
        match done.get(key) {
            Some(until) if Instant::now() < *until => true,
            Some(_) => {
                done.remove(key);
                false
            }
            None => false,
        }
    }

    /// Remembers `key` as completed, until the cache's time ends or the
    /// record's retention (`retained_until`), whichever is first.
    fn remember_completed(&self, key: IdempotencyKey, retained_until: Timestamp) {
        let ttl = self.settings.completed_cache_ttl;
        let left = Timestamp::now()
            .duration_until(retained_until)
            .try_into()
            .unwrap_or(Duration::ZERO);
        let keep = ttl.min(left);
        if keep.is_zero() {
            return;
        }
        let now = Instant::now();
        let mut done = self.completed_lock();
        if done.len() >= COMPLETED_CACHE_ENTRIES {
            done.retain(|_, until| now < *until);
        }
        if done.len() >= COMPLETED_CACHE_ENTRIES {
            // Still full of live entries: start again rather than grow.
            done.clear();
        }
        done.insert(key, now + keep);
    }

    fn completed_lock(&self) -> std::sync::MutexGuard<'_, HashMap<IdempotencyKey, Instant>> {
        self.completed.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn routes_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(Provider, String), Route>> {
        self.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn claim(
        &self,
        key: &IdempotencyKey,
        lease_until: Timestamp,
    ) -> Result<Claim, WebhookResponse> {
        let deadline = Instant::now() + self.settings.in_progress_wait;
        loop {
            match self.stores.idempotency.claim(key, lease_until).await {
                Ok(ClaimOutcome::Claimed(t)) => return Ok(Claim::Mine(t)),
                Ok(ClaimOutcome::Done { retained_until, .. }) => {
                    return Ok(Claim::Done(retained_until));
                }
                Ok(ClaimOutcome::InProgress { .. }) if Instant::now() >= deadline => {
                    return Ok(Claim::Busy);
                }
                Ok(ClaimOutcome::InProgress { .. }) => {
                    tokio::time::sleep(Duration::from_millis(25)).await
                }
                Err(e) => return Err(store_failure("claim the event", e)),
            }
        }
    }
}

enum Claim {
    Mine(ClaimToken),
    /// Completed; its record counts until then.
    Done(Timestamp),
    Busy,
}

#[derive(Debug, Default)]
struct Counts {
    accepted: usize,
    duplicates: usize,
    unrouted: usize,
}

/// Room kept in a queue message for what wraps an event (tenant,
/// connection, received time).
const MESSAGE_ENVELOPE_BYTES: usize = 1024;

fn to_message<T: Serialize>(item: &T) -> OutgoingMessage {
    OutgoingMessage::new(serde_json::to_string(item).unwrap_or_default())
}

fn unavailable(why: &str) -> WebhookResponse {
    let mut r = WebhookResponse::error(503, format!("temporarily unavailable: {why}"));
    r.retry_after = Some(30);
    r
}

fn store_failure(what: &str, e: StoreError) -> WebhookResponse {
    tracing::error!(error = %e, "webhook intake could not {what}");
    unavailable(&format!("could not {what}"))
}

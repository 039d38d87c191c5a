//! The intake where the back office submits purchase orders, deliveries
//! received and time entries: `POST /intake/{tenant}/{purchase-orders |
//! deliveries | time-entries}` with an `Idempotency-Key` header. In
//! production the route is IAM-authorized; `hub serve` asks for a bearer token
//! (`HUB_INTAKE_TOKEN`). A body that is not the documented shape, or that
//! fails validation, is refused with a 4xx naming the field, and nothing is
//! queued. An accepted one is recorded in the ledger and queued for its
//! destination (MarketMan, the time-tracking system); the same key again
//! replays the first answer.

use crate::Stores;
use crate::ids::{IdempotencyKey, TenantId};
use crate::model::{Provider, Record};
use crate::pipelines::records::ingest;
use crate::ports::ClaimOutcome;
use jiff::{SignedDuration, Timestamp};
use secrecy::{ExposeSecret, SecretString};
use serde_json::{Value, json};
use subtle::ConstantTimeEq;

/// Largest body accepted.
pub const MAX_BODY: usize = 256 * 1024;

/// How callers prove who they are.
#[derive(Debug, Clone)]
pub enum IntakeAuth {
    /// API Gateway's IAM authorizer has checked the caller.
    Iam,
    /// `Authorization: Bearer <token>` (`hub serve`); `None`: not configured,
    /// every request refused.
    Bearer(Option<SecretString>),
}

/// An answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeResponse {
    /// Status.
    pub status: u16,
    /// JSON body.
    pub body: String,
    /// Whether this answer replays an earlier one.
    pub replayed: bool,
}

fn refuse(status: u16, error: &str, field: Option<&str>) -> IntakeResponse {
    let mut v = json!({ "error": error });
    if let Some(f) = field {
        v["field"] = f.into();
    }
    IntakeResponse {
        status,
        body: v.to_string(),
        replayed: false,
    }
}

/// The intake service.
#[derive(Debug, Clone)]
pub struct Intake {
    stores: Stores,
    auth: IntakeAuth,
}

/// serde's "missing field `x`" / "unknown variant" messages, with the field pulled out.
fn serde_field(msg: &str) -> Option<String> {
    let start = msg.find('`')? + 1;
    let end = msg[start..].find('`')? + start;
    Some(msg[start..end].to_string())
}

impl Intake {
    /// The intake on `stores`.
    pub fn new(stores: Stores, auth: IntakeAuth) -> Self {
        Intake { stores, auth }
    }

    /// Handles one request. `rest` is the path after `/intake/`.
    pub async fn handle(
        &self,
        method: &str,
        rest: &str,
        headers: &http::HeaderMap,
        body: &[u8],
    ) -> IntakeResponse {
        if !method.eq_ignore_ascii_case("POST") {
            return refuse(
                405,
                &format!("{method} is not allowed: POST a JSON body"),
                None,
            );
        }
        if let IntakeAuth::Bearer(expected) = &self.auth {
            let Some(expected) = expected else {
                return refuse(
                    503,
                    "the intake is not configured: set HUB_INTAKE_TOKEN",
                    None,
                );
            };
            let given = headers
                .get("authorization")
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .unwrap_or("");
            if !bool::from(given.as_bytes().ct_eq(expected.expose_secret().as_bytes())) {
                return refuse(401, "missing or wrong bearer token", None);
            }
        }
        let Some((tenant, kind)) = rest.trim_matches('/').split_once('/') else {
            return refuse(
                404,
                "POST to /intake/{tenant}/purchase-orders, /deliveries or /time-entries",
                None,
            );
        };
        if !matches!(kind, "purchase-orders" | "deliveries" | "time-entries") {
            return refuse(
                404,
                &format!("unknown intake {kind:?}: purchase-orders, deliveries or time-entries"),
                None,
            );
        }
        let Ok(tenant) = TenantId::new(tenant) else {
            return refuse(404, "malformed tenant id", None);
        };
        match self.stores.connections.get_tenant(&tenant).await {
            Ok(Some(_)) => {}
            Ok(None) => return refuse(404, &format!("tenant {tenant} does not exist"), None),
            Err(e) => return refuse(503, &format!("temporarily unavailable: {e}"), None),
        }
        if let Err(why) = crate::webhooks::intake::json_content_type(headers) {
            return refuse(415, &why, Some("Content-Type"));
        }
        if body.len() > MAX_BODY {
            return refuse(
                413,
                &format!(
                    "body of {} bytes is over the {MAX_BODY}-byte limit",
                    body.len()
                ),
                None,
            );
        }
        let Some(key) = headers
            .get("idempotency-key")
            .and_then(|v| v.to_str().ok())
            .filter(|k| !k.trim().is_empty() && k.len() <= 128)
        else {
            return refuse(
                400,
                "missing Idempotency-Key header (one per submission, reused on retries)",
                Some("Idempotency-Key"),
            );
        };
        let record = match parse(kind, &tenant, body) {
            Ok(r) => r,
            Err((status, field, why)) => return refuse(status, &why, Some(&field)),
        };
        let Ok(idem) = IdempotencyKey::new(format!("intake:{tenant}:{kind}:{key}")) else {
            return refuse(
                400,
                "Idempotency-Key contains characters it may not",
                Some("Idempotency-Key"),
            );
        };
        let claim = self
            .stores
            .idempotency
            .claim(&idem, Timestamp::now() + SignedDuration::from_secs(30))
            .await;
        let token = match claim {
            Ok(ClaimOutcome::Claimed(t)) => t,
            Ok(ClaimOutcome::Done { result, .. }) => {
                return IntakeResponse {
                    status: 202,
                    body: result.unwrap_or_default(),
                    replayed: true,
                };
            }
            Ok(ClaimOutcome::InProgress { .. }) => {
                return refuse(
                    409,
                    "a request with this Idempotency-Key is being handled; retry shortly",
                    Some("Idempotency-Key"),
                );
            }
            Err(e) => return refuse(503, &format!("temporarily unavailable: {e}"), None),
        };
        let source = match &record {
            Record::TimeEntry(_) => Provider::TimeTracking,
            _ => Provider::MarketMan,
        };
        match ingest(&self.stores, &tenant, source, &[], vec![record.clone()]).await {
            Ok(t) => {
                let id = match &record {
                    Record::PurchaseOrder(p) => p.id.to_string(),
                    Record::Delivery(d) => d.id.to_string(),
                    Record::TimeEntry(e) => e.id.to_string(),
                    _ => String::new(),
                };
                let body =
                    json!({"accepted": true, "kind": record.kind(), "id": id, "queued": t.pushes})
                        .to_string();
                let _ = self
                    .stores
                    .idempotency
                    .complete(
                        &idem,
                        &token,
                        Some(&body),
                        Timestamp::now() + SignedDuration::from_hours(24 * 7),
                    )
                    .await;
                IntakeResponse {
                    status: 202,
                    body,
                    replayed: false,
                }
            }
            Err(e) => {
                let _ = self.stores.idempotency.release(&idem, &token).await;
                refuse(503, &format!("temporarily unavailable: {e}"), None)
            }
        }
    }
}

fn parse(kind: &str, tenant: &TenantId, body: &[u8]) -> Result<Record, (u16, String, String)> {
    let mut v: Value = serde_json::from_slice(body)
        .map_err(|e| (400, "body".to_string(), format!("not JSON: {e}")))?;
    let Some(obj) = v.as_object_mut() else {
        return Err((400, "body".into(), "expected a JSON object".into()));
    };
    obj.insert("tenant".into(), tenant.as_str().into());
    let bad = |e: serde_json::Error| {
        let msg = e.to_string();
        (422, serde_field(&msg).unwrap_or_else(|| "body".into()), msg)
    };
    let invalid = |(field, why): (String, String)| (422, field.clone(), format!("{field} {why}"));
    Ok(match kind {
        "purchase-orders" => {
            let po: crate::model::PurchaseOrder = serde_json::from_value(v).map_err(bad)?;
            super::validate::purchase_order(&po).map_err(invalid)?;
            Record::PurchaseOrder(po)
        }
        "deliveries" => {
            let d: crate::model::Delivery = serde_json::from_value(v).map_err(bad)?;
            super::validate::delivery(&d).map_err(invalid)?;
            Record::Delivery(d)
        }
        _ => {
            let e: crate::model::TimeEntry = serde_json::from_value(v).map_err(bad)?;
            super::validate::time_entry(&e).map_err(invalid)?;
            Record::TimeEntry(e)
        }
    })
}

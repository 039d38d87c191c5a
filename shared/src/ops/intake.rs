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

/// A body that is JSON but not the documented shape: 422 naming the field
/// where reading it stopped (`delivery_date`, `lines[0].quantity`, `id`) or
/// the one missing (`supplier_id`), with serde's reason.
fn shape_error(e: serde_path_to_error::Error<serde_json::Error>) -> (u16, String, String) {
    let at = e.path().to_string();
    let top_level = at == ".";
    let msg = e.into_inner().to_string();
    // serde reports a missing field at the object lacking it, naming it only
    // in the message.
    let missing = msg
        .strip_prefix("missing field `")
        .and_then(|rest| rest.split('`').next())
        .map(str::to_string);
    let field = match (at.as_str(), &missing) {
        (".", Some(name)) => name.clone(),
        (_, Some(name)) => format!("{at}.{name}"),
        (".", None) => "body".to_string(),
        (_, None) => at,
    };
    let why = if missing.is_some() && top_level {
        msg
    } else {
        format!("{field}: {msg}")
    };
    (422, field, why)
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
    let invalid = |(field, why): (String, String)| (422, field.clone(), format!("{field} {why}"));
    Ok(match kind {
        "purchase-orders" => {
            let po: crate::model::PurchaseOrder =
                serde_path_to_error::deserialize(v).map_err(shape_error)?;
            super::validate::purchase_order(&po).map_err(invalid)?;
            Record::PurchaseOrder(po)
        }
        "deliveries" => {
            let d: crate::model::Delivery =
                serde_path_to_error::deserialize(v).map_err(shape_error)?;
            super::validate::delivery(&d).map_err(invalid)?;
            Record::Delivery(d)
        }
        _ => {
            let e: crate::model::TimeEntry =
                serde_path_to_error::deserialize(v).map_err(shape_error)?;
            super::validate::time_entry(&e).map_err(invalid)?;
            Record::TimeEntry(e)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused(kind: &str, body: Value) -> (u16, String, String) {
        let tenant = TenantId::new("bistro").unwrap();
        match parse(kind, &tenant, &serde_json::to_vec(&body).unwrap()) {
            Ok(r) => panic!("{body} was accepted as {r:?}"),
            Err(e) => e,
        }
    }

    #[test]
    fn a_body_of_the_wrong_shape_names_the_field() {
        let line = json!({"item_id": "i", "quantity": "1", "unit": "u", "unit_cost": "1"});
        let po = |field: &str, value: Value| {
            let mut po = json!({"id": "p", "supplier_id": "s", "location": "l",
                "delivery_date": "2026-12-02", "lines": [line.clone()]});
            po[field] = value;
            refused("purchase-orders", po)
        };
        let (status, field, why) = po("delivery_date", "next week".into());
        assert_eq!((status, field.as_str()), (422, "delivery_date"));
        assert!(why.starts_with("delivery_date: "), "{why}");
        assert_eq!(po("id", "p#1".into()).1, "id");
        assert_eq!(po("id", "p".repeat(10_000).into()).1, "id");
        let mut lots = line.clone();
        lots["quantity"] = "lots".into();
        assert_eq!(po("lines", json!([lots])).1, "lines[0].quantity");
        let mut no_unit = line.clone();
        no_unit.as_object_mut().unwrap().remove("unit");
        let (_, field, why) = po("lines", json!([no_unit]));
        assert_eq!(field, "lines[0].unit");
        assert!(why.contains("missing field `unit`"), "{why}");
        let (_, field, why) = refused(
            "purchase-orders",
            json!({"id": "p", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
        );
        assert_eq!(
            (field.as_str(), why.as_str()),
            ("supplier_id", "missing field `supplier_id`")
        );
        let (_, field, _) = refused(
            "deliveries",
            json!({"id": "d", "received_at": "yesterday", "lines": []}),
        );
        assert_eq!(field, "received_at");
    }
}

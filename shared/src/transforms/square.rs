//! Square payments and inventory counts to the internal model.
//!
//! A payment is a credit of its `total_money` (amount plus tip), minor units
//! scaled by the currency's exponent; a refunded amount (`refunded_money`) is
//! a separate debit with external id `<payment id>:refund`. Payments that did
//! not complete (failed, canceled) are kept at zero. The business date is the
//! location's, from the payment's `created_at`.

use super::{TransformError, decimal, from_minor_units, parse_timestamp};
use crate::ids::ExternalId;
use crate::model::{Connection, Currency, Direction, InventoryLevel, Provider, Transaction};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
struct Money {
    amount: i64,
    currency: String,
}

#[derive(Deserialize)]
struct Payment {
    id: String,
    created_at: String,
    #[serde(default)]
    status: Option<String>,
    amount_money: Money,
    #[serde(default)]
    total_money: Option<Money>,
    #[serde(default)]
    refunded_money: Option<Money>,
    #[serde(default)]
    source_type: Option<String>,
    #[serde(default)]
    card_details: Option<Value>,
    #[serde(default)]
    receipt_number: Option<String>,
}

fn err(id: &str, field: &str, e: impl ToString) -> TransformError {
    TransformError::new(Provider::Square, id, field, e.to_string())
}

/// A Square payment to its transactions: the sale, and a refund if any.
pub fn payment_to_transactions(
    payment: &Value,
    connection: &Connection,
) -> Result<Vec<Transaction>, TransformError> {
    let hint = payment["id"].as_str().unwrap_or("?").to_string();
    let p = Payment::deserialize(payment).map_err(|e| err(&hint, "payment", e))?;
    let occurred_at = parse_timestamp(&p.created_at).map_err(|e| err(&p.id, "created_at", e))?;
    let total = p.total_money.as_ref().unwrap_or(&p.amount_money);
    let currency =
        Currency::new(&total.currency).map_err(|e| err(&p.id, "total_money.currency", e))?;
    let completed = matches!(p.status.as_deref(), None | Some("COMPLETED" | "APPROVED"));
    let amount = if completed {
        from_minor_units(total.amount, &total.currency)
    } else {
        Decimal::ZERO
    };
    let method = match p.source_type.as_deref() {
        Some("CARD") => p
            .card_details
            .as_ref()
            .and_then(|c| c["card"]["card_brand"].as_str())
            .map(|b| format!("CARD:{b}"))
            .or(Some("CARD".into())),
        other => other.map(str::to_string),
    };
    let number = p
        .receipt_number
        .clone()
        .unwrap_or_else(|| p.id.chars().take(8).collect());
    let business_date = connection.business_date(occurred_at);
    let base = |external: &str,
                amount: Decimal,
                direction: Direction,
                description: String|
     -> Result<Transaction, TransformError> {
        Ok(Transaction {
            tenant: connection.tenant.clone(),
            connection: connection.id.clone(),
            source: Provider::Square,
            external_id: ExternalId::new(external).map_err(|e| err(&p.id, "id", e))?,
            amount,
            currency: currency.clone(),
            direction,
            description,
            business_date,
            occurred_at,
            reference: format!("SQ-{number}"),
            payment_method: method.clone(),
            line_items: Vec::new(),
            parts: Vec::new(),
            hold: None,
        })
    };
    let mut out = vec![base(
        &p.id,
        amount,
        Direction::Credit,
        format!("Square Payment {number}"),
    )?];
    if let Some(r) = &p.refunded_money
        && r.amount > 0
    {
        out.push(base(
            &format!("{}:refund", p.id),
            from_minor_units(r.amount, &r.currency),
            Direction::Debit,
            format!("Square Refund {number}"),
        )?);
    }
    Ok(out)
}

/// A Square inventory count to an inventory level (only `IN_STOCK` counts are
/// on hand; others return `None`).
pub fn count_to_level(
    count: &Value,
    connection: &Connection,
) -> Result<Option<InventoryLevel>, TransformError> {
    let id = count["catalog_object_id"].as_str().unwrap_or_default();
    if count["state"].as_str().is_some_and(|s| s != "IN_STOCK") {
        return Ok(None);
    }
    let quantity = decimal(&count["quantity"])
        .map_err(|e| err(id, "quantity", e))?
        .unwrap_or_default();
    let at = count["calculated_at"]
        .as_str()
        .ok_or_else(|| err(id, "calculated_at", "missing"))?;
    Ok(Some(InventoryLevel {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        item_id: ExternalId::new(id).map_err(|e| err(id, "catalog_object_id", e))?,
        name: None,
        location: count["location_id"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        quantity,
        unit: "each".into(),
        counted_at: parse_timestamp(at).map_err(|e| err(id, "calculated_at", e))?,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
    use crate::model::TimeZoneName;
    use jiff::civil::date;
    use std::str::FromStr;

    fn connection() -> Connection {
        Connection {
            id: ConnectionId::new("square").unwrap(),
            tenant: TenantId::new("cafe").unwrap(),
            provider: Provider::Square,
            account_id: ProviderAccountId::new("M1").unwrap(),
            time_zone: TimeZoneName::new("America/Los_Angeles").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new("cafe/square").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
        }
    }

    fn fixture(p: &str) -> Value {
        serde_json::from_str(
            &std::fs::read_to_string(format!(
                "{}/../tests/fixtures/{p}",
                env!("CARGO_MANIFEST_DIR")
            ))
            .unwrap(),
        )
        .unwrap()
    }

    #[test]
    fn the_published_payment_is_a_credit_in_dollars_on_the_local_date() {
        let p = &fixture("square/list_payments_response.json")["payments"][0];
        let t = payment_to_transactions(p, &connection()).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].amount, Decimal::from_str("5.55").unwrap());
        assert_eq!(t[0].direction, Direction::Credit);
        assert_eq!(t[0].payment_method.as_deref(), Some("CARD:VISA"));
        // 19:34Z on Oct 13 is 12:34 in Los Angeles.
        assert_eq!(t[0].business_date, date(2021, 10, 13));
    }

    #[test]
    fn refunds_are_debits_and_failed_payments_zero() {
        let mut p = fixture("square/list_payments_response.json")["payments"][0].clone();
        p["refunded_money"] = serde_json::json!({"amount": 205, "currency": "USD"});
        let t = payment_to_transactions(&p, &connection()).unwrap();
        assert_eq!(t.len(), 2);
        assert_eq!(
            (t[1].direction, t[1].amount),
            (Direction::Debit, Decimal::from_str("2.05").unwrap())
        );
        assert!(t[1].external_id.as_str().ends_with(":refund"));
        p["status"] = "FAILED".into();
        assert_eq!(
            payment_to_transactions(&p, &connection()).unwrap()[0].amount,
            Decimal::ZERO
        );
    }

    #[test]
    fn inventory_counts_become_levels() {
        let counts = fixture("square/batch_retrieve_inventory_counts_response.json");
        let c = &counts["counts"][0];
        let level = count_to_level(c, &connection()).unwrap().unwrap();
        assert_eq!(
            level.quantity,
            Decimal::from_str(c["quantity"].as_str().unwrap()).unwrap()
        );
        assert_eq!(level.location, c["location_id"].as_str().unwrap());
    }
}

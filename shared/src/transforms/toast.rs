//! Toast orders and menus to the internal model.
//!
//! An order becomes one transaction (a credit): its amount is the sum of its
//! live checks' `totalAmount` (tax included) plus tips; its lines are the live
//! selections, a sales-tax line and a tips line, so the lines add up to the
//! amount. "Toast Order #N", reference `TOAST-N` (N: the first check's display
//! number), external id = the order guid, payment method = the first live
//! payment's type. A voided or deleted order is kept as an amount of zero, so
//! a version already posted is updated to nothing rather than left standing.
//! Its business date is the restaurant's (time zone and close time) at the
//! moment the order was opened.

use super::{TransformError, decimal, parse_timestamp};
use crate::ids::ExternalId;
use crate::model::{
    Connection, Currency, Direction, Ingredient, LineItem, MenuItem, Provider, Transaction,
};
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    guid: String,
    #[serde(default)]
    opened_date: Option<String>,
    #[serde(default)]
    created_date: Option<String>,
    #[serde(default)]
    voided: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    checks: Vec<Check>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Check {
    #[serde(default)]
    display_number: Option<String>,
    #[serde(default)]
    total_amount: Value,
    #[serde(default)]
    tax_amount: Value,
    #[serde(default)]
    voided: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    selections: Vec<Selection>,
    #[serde(default)]
    payments: Vec<Payment>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Selection {
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    quantity: Value,
    #[serde(default)]
    price: Value,
    #[serde(default)]
    voided: bool,
    #[serde(default)]
    item: Option<GuidRef>,
}

#[derive(Deserialize)]
struct GuidRef {
    guid: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment {
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    tip_amount: Value,
    #[serde(default)]
    payment_status: Option<String>,
    #[serde(default)]
    refund_status: Option<String>,
    #[serde(default)]
    refund: Option<Refund>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refund {
    #[serde(default)]
    tip_refund_amount: Value,
}

fn amount(v: &Value, id: &str, field: &str) -> Result<Decimal, TransformError> {
    decimal(v)
        .map(|d| d.unwrap_or_default())
        .map_err(|e| TransformError::new(Provider::Toast, id, field, e))
}

/// A Toast order (as `ordersBulk` or the orders webhook carries it) to a transaction.
pub fn order_to_transaction(
    order: &Value,
    connection: &Connection,
) -> Result<Transaction, TransformError> {
    let id_hint = order["guid"].as_str().unwrap_or("?").to_string();
    let o = Order::deserialize(order)
        .map_err(|e| TransformError::new(Provider::Toast, &id_hint, "order", e.to_string()))?;
    let id = o.guid.as_str();
    let opened = o
        .opened_date
        .as_deref()
        .or(o.created_date.as_deref())
        .ok_or_else(|| TransformError::new(Provider::Toast, id, "openedDate", "missing"))?;
    let occurred_at = parse_timestamp(opened)
        .map_err(|e| TransformError::new(Provider::Toast, id, "openedDate", e))?;
    let cancelled = o.voided || o.deleted;
    let mut lines = Vec::new();
    let (mut total, mut tax, mut tips) = (Decimal::ZERO, Decimal::ZERO, Decimal::ZERO);
    let mut payment_method = None;
    for (ci, c) in o
        .checks
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.voided && !c.deleted && !cancelled)
    {
        total += amount(&c.total_amount, id, &format!("checks[{ci}].totalAmount"))?;
        tax += amount(&c.tax_amount, id, &format!("checks[{ci}].taxAmount"))?;
        for (si, s) in c.selections.iter().enumerate().filter(|(_, s)| !s.voided) {
            let quantity = decimal(&s.quantity)
                .map_err(|e| {
                    TransformError::new(
                        Provider::Toast,
                        id,
                        &format!("checks[{ci}].selections[{si}].quantity"),
                        e,
                    )
                })?
                .unwrap_or(Decimal::ONE);
            let price = amount(
                &s.price,
                id,
                &format!("checks[{ci}].selections[{si}].price"),
            )?;
            lines.push(LineItem {
                description: s.display_name.clone().unwrap_or_else(|| "Item".into()),
                item_id: s.item.as_ref().and_then(|r| ExternalId::new(&r.guid).ok()),
                unit_price: if quantity.is_zero() {
                    price
                } else {
                    (price / quantity).round_dp(4)
                },
                quantity,
                amount: price,
            });
        }
        for (pi, p) in c.payments.iter().enumerate() {
            if matches!(
                p.payment_status.as_deref(),
                Some("VOIDED" | "DENIED" | "CANCELLED")
            ) {
                continue;
            }
            tips += amount(
                &p.tip_amount,
                id,
                &format!("checks[{ci}].payments[{pi}].tipAmount"),
            )?;
            if let Some(r) = &p.refund
                && p.refund_status.as_deref().is_some_and(|s| s != "NONE")
            {
                tips -= amount(
                    &r.tip_refund_amount,
                    id,
                    &format!("checks[{ci}].payments[{pi}].refund.tipRefundAmount"),
                )?;
            }
            if payment_method.is_none() {
                payment_method = p.kind.clone();
            }
        }
    }
    if !tax.is_zero() {
        lines.push(LineItem {
            description: "Sales tax".into(),
            item_id: None,
            quantity: Decimal::ONE,
            unit_price: tax,
            amount: tax,
        });
    }
    if !tips.is_zero() {
        lines.push(LineItem {
            description: "Tips".into(),
            item_id: None,
            quantity: Decimal::ONE,
            unit_price: tips,
            amount: tips,
        });
    }
    let number = o
        .checks
        .iter()
        .find_map(|c| c.display_number.clone())
        .unwrap_or_else(|| id.chars().take(8).collect());
    Ok(Transaction {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        source: Provider::Toast,
        external_id: ExternalId::new(id)
            .map_err(|e| TransformError::new(Provider::Toast, id, "guid", e.to_string()))?,
        amount: total + tips,
        currency: Currency::usd(),
        direction: Direction::Credit,
        description: if cancelled {
            format!("Toast Order #{number} (voided)")
        } else {
            format!("Toast Order #{number}")
        },
        business_date: connection.business_date(occurred_at),
        occurred_at,
        reference: format!("TOAST-{number}"),
        payment_method,
        line_items: lines,
        parts: Vec::new(),
        hold: None,
    })
}

/// Toast menus (`GET /menus/v2/menus`) to menu items. A menu item's modifier
/// options (the sauce, the cheese) are its ingredients, one serving each.
pub fn menus_to_items(
    menus: &Value,
    connection: &Connection,
) -> Result<Vec<MenuItem>, TransformError> {
    let mut out = Vec::new();
    let groups = menus["menus"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|m| m["menuGroups"].as_array().cloned().unwrap_or_default());
    let mut stack: Vec<Value> = groups.collect();
    while let Some(group) = stack.pop() {
        stack.extend(group["menuGroups"].as_array().cloned().unwrap_or_default());
        let category = group["name"].as_str().map(str::to_string);
        for item in group["menuItems"].as_array().into_iter().flatten() {
            let guid = item["guid"].as_str().unwrap_or_default();
            let id = ExternalId::new(guid).map_err(|e| {
                TransformError::new(Provider::Toast, guid, "menuItems.guid", e.to_string())
            })?;
            let price = decimal(&item["price"])
                .map_err(|e| TransformError::new(Provider::Toast, guid, "price", e))?;
            let ingredients = item["modifierGroups"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|g| g["modifierOptions"].as_array().cloned().unwrap_or_default())
                .filter_map(|opt| {
                    Some(Ingredient {
                        name: opt["name"].as_str()?.to_string(),
                        item_id: opt["guid"].as_str().and_then(|g| ExternalId::new(g).ok()),
                        quantity: Decimal::ONE,
                        unit: "serving".into(),
                    })
                })
                .collect();
            out.push(MenuItem {
                tenant: connection.tenant.clone(),
                connection: connection.id.clone(),
                external_id: id,
                name: item["name"].as_str().unwrap_or_default().to_string(),
                category: category.clone(),
                price,
                ingredients,
            });
        }
    }
    out.sort_by(|a, b| a.external_id.cmp(&b.external_id));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
    use crate::model::{BusinessDayClose, TimeZoneName};
    use jiff::civil::{date, time};
    use std::str::FromStr;

    fn connection(tz: &str, close: &str) -> Connection {
        Connection {
            id: ConnectionId::new("toast").unwrap(),
            tenant: TenantId::new("bistro").unwrap(),
            provider: Provider::Toast,
            account_id: ProviderAccountId::new("r1").unwrap(),
            time_zone: TimeZoneName::new(tz).unwrap(),
            business_day_close: BusinessDayClose(close.parse().unwrap_or(time(0, 0, 0, 0))),
            credentials: SecretName::new("bistro/toast").unwrap(),
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
    fn the_published_order_becomes_a_transaction_whose_lines_add_up() {
        let t = order_to_transaction(
            &fixture("toast/order_get_response.json"),
            &connection("America/New_York", "04:00"),
        )
        .unwrap();
        assert_eq!(
            t.external_id.as_str(),
            "017fdd94-4a30-4657-9475-b1a684758531"
        );
        assert_eq!(t.amount, Decimal::from_str("1.06").unwrap());
        assert_eq!(t.description, "Toast Order #2");
        assert_eq!(t.reference, "TOAST-2");
        assert_eq!(t.payment_method.as_deref(), Some("CREDIT"));
        assert_eq!(t.direction, Direction::Credit);
        let sum: Decimal = t.line_items.iter().map(|l| l.amount).sum();
        assert_eq!(sum, t.amount);
        // Opened 13:48 UTC on Feb 24 = 08:48 in New York, after the 04:00 close.
        assert_eq!(t.business_date, date(2019, 2, 24));
    }

    #[test]
    fn tips_count_and_voided_orders_go_to_zero() {
        let mut o = fixture("toast/order_get_response.json");
        o["checks"][0]["payments"][0]["tipAmount"] = serde_json::json!(2.5);
        let conn = connection("America/New_York", "04:00");
        let t = order_to_transaction(&o, &conn).unwrap();
        assert_eq!(t.amount, Decimal::from_str("3.56").unwrap());
        assert!(
            t.line_items
                .iter()
                .any(|l| l.description == "Tips" && l.amount == Decimal::from_str("2.5").unwrap())
        );
        o["voided"] = true.into();
        let v = order_to_transaction(&o, &conn).unwrap();
        assert_eq!((v.amount, v.line_items.len()), (Decimal::ZERO, 0));
        assert!(v.description.ends_with("(voided)"));
    }

    #[test]
    fn an_order_at_2330_local_on_the_night_clocks_change_books_that_night() {
        let mut o = fixture("toast/order_get_response.json");
        // 2026-11-01 03:30Z is 23:30 EDT on Oct 31, the night the clocks fall back.
        o["openedDate"] = "2026-11-01T03:30:00.000+0000".into();
        let t = order_to_transaction(&o, &connection("America/New_York", "04:00")).unwrap();
        assert_eq!(t.business_date, date(2026, 10, 31));
        // 01:30 local after midnight, before a 04:00 close: still the night before.
        o["openedDate"] = "2026-11-01T06:30:00.000+0000".into();
        let t = order_to_transaction(&o, &connection("America/New_York", "04:00")).unwrap();
        assert_eq!(t.business_date, date(2026, 10, 31));
        // With a midnight close the same instant is the next day.
        let t = order_to_transaction(&o, &connection("America/New_York", "00:00")).unwrap();
        assert_eq!(t.business_date, date(2026, 11, 1));
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let mut o = fixture("toast/order_get_response.json");
        o["checks"][0]["totalAmount"] = "lots".into();
        let err = order_to_transaction(&o, &connection("UTC", "00:00")).unwrap_err();
        assert_eq!(err.field, "checks[0].totalAmount");
        o.as_object_mut().unwrap().remove("openedDate");
        let err = order_to_transaction(&o, &connection("UTC", "00:00")).unwrap_err();
        assert_eq!(err.field, "openedDate");
    }

    #[test]
    fn menus_become_items_with_ingredients() {
        let menus = serde_json::json!({"menus": [{"name": "Dinner", "menuGroups": [{"name": "Burgers", "menuItems": [
            {"guid": "i1", "name": "Cheeseburger", "price": 12.5, "modifierGroups": [{"modifierOptions": [{"guid": "m1", "name": "Cheddar"}]}]}
        ], "menuGroups": [{"name": "Sides", "menuItems": [{"guid": "i2", "name": "Fries", "price": 4}]}]}]}]});
        let items = menus_to_items(&menus, &connection("UTC", "00:00")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].price, Some(Decimal::from_str("12.5").unwrap()));
        assert_eq!(items[0].ingredients[0].name, "Cheddar");
        assert_eq!(items[1].category.as_deref(), Some("Sides"));
    }
}

//! Toast orders and menus to the internal model.
//!
//! An order becomes one sale (a credit, external id = the order guid) and a
//! refund record per refunded payment (a debit, external id
//! `<order guid>:refund:<payment guid>`, on the refund's own
//! `refundBusinessDate`). Their money is in parts (`model::parts`), taken
//! from the definition's fields (`toast-orders-openapi.yaml`, and
//! `books.md`'s table):
//! - `sales:<salesCategory guid>` (`sales:uncategorized` without one): the
//!   live (not voided) selections' `preDiscountPrice` (gross, before
//!   discounts, tax excluded); `deferred` selections (gift cards sold,
//!   `TOAST_CARD_SELL`/`RELOAD`) are `gift_cards_sold` at their `price`;
//! - `discounts`: `appliedDiscounts[].discountAmount` of the checks and of
//!   the selections, each discount counted where it is applied (a
//!   check-level discount is spread into the selections' `price`, never
//!   into their `appliedDiscounts`, so nothing is counted twice);
//! - `service_charges` and `gratuity`: `appliedServiceCharges[].chargeAmount`
//!   by `gratuity`;
//! - `tax:<name>`: `appliedTaxes[].taxAmount` of selections and service
//!   charges, per rate name, except taxes a marketplace facilitator remits
//!   (`facilitatorCollectAndRemitTax`);
//! - tenders, from payments that are money: `CASH` → `tender:cash`,
//!   `CREDIT` → `tender:card`, `HOUSE_ACCOUNT` → `tender:house_account`,
//!   `OTHER` → `tender:other:<otherPayment guid>`, `GIFTCARD`/`TOAST_SV` →
//!   `gift_cards_redeemed`, others → `tender:other:<type>`; each at
//!   `amount` plus `tipAmount`, and `tips` at `tipAmount`; `fees` at
//!   `originalProcessingFee`. A credit payment is money when AUTHORIZED,
//!   CAPTURE_IN_PROGRESS or CAPTURED; OPEN, PROCESSING, ERROR,
//!   ERROR_NETWORK, DENIED, PROCESSING_VOID, CANCELLED and VOIDED (and the
//!   deprecated *_AT_RISK) are not. Other types are money unless VOIDED or
//!   CANCELLED.
//! - a refund (`refundStatus` PARTIAL or FULL, `refund`): `refunds` at
//!   `refundAmount` less its tax, the tax (`refundDetails.taxRefundAmount`
//!   of the check's selections and service charges, on their rates) and
//!   `tipRefundAmount` taken off `tax:*` and `tips`, and the tender taken
//!   off by `refundAmount` plus `tipRefundAmount`. `Check.totalAmount` is "not
//!   affected by refunds", so the sale stays as it was sold.
//!
//! Voided or deleted orders and checks, and voided selections, drop out: a
//! voided order is a sale with no parts, so a version already posted is
//! updated to nothing. An order whose parts do not balance (a check not
//! fully paid, a payment still processing) is *held*: kept with the fields
//! that disagree named, and never booked as is. The business date is the
//! order's own `businessDate` (yyyyMMdd) where it has one, else the
//! restaurant's (time zone and close time) at the moment it was opened.
//! Toast orders carry no currency: the records are in the restaurant's
//! (`Connection::currency`, which the hub learns from the restaurants API
//! before it reads a restaurant's first sales); an order of a restaurant
//! whose currency is not known is an error naming the field.

use crate::ids::ExternalId;
use crate::model::parts::{self, Part};
use crate::model::{Connection, Direction, Ingredient, LineItem, MenuItem, Provider, Transaction};
use crate::transforms::{TransformError, decimal, parse_timestamp};
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Order {
    guid: String,
    #[serde(default)]
    opened_date: Option<String>,
    #[serde(default)]
    created_date: Option<String>,
    #[serde(default)]
    business_date: Option<Value>,
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
    voided: bool,
    #[serde(default)]
    deleted: bool,
    #[serde(default)]
    selections: Vec<Selection>,
    #[serde(default)]
    applied_discounts: Vec<AppliedDiscount>,
    #[serde(default)]
    applied_service_charges: Vec<ServiceCharge>,
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
    pre_discount_price: Value,
    #[serde(default)]
    voided: bool,
    #[serde(default)]
    deferred: bool,
    #[serde(default)]
    item: Option<GuidRef>,
    #[serde(default)]
    sales_category: Option<GuidRef>,
    #[serde(default)]
    applied_discounts: Vec<AppliedDiscount>,
    #[serde(default)]
    applied_taxes: Vec<AppliedTax>,
    #[serde(default)]
    refund_details: Option<RefundDetails>,
}

#[derive(Deserialize)]
struct GuidRef {
    #[serde(default)]
    guid: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedDiscount {
    #[serde(default)]
    discount_amount: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct AppliedTax {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    tax_amount: Value,
    #[serde(default)]
    facilitator_collect_and_remit_tax: Option<bool>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ServiceCharge {
    #[serde(default)]
    charge_amount: Value,
    #[serde(default)]
    gratuity: Option<bool>,
    #[serde(default)]
    applied_taxes: Vec<AppliedTax>,
    #[serde(default)]
    refund_details: Option<RefundDetails>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RefundDetails {
    #[serde(default)]
    tax_refund_amount: Value,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Payment {
    #[serde(default)]
    guid: Option<String>,
    #[serde(rename = "type", default)]
    kind: Option<String>,
    #[serde(default)]
    amount: Value,
    #[serde(default)]
    tip_amount: Value,
    #[serde(default)]
    payment_status: Option<String>,
    #[serde(default)]
    refund_status: Option<String>,
    #[serde(default)]
    refund: Option<Refund>,
    #[serde(default)]
    original_processing_fee: Value,
    #[serde(default)]
    other_payment: Option<GuidRef>,
    #[serde(default)]
    paid_date: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Refund {
    #[serde(default)]
    refund_amount: Value,
    #[serde(default)]
    tip_refund_amount: Value,
    #[serde(default)]
    refund_business_date: Option<Value>,
    #[serde(default)]
    refund_date: Option<String>,
}

/// Credit payment statuses that are money (`books.md`).
const MONEY_CREDIT: &[&str] = &["AUTHORIZED", "CAPTURE_IN_PROGRESS", "CAPTURED"];

impl Payment {
    fn is_money(&self) -> bool {
        let status = self.payment_status.as_deref();
        match self.kind.as_deref() {
            Some("CREDIT") => status.is_some_and(|s| MONEY_CREDIT.contains(&s)),
            _ => !matches!(status, Some("VOIDED" | "CANCELLED" | "DENIED" | "ERROR")),
        }
    }

    /// The payment's tender role.
    fn role(&self) -> String {
        match self.kind.as_deref() {
            Some("CASH") => "tender:cash".into(),
            Some("CREDIT") => "tender:card".into(),
            Some("HOUSE_ACCOUNT") => "tender:house_account".into(),
            Some("GIFTCARD" | "TOAST_SV") => "gift_cards_redeemed".into(),
            Some("OTHER") => match self.other_payment.as_ref().and_then(|r| r.guid.as_deref()) {
                Some(g) => format!("tender:other:{g}"),
                None => "tender:other".into(),
            },
            Some(other) => format!("tender:other:{}", other.to_ascii_lowercase()),
            None => "tender:other:undetermined".into(),
        }
    }
}

/// Reads amounts of one record, naming the field of a bad one.
struct Amounts<'a> {
    id: &'a str,
}

impl Amounts<'_> {
    fn get(&self, v: &Value, field: impl FnOnce() -> String) -> Result<Decimal, TransformError> {
        decimal(v)
            .map(|d| d.unwrap_or_default())
            .map_err(|e| TransformError::new(Provider::Toast, self.id, &field(), e))
    }
}

/// A yyyyMMdd business date (a number or a string).
fn yyyymmdd(v: &Value) -> Option<Date> {
    let text = match v {
        Value::Number(n) => n.to_string(),
        Value::String(s) => s.clone(),
        _ => return None,
    };
    if text.len() != 8 {
        return None;
    }
    let (y, m, d) = (
        text[..4].parse().ok()?,
        text[4..6].parse().ok()?,
        text[6..].parse().ok()?,
    );
    Date::new(y, m, d).ok()
}

/// Adds `amount` to `role` in `parts`.
fn add(parts: &mut BTreeMap<String, Decimal>, role: &str, amount: Decimal) {
    if !amount.is_zero() {
        *parts.entry(role.to_string()).or_default() += amount;
    }
}

fn to_parts(parts: BTreeMap<String, Decimal>) -> Vec<Part> {
    parts
        .into_iter()
        .filter(|(_, a)| !a.is_zero())
        .map(|(role, amount)| Part { role, amount })
        .collect()
}

/// Taxes of `taxes` into `parts` (or, with `sign` −1, out of them).
fn taxes(
    a: &Amounts<'_>,
    parts: &mut BTreeMap<String, Decimal>,
    taxes: &[AppliedTax],
    at: &str,
) -> Result<Decimal, TransformError> {
    let mut total = Decimal::ZERO;
    for (ti, t) in taxes.iter().enumerate() {
        if t.facilitator_collect_and_remit_tax == Some(true) {
            continue;
        }
        let amount = a.get(&t.tax_amount, || {
            format!("{at}.appliedTaxes[{ti}].taxAmount")
        })?;
        add(
            parts,
            &format!("tax:{}", t.name.as_deref().unwrap_or("unnamed")),
            amount,
        );
        total += amount;
    }
    Ok(total)
}

/// `refunded` tax spread over `taxes`' rates in proportion to what each
/// collected (the last rate takes the rounding).
fn spread_tax(refunded: Decimal, taxes: &[AppliedTax], a: &Amounts<'_>) -> Vec<(String, Decimal)> {
    let rates: Vec<(String, Decimal)> = taxes
        .iter()
        .filter(|t| t.facilitator_collect_and_remit_tax != Some(true))
        .map(|t| {
            (
                format!("tax:{}", t.name.as_deref().unwrap_or("unnamed")),
                a.get(&t.tax_amount, String::new).unwrap_or_default(),
            )
        })
        .collect();
    let collected: Decimal = rates.iter().map(|(_, x)| *x).sum();
    if rates.is_empty() || collected.is_zero() {
        return vec![("tax:unnamed".into(), refunded)];
    }
    let mut out = Vec::new();
    let mut left = refunded;
    for (i, (role, x)) in rates.iter().enumerate() {
        let share = if i + 1 == rates.len() {
            left
        } else {
            (refunded * *x / collected).round_dp(2)
        };
        left -= share;
        out.push((role.clone(), share));
    }
    out
}

/// A Toast order (as `ordersBulk` or the orders webhook carries it) to its
/// sale and its refunds.
pub fn order_to_transactions(
    order: &Value,
    connection: &Connection,
) -> Result<Vec<Transaction>, TransformError> {
    let id_hint = order["guid"].as_str().unwrap_or("?").to_string();
    let o = Order::deserialize(order)
        .map_err(|e| TransformError::new(Provider::Toast, &id_hint, "order", e.to_string()))?;
    let id = o.guid.as_str();
    let a = Amounts { id };
    let currency = connection.currency.clone().ok_or_else(|| {
        TransformError::new(
            Provider::Toast,
            id,
            "currency",
            "the restaurant's currency is not known: Toast orders carry none, and the restaurants API's general.currencyCode has not been read",
        )
    })?;
    let opened = o
        .opened_date
        .as_deref()
        .or(o.created_date.as_deref())
        .ok_or_else(|| TransformError::new(Provider::Toast, id, "openedDate", "missing"))?;
    let occurred_at = parse_timestamp(opened)
        .map_err(|e| TransformError::new(Provider::Toast, id, "openedDate", e))?;
    let business_date = match &o.business_date {
        None | Some(Value::Null) => connection.business_date(occurred_at),
        Some(v) => yyyymmdd(v).ok_or_else(|| {
            TransformError::new(
                Provider::Toast,
                id,
                "businessDate",
                format!("{v} is not yyyyMMdd"),
            )
        })?,
    };
    let cancelled = o.voided || o.deleted;
    let mut lines = Vec::new();
    let mut sale: BTreeMap<String, Decimal> = BTreeMap::new();
    let mut refunds = Vec::new();
    let mut payment_method = None;
    for (ci, c) in o
        .checks
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.voided && !c.deleted && !cancelled)
    {
        let mut refunded_tax: Vec<(String, Decimal)> = Vec::new();
        for (si, s) in c.selections.iter().enumerate().filter(|(_, s)| !s.voided) {
            let at = format!("checks[{ci}].selections[{si}]");
            let price = a.get(&s.price, || format!("{at}.price"))?;
            let quantity = decimal(&s.quantity)
                .map_err(|e| {
                    TransformError::new(Provider::Toast, id, &format!("{at}.quantity"), e)
                })?
                .unwrap_or(Decimal::ONE);
            let mut item_discounts = Decimal::ZERO;
            for (di, d) in s.applied_discounts.iter().enumerate() {
                item_discounts += a.get(&d.discount_amount, || {
                    format!("{at}.appliedDiscounts[{di}].discountAmount")
                })?;
            }
            add(&mut sale, "discounts", item_discounts);
            if s.deferred {
                add(&mut sale, "gift_cards_sold", price);
            } else {
                let gross = match decimal(&s.pre_discount_price).map_err(|e| {
                    TransformError::new(Provider::Toast, id, &format!("{at}.preDiscountPrice"), e)
                })? {
                    Some(g) => g,
                    None => price + item_discounts,
                };
                let category = s
                    .sales_category
                    .as_ref()
                    .and_then(|r| r.guid.as_deref())
                    .unwrap_or("uncategorized");
                add(&mut sale, &format!("sales:{category}"), gross);
            }
            taxes(&a, &mut sale, &s.applied_taxes, &at)?;
            if let Some(r) = &s.refund_details {
                let t = a.get(&r.tax_refund_amount, || {
                    format!("{at}.refundDetails.taxRefundAmount")
                })?;
                refunded_tax.extend(spread_tax(t, &s.applied_taxes, &a));
            }
            lines.push(LineItem {
                description: s.display_name.clone().unwrap_or_else(|| "Item".into()),
                item_id: s
                    .item
                    .as_ref()
                    .and_then(|r| r.guid.as_deref())
                    .and_then(|g| ExternalId::new(g).ok()),
                unit_price: if quantity.is_zero() {
                    price
                } else {
                    (price / quantity).round_dp(4)
                },
                quantity,
                amount: price,
            });
        }
        for (di, d) in c.applied_discounts.iter().enumerate() {
            let amount = a.get(&d.discount_amount, || {
                format!("checks[{ci}].appliedDiscounts[{di}].discountAmount")
            })?;
            add(&mut sale, "discounts", amount);
        }
        for (xi, x) in c.applied_service_charges.iter().enumerate() {
            let at = format!("checks[{ci}].appliedServiceCharges[{xi}]");
            let amount = a.get(&x.charge_amount, || format!("{at}.chargeAmount"))?;
            let role = if x.gratuity == Some(true) {
                "gratuity"
            } else {
                "service_charges"
            };
            add(&mut sale, role, amount);
            taxes(&a, &mut sale, &x.applied_taxes, &at)?;
            if let Some(r) = &x.refund_details {
                let t = a.get(&r.tax_refund_amount, || {
                    format!("{at}.refundDetails.taxRefundAmount")
                })?;
                refunded_tax.extend(spread_tax(t, &x.applied_taxes, &a));
            }
        }
        let mut check_tax_taken = false;
        for (pi, p) in c.payments.iter().enumerate() {
            if !p.is_money() {
                continue;
            }
            let at = format!("checks[{ci}].payments[{pi}]");
            let amount = a.get(&p.amount, || format!("{at}.amount"))?;
            let tip = a.get(&p.tip_amount, || format!("{at}.tipAmount"))?;
            let role = p.role();
            add(&mut sale, &role, amount + tip);
            add(&mut sale, "tips", tip);
            add(
                &mut sale,
                "fees",
                a.get(&p.original_processing_fee, || {
                    format!("{at}.originalProcessingFee")
                })?,
            );
            if payment_method.is_none() {
                payment_method = p.kind.clone();
            }
            let Some(r) = p
                .refund
                .as_ref()
                .filter(|_| matches!(p.refund_status.as_deref(), Some("PARTIAL" | "FULL")))
            else {
                continue;
            };
            let money = a.get(&r.refund_amount, || format!("{at}.refund.refundAmount"))?;
            let tip_back = a.get(&r.tip_refund_amount, || {
                format!("{at}.refund.tipRefundAmount")
            })?;
            let mut parts: BTreeMap<String, Decimal> = BTreeMap::new();
            // The check's refunded tax goes with its first refunded payment.
            let tax_back: Vec<(String, Decimal)> = if check_tax_taken {
                Vec::new()
            } else {
                check_tax_taken = true;
                refunded_tax.clone()
            };
            let tax_total: Decimal = tax_back.iter().map(|(_, t)| *t).sum();
            add(&mut parts, "refunds", money - tax_total);
            for (rate, t) in &tax_back {
                add(&mut parts, rate, -*t);
            }
            add(&mut parts, "tips", -tip_back);
            add(&mut parts, &role, -(money + tip_back));
            let refunded_at = r
                .refund_date
                .as_deref()
                .or(p.paid_date.as_deref())
                .and_then(|t| parse_timestamp(t).ok())
                .unwrap_or(occurred_at);
            let date = match &r.refund_business_date {
                None | Some(Value::Null) => connection.business_date(refunded_at),
                Some(v) => yyyymmdd(v).ok_or_else(|| {
                    TransformError::new(
                        Provider::Toast,
                        id,
                        &format!("{at}.refund.refundBusinessDate"),
                        format!("{v} is not yyyyMMdd"),
                    )
                })?,
            };
            let payment_guid = p.guid.clone().unwrap_or_else(|| format!("{ci}-{pi}"));
            let hold = (money < tax_total).then(|| {
                format!(
                    "{at}.refund.refundAmount {money} is less than the tax its selections' refundDetails.taxRefundAmount give back ({tax_total})"
                )
            });
            refunds.push((
                payment_guid,
                date,
                refunded_at,
                money + tip_back,
                p.kind.clone(),
                parts,
                hold,
            ));
        }
    }
    let number = o
        .checks
        .iter()
        .find_map(|c| c.display_number.clone())
        .unwrap_or_else(|| id.chars().take(8).collect());
    let sale_parts = to_parts(sale);
    let off = parts::imbalance(&sale_parts);
    let hold = (!off.is_zero()).then(|| {
        let sums = parts::sum_parts(&sale_parts);
        format!(
            "parts do not balance by {off}: {} (from the selections' preDiscountPrice/price, appliedDiscounts.discountAmount, appliedServiceCharges.chargeAmount, appliedTaxes.taxAmount, and the money payments' amount and tipAmount; a check not fully paid is not yet a sale)",
            sums.iter()
                .map(|(r, x)| format!("{r} {x}"))
                .collect::<Vec<_>>()
                .join(", ")
        )
    });
    let paid: Decimal = sale_parts
        .iter()
        .filter(|p| p.role.starts_with("tender:") || p.role == "gift_cards_redeemed")
        .map(|p| p.amount)
        .sum();
    let external_id = |s: &str| {
        ExternalId::new(s)
            .map_err(|e| TransformError::new(Provider::Toast, id, "guid", e.to_string()))
    };
    let mut out = vec![Transaction {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        source: Provider::Toast,
        external_id: external_id(id)?,
        amount: paid,
        currency: currency.clone(),
        direction: Direction::Credit,
        description: if cancelled {
            format!("Toast Order #{number} (voided)")
        } else {
            format!("Toast Order #{number}")
        },
        business_date,
        occurred_at,
        reference: format!("TOAST-{number}"),
        payment_method,
        line_items: lines,
        parts: sale_parts,
        hold,
    }];
    for (payment, date, at, money, kind, parts, hold) in refunds {
        out.push(Transaction {
            tenant: connection.tenant.clone(),
            connection: connection.id.clone(),
            source: Provider::Toast,
            external_id: external_id(&format!("{id}:refund:{payment}"))?,
            amount: money,
            currency: currency.clone(),
            direction: Direction::Debit,
            description: format!("Toast Order #{number} refund"),
            business_date: date,
            occurred_at: at,
            reference: format!("TOAST-{number}"),
            payment_method: kind,
            line_items: Vec::new(),
            parts: to_parts(parts),
            hold,
        });
    }
    Ok(out)
}

/// Toast menus (`GET /menus/v2/menus`) to menu items. A menu item's modifier
/// options (the sauce, the cheese) are its ingredients, one serving each.
/// As the definition has it, an item names its modifier groups by integer
/// `referenceId` (`modifierGroupReferences: [3]`), and the groups and their
/// options live once, in the response's top-level `modifierGroupReferences`
/// and `modifierOptionReferences` maps keyed by that id (as a string).
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
            let reference = |map: &str, id: &Value| -> Option<Value> {
                let key = match id {
                    Value::Number(n) => n.to_string(),
                    Value::String(s) => s.clone(),
                    _ => return None,
                };
                menus[map].get(&key).cloned()
            };
            let ingredients = item["modifierGroupReferences"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|id| reference("modifierGroupReferences", id))
                .flat_map(|g| {
                    g["modifierOptionReferences"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default()
                })
                .filter_map(|id| reference("modifierOptionReferences", &id))
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
    use crate::model::parts;
    use crate::model::{BusinessDayClose, Currency, TimeZoneName};
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
            currency: Some(Currency::usd()),
            books: Default::default(),
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

    fn d(s: &str) -> Decimal {
        Decimal::from_str(s).unwrap()
    }

    fn parts_of(t: &Transaction) -> BTreeMap<String, Decimal> {
        parts::sum_parts(&t.parts)
    }

    fn roles(pairs: &[(&str, &str)]) -> BTreeMap<String, Decimal> {
        pairs.iter().map(|(r, a)| (r.to_string(), d(a))).collect()
    }

    fn sale(o: &Value) -> Transaction {
        let mut all = order_to_transactions(o, &connection("America/New_York", "04:00")).unwrap();
        all.remove(0)
    }

    const FOOD: &str = "b6a5fa5c-5b4f-49ca-a49f-d35814110f81";

    /// A selection in the definition's shape.
    fn selection(name: &str, gross: &str, price: &str, tax: &str, rate: &str) -> Value {
        serde_json::json!({
            "displayName": name, "quantity": 1, "preDiscountPrice": gross.parse::<f64>().unwrap(),
            "price": price.parse::<f64>().unwrap(), "tax": tax.parse::<f64>().unwrap(), "voided": false, "deferred": false,
            "salesCategory": {"guid": FOOD, "entityType": "SalesCategory", "externalId": null},
            "appliedTaxes": [{"name": rate, "taxAmount": tax.parse::<f64>().unwrap(), "rate": 0.08, "type": "PERCENT", "facilitatorCollectAndRemitTax": false}],
            "appliedDiscounts": [],
        })
    }

    fn payment(kind: &str, amount: &str, tip: &str, status: &str) -> Value {
        serde_json::json!({
            "guid": format!("pay-{kind}-{amount}"), "type": kind, "amount": amount.parse::<f64>().unwrap(),
            "tipAmount": tip.parse::<f64>().unwrap(), "paymentStatus": status, "refundStatus": "NONE",
        })
    }

    #[test]
    fn the_published_order_becomes_a_sale_in_parts() {
        let t = sale(&fixture("toast/order_get_response.json"));
        assert_eq!(
            t.external_id.as_str(),
            "017fdd94-4a30-4657-9475-b1a684758531"
        );
        assert_eq!(
            parts_of(&t),
            roles(&[
                (&format!("sales:{FOOD}"), "1"),
                ("tax:State Tax", "0.06"),
                ("tender:card", "1.06"),
                ("fees", "0.04"),
            ])
        );
        assert_eq!(t.hold, None);
        assert_eq!(t.amount, d("1.06"));
        assert_eq!(t.description, "Toast Order #2");
        assert_eq!(t.reference, "TOAST-2");
        assert_eq!(t.payment_method.as_deref(), Some("CREDIT"));
        assert_eq!(t.direction, Direction::Credit);
        // Toast's own businessDate (20190224) decides the day.
        assert_eq!(t.business_date, date(2019, 2, 24));
    }

    #[test]
    fn tips_are_owed_to_staff_not_sales_and_voids_drop_out() {
        let mut o = fixture("toast/order_get_response.json");
        o["checks"][0]["payments"][0]["tipAmount"] = serde_json::json!(2.5);
        let t = sale(&o);
        let p = parts_of(&t);
        assert_eq!(p["tips"], d("2.5"));
        assert_eq!(p["tender:card"], d("3.56"));
        assert_eq!(p[&format!("sales:{FOOD}")], d("1"), "the tip is not a sale");
        o["voided"] = true.into();
        let v = sale(&o);
        assert!(v.parts.is_empty());
        assert_eq!(v.amount, Decimal::ZERO);
        assert!(v.description.ends_with("(voided)"));
        // A voided selection and a voided check are not counted either.
        let mut o = fixture("toast/order_get_response.json");
        let mut extra = selection("Soup", "5", "5", "0.40", "State Tax");
        extra["voided"] = true.into();
        o["checks"][0]["selections"]
            .as_array_mut()
            .unwrap()
            .push(extra);
        let mut check = o["checks"][0].clone();
        check["voided"] = true.into();
        o["checks"].as_array_mut().unwrap().push(check);
        assert_eq!(
            parts_of(&sale(&o)),
            parts_of(&sale(&fixture("toast/order_get_response.json")))
        );
    }

    #[test]
    fn discounts_at_check_and_item_level_comps_and_two_tax_rates() {
        let mut o = fixture("toast/order_get_response.json");
        let c = &mut o["checks"][0];
        let mut burger = selection("Burger", "15", "12", "0.96", "State Tax");
        // An item discount of 2 and the burger's 1.00 share of a check discount.
        burger["appliedDiscounts"] = serde_json::json!([{"name": "Happy hour", "discountAmount": 2.0, "nonTaxDiscountAmount": 2.0, "discountType": "FIXED"}]);
        let mut comped = selection("Dessert", "7", "0", "0", "State Tax");
        comped["appliedDiscounts"] =
            serde_json::json!([{"name": "Comp", "discountAmount": 7.0, "discountType": "PERCENT"}]);
        let wine = selection("Wine", "10", "10", "1.10", "Liquor Tax");
        c["selections"] = serde_json::json!([burger, comped, wine]);
        c["appliedDiscounts"] = serde_json::json!([{"name": "Manager", "discountAmount": 1.0, "discountType": "FIXED"}]);
        c["payments"] = serde_json::json!([payment("CREDIT", "24.06", "0", "CAPTURED")]);
        let t = sale(&o);
        assert_eq!(t.hold, None, "{:?}", t.hold);
        assert_eq!(
            parts_of(&t),
            roles(&[
                (&format!("sales:{FOOD}"), "32"),
                ("discounts", "10"),
                ("tax:State Tax", "0.96"),
                ("tax:Liquor Tax", "1.10"),
                ("tender:card", "24.06"),
            ])
        );
    }

    #[test]
    fn gratuity_and_service_charges_split_tenders_gift_cards_and_failed_payments() {
        let mut o = fixture("toast/order_get_response.json");
        let c = &mut o["checks"][0];
        let food = selection("Platter", "100", "100", "8", "State Tax");
        let gift = serde_json::json!({"displayName": "Gift card", "quantity": 1, "price": 25.0, "preDiscountPrice": 25.0, "tax": 0, "deferred": true, "selectionType": "TOAST_CARD_SELL", "salesCategory": null, "appliedTaxes": []});
        c["selections"] = serde_json::json!([food, gift]);
        c["appliedServiceCharges"] = serde_json::json!([
            {"name": "Auto gratuity", "chargeAmount": 18.0, "gratuity": true, "taxable": false, "appliedTaxes": []},
            {"name": "Event fee", "chargeAmount": 5.0, "gratuity": false, "taxable": false, "appliedTaxes": []},
        ]);
        let mut card = payment("CREDIT", "100", "4", "CAPTURED");
        card["originalProcessingFee"] = serde_json::json!(2.76);
        c["payments"] = serde_json::json!([
            payment("CREDIT", "156", "0", "DENIED"),
            card,
            payment("CASH", "36", "0", "CAPTURED"),
            payment("GIFTCARD", "20", "0", "CAPTURED"),
            payment("CREDIT", "50", "0", "ERROR"),
        ]);
        let t = sale(&o);
        assert_eq!(t.hold, None, "{:?}", t.hold);
        assert_eq!(
            parts_of(&t),
            roles(&[
                (&format!("sales:{FOOD}"), "100"),
                ("gift_cards_sold", "25"),
                ("gratuity", "18"),
                ("service_charges", "5"),
                ("tax:State Tax", "8"),
                ("tips", "4"),
                ("tender:card", "104"),
                ("tender:cash", "36"),
                ("gift_cards_redeemed", "20"),
                ("fees", "2.76"),
            ])
        );
        assert_eq!(t.amount, d("160"));
        // The failed payments are what the first money payment is not.
        assert_eq!(t.payment_method.as_deref(), Some("CREDIT"));
    }

    #[test]
    fn a_refund_on_a_later_day_is_its_own_record_with_its_tax_and_tip() {
        let mut o = fixture("toast/order_get_response.json");
        let c = &mut o["checks"][0];
        let mut steak = selection("Steak", "40", "40", "3.20", "State Tax");
        steak["refundDetails"] = serde_json::json!({"refundAmount": 40.0, "taxRefundAmount": 3.20});
        let salad = selection("Salad", "10", "10", "0.80", "State Tax");
        c["selections"] = serde_json::json!([steak, salad]);
        let mut card = payment("CREDIT", "54", "8", "CAPTURED");
        card["refundStatus"] = "PARTIAL".into();
        card["refund"] = serde_json::json!({"refundAmount": 43.20, "tipRefundAmount": 5.0, "refundDate": "2019-02-26T15:00:00.000+0000", "refundBusinessDate": 20190226});
        c["payments"] = serde_json::json!([card]);
        let all = order_to_transactions(&o, &connection("America/New_York", "04:00")).unwrap();
        assert_eq!(all.len(), 2);
        // The sale is as sold: totalAmount is "not affected by refunds".
        assert_eq!(
            parts_of(&all[0]),
            roles(&[
                (&format!("sales:{FOOD}"), "50"),
                ("tax:State Tax", "4"),
                ("tips", "8"),
                ("tender:card", "62"),
            ])
        );
        let r = &all[1];
        assert_eq!(r.business_date, date(2019, 2, 26));
        assert_eq!(r.direction, Direction::Debit);
        assert_eq!(
            r.external_id.as_str(),
            "017fdd94-4a30-4657-9475-b1a684758531:refund:pay-CREDIT-54"
        );
        assert_eq!(
            parts_of(r),
            roles(&[
                ("refunds", "40"),
                ("tax:State Tax", "-3.20"),
                ("tips", "-5"),
                ("tender:card", "-48.20"),
            ])
        );
        assert_eq!(parts::imbalance(&r.parts), Decimal::ZERO);
        assert_eq!(r.hold, None);
    }

    #[test]
    fn a_check_not_fully_paid_is_held_with_the_fields_named() {
        let mut o = fixture("toast/order_get_response.json");
        o["checks"][0]["payments"][0]["paymentStatus"] = "PROCESSING".into();
        let t = sale(&o);
        let why = t.hold.expect("held");
        assert!(why.contains("do not balance by 1.06"), "{why}");
        assert!(why.contains("payments' amount"), "{why}");
        // An AUTHORIZED payment is money.
        o["checks"][0]["payments"][0]["paymentStatus"] = "AUTHORIZED".into();
        assert_eq!(sale(&o).hold, None);
    }

    #[test]
    fn without_a_business_date_an_order_at_2330_local_on_the_night_clocks_change_books_that_night()
    {
        let mut o = fixture("toast/order_get_response.json");
        o.as_object_mut().unwrap().remove("businessDate");
        // 2026-11-01 03:30Z is 23:30 EDT on Oct 31, the night the clocks fall back.
        o["openedDate"] = "2026-11-01T03:30:00.000+0000".into();
        assert_eq!(sale(&o).business_date, date(2026, 10, 31));
        // 01:30 local after midnight, before a 04:00 close: still the night before.
        o["openedDate"] = "2026-11-01T06:30:00.000+0000".into();
        assert_eq!(sale(&o).business_date, date(2026, 10, 31));
        // With a midnight close the same instant is the next day.
        let t = order_to_transactions(&o, &connection("America/New_York", "00:00")).unwrap();
        assert_eq!(t[0].business_date, date(2026, 11, 1));
    }

    #[test]
    fn the_records_are_in_the_restaurants_currency_and_an_unknown_one_is_an_error() {
        let o = fixture("toast/order_get_response.json");
        let mut conn = connection("America/Toronto", "04:00");
        conn.currency = Some(Currency::new("CAD").unwrap());
        let t = order_to_transactions(&o, &conn).unwrap();
        assert_eq!(t[0].currency.as_str(), "CAD");
        conn.currency = None;
        let err = order_to_transactions(&o, &conn).unwrap_err();
        assert_eq!(err.field, "currency");
    }

    #[test]
    fn bad_payloads_name_the_field() {
        let conn = connection("UTC", "00:00");
        let mut o = fixture("toast/order_get_response.json");
        o["checks"][0]["payments"][0]["amount"] = "lots".into();
        let err = order_to_transactions(&o, &conn).unwrap_err();
        assert_eq!(err.field, "checks[0].payments[0].amount");
        o["businessDate"] = "2019-02-24".into();
        let err = order_to_transactions(&o, &conn).unwrap_err();
        assert_eq!(err.field, "businessDate");
        o.as_object_mut().unwrap().remove("openedDate");
        let err = order_to_transactions(&o, &conn).unwrap_err();
        assert_eq!(err.field, "openedDate");
    }

    #[test]
    fn menus_become_items_with_ingredients_from_the_reference_maps() {
        // The definition's shape: integer references into top-level maps.
        let menus = serde_json::json!({
            "menus": [{"name": "Dinner", "menuGroups": [{"name": "Burgers", "menuItems": [
                {"guid": "i1", "name": "Cheeseburger", "price": 12.5, "modifierGroupReferences": [3]}
            ], "menuGroups": [{"name": "Sides", "menuItems": [{"guid": "i2", "name": "Fries", "price": 4, "modifierGroupReferences": []}]}]}]}],
            "modifierGroupReferences": {"3": {"referenceId": 3, "name": "Cheese", "guid": "g3", "modifierOptionReferences": [10, 11]}},
            "modifierOptionReferences": {
                "10": {"referenceId": 10, "name": "Cheddar", "guid": "m10"},
                "11": {"referenceId": 11, "name": "Swiss", "guid": "m11"}
            }
        });
        let items = menus_to_items(&menus, &connection("UTC", "00:00")).unwrap();
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].price, Some(Decimal::from_str("12.5").unwrap()));
        let names: Vec<&str> = items[0]
            .ingredients
            .iter()
            .map(|i| i.name.as_str())
            .collect();
        assert_eq!(names, ["Cheddar", "Swiss"]);
        assert_eq!(
            items[0].ingredients[0].item_id.as_ref().unwrap().as_str(),
            "m10"
        );
        assert_eq!(items[1].category.as_deref(), Some("Sides"));
        assert!(items[1].ingredients.is_empty());
        // The inline shape the definition does not have gives no ingredients.
        let inline = serde_json::json!({"menus": [{"menuGroups": [{"name": "B", "menuItems": [
            {"guid": "i1", "name": "X", "modifierGroups": [{"modifierOptions": [{"guid": "m1", "name": "Cheddar"}]}]}
        ]}]}]});
        let items = menus_to_items(&inline, &connection("UTC", "00:00")).unwrap();
        assert!(items[0].ingredients.is_empty());
    }
}

//! Square sales and inventory counts to the internal model.
//!
//! # Sales: orders, their payments, and refunds
//!
//! A Square payment carries no tax, discount or category: those are on its
//! order. [`sales_to_transactions`] takes payments, the orders they belong
//! to, and refunds, and makes:
//!
//! - **One sale record per order** (external id = the order id), on the
//!   business date of the order's `created_at`, with its parts
//!   ([`crate::model::parts`]):
//!   - `sales:<item_type lower-cased>` from each line's `gross_sales_money`
//!     (`sales:item`, `sales:custom_amount`). An order line carries no
//!     catalog category (that would take a catalog lookup per
//!     `catalog_object_id`), so the line's `item_type` stands in for it.
//!     `GIFT_CARD` lines are `gift_cards_sold`.
//!   - `discounts` from each line's `total_discount_money` (order-scoped
//!     discounts are apportioned onto the lines by Square).
//!   - `tax:<tax name>` from each line's and each service charge's
//!     `applied_taxes[].applied_money`, named through the order's
//!     `taxes[]` (`uid` → `name`; the uid when the order names none).
//!   - `gratuity` (service charge `type` `AUTO_GRATUITY`) or
//!     `service_charges` (any other) from each service charge's
//!     `total_money − total_tax_money`: the charge net of its tax whether
//!     the tax is additive (`total_money = applied_money + tax`) or
//!     inclusive (`total_money = applied_money`, tax already in it); with
//!     no `total_money`, `applied_money`, then `amount_money`.
//!   - From each of the order's payments that is `COMPLETED` (`APPROVED`
//!     may still be cancelled; `CANCELED` and `FAILED` are not money):
//!     its `total_money` (amount + tip) as a tender: `tender:cash`
//!     (`source_type` CASH), `tender:other:<external_details.type
//!     lower-cased>` (EXTERNAL: delivery apps, checks), `tender:card` (CARD,
//!     WALLET, BUY_NOW_PAY_LATER, SQUARE_ACCOUNT, BANK_ACCOUNT: all settled
//!     through Square's payout, UNVERIFIED for the last three), or
//!     `gift_cards_redeemed` when the card brand is `SQUARE_GIFT_CARD`;
//!     `tips` from its `tip_money`; `fees` from every `processing_fee[]`
//!     entry's `amount_money` (INITIAL and ADJUSTMENT alike).
//!
//!   An order whose parts do not balance (not fully paid by completed
//!   payments, a payment listed in its `tenders[]` but not supplied, a
//!   total the lines do not add up to) is still returned, with `hold`
//!   naming the fields, and is parked rather than booked. An order in state
//!   `CANCELED` gives a record with no parts (nothing is booked; a booked
//!   day recomputes without it). Payments whose order was not supplied give
//!   a held record under their `order_id` (the one the full record will
//!   replace). Return orders (orders with `returns[]` and no `line_items`,
//!   which Square creates for itemized refunds) are not sales: they only
//!   give the tax and tip of their refunds.
//!
//! - **One refund record per `COMPLETED` `PaymentRefund`** (external id =
//!   the refund id), on the business date of the refund's `created_at`:
//!   the tender (the refunded payment's role, or by the refund's
//!   `destination_type` when the payment is not supplied) *negative* by the
//!   whole `amount_money`; `tax:<rate>` and `tips` *negative* by their
//!   parts; `refunds` the rest (the refunded amount net of its tax and
//!   tip); `fees` from the refund's own `processing_fee[]` (as signed).
//!   Where the tax and tip parts come from: the refund's `order_id` names
//!   the return order of an itemized refund (UNVERIFIED: the definition
//!   says only "the order associated with the refund"), whose
//!   `returns[].return_taxes[]` give the tax per rate (`applied_money`,
//!   named by `name`, else the source order's tax of `source_tax_uid`) and
//!   `returns[].return_amounts.tip_money` (else `return_tips[]`) the tip.
//!   When the return order lists several `refunds[]` (a return refunded to
//!   two tenders), each refund takes a share in proportion to its amount,
//!   the last by id the remainder. A refund with no return order (a refund
//!   "by amount") carries no tax or tip in the definition: all of it is
//!   `refunds` (UNVERIFIED that Square's own reports leave tax and tips
//!   untouched for these).
//!
//! Money is integer minor units in the money's own currency, scaled by its
//! exponent; every amount of a record must be in the record's currency.
//!
//! # Inventory
//! [`count_to_level`]: only `IN_STOCK` counts are on hand.

use crate::ids::ExternalId;
use crate::model::{
    Connection, Currency, Direction, InventoryLevel, LineItem, Part, Provider, Transaction,
};
use crate::transforms::{TransformError, decimal, from_minor_units, parse_timestamp};
use jiff::Timestamp;
use rust_decimal::Decimal;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

fn err(id: &str, field: &str, e: impl ToString) -> TransformError {
    TransformError::new(Provider::Square, id, field, e.to_string())
}

fn str_of<'a>(v: &'a Value, field: &str) -> Option<&'a str> {
    v.get(field)
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
}

fn array<'a>(v: &'a Value, field: &str) -> &'a [Value] {
    v.get(field)
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default()
}

/// Money being summed into one record: every amount must be in its currency.
struct Ledger<'a> {
    id: &'a str,
    currency: String,
    parts: BTreeMap<String, i64>,
}

impl<'a> Ledger<'a> {
    fn new(id: &'a str, currency: &str) -> Self {
        Ledger {
            id,
            currency: currency.to_string(),
            parts: BTreeMap::new(),
        }
    }

    /// The minor units of the Money at `v[key]` (0 when absent), checking
    /// its currency; `field` names it in errors.
    fn cents(&self, v: &Value, key: &str, field: &str) -> Result<i64, TransformError> {
        cents_in(v, key, Some(&self.currency), self.id, field).map(|c| c.unwrap_or(0))
    }

    fn add(&mut self, role: &str, cents: i64) {
        if cents != 0 {
            *self.parts.entry(role.to_string()).or_default() += cents;
        }
    }

    fn credits_and_debits(&self) -> (i64, i64) {
        let (mut credits, mut debits) = (0i64, 0i64);
        for (role, c) in &self.parts {
            match crate::model::parts::side(role) {
                Some(crate::model::parts::Side::Credit) => credits += c,
                Some(crate::model::parts::Side::Debit) => debits += c,
                _ => {}
            }
        }
        (credits, debits)
    }

    fn money(&self, cents: i64) -> Decimal {
        from_minor_units(cents, &self.currency)
    }

    fn into_parts(self) -> Vec<Part> {
        let currency = self.currency;
        self.parts
            .into_iter()
            .filter(|(_, c)| *c != 0)
            .map(|(role, c)| Part {
                role,
                amount: from_minor_units(c, &currency),
            })
            .collect()
    }
}

/// The Money at `v[key]`: `None` when absent; an error when malformed or,
/// with `currency`, in another currency.
fn cents_in(
    v: &Value,
    key: &str,
    currency: Option<&str>,
    id: &str,
    field: &str,
) -> Result<Option<i64>, TransformError> {
    let m = match v.get(key) {
        None | Some(Value::Null) => return Ok(None),
        Some(m) => m,
    };
    let amount = m["amount"]
        .as_i64()
        .ok_or_else(|| err(id, &format!("{field}.amount"), "not integer minor units"))?;
    if let Some(want) = currency {
        let got = m["currency"].as_str().unwrap_or_default();
        if !got.eq_ignore_ascii_case(want) {
            return Err(err(
                id,
                &format!("{field}.currency"),
                format!("{got:?} in a record in {want}"),
            ));
        }
    }
    Ok(Some(amount))
}

/// A payment's tender role (see the module doc).
fn payment_role(p: &Value) -> String {
    if p["card_details"]["card"]["card_brand"].as_str() == Some("SQUARE_GIFT_CARD") {
        return "gift_cards_redeemed".into();
    }
    match str_of(p, "source_type") {
        Some("CASH") => "tender:cash".into(),
        Some("EXTERNAL") => format!(
            "tender:other:{}",
            str_of(&p["external_details"], "type")
                .unwrap_or("external")
                .to_ascii_lowercase()
        ),
        None
        | Some("CARD" | "WALLET" | "BUY_NOW_PAY_LATER" | "SQUARE_ACCOUNT" | "BANK_ACCOUNT") => {
            "tender:card".into()
        }
        Some(other) => format!("tender:other:{}", other.to_ascii_lowercase()),
    }
}

/// How a payment was made, for `Transaction::payment_method`.
fn payment_method(p: &Value) -> Option<String> {
    match str_of(p, "source_type") {
        Some("CARD") => Some(match p["card_details"]["card"]["card_brand"].as_str() {
            Some(b) => format!("CARD:{b}"),
            None => "CARD".into(),
        }),
        Some("EXTERNAL") => Some(match str_of(&p["external_details"], "source") {
            Some(s) => format!("EXTERNAL:{s}"),
            None => "EXTERNAL".into(),
        }),
        other => other.map(str::to_string),
    }
}

fn timestamp(v: &Value, field: &str, id: &str) -> Result<Timestamp, TransformError> {
    let s = str_of(v, field).ok_or_else(|| err(id, field, "missing"))?;
    parse_timestamp(s).map_err(|e| err(id, field, e))
}

fn short(id: &str) -> String {
    id.chars().take(8).collect()
}

fn is_return_order(o: &Value) -> bool {
    !array(o, "returns").is_empty() && array(o, "line_items").is_empty()
}

/// Square sales to transactions: one per order, one per completed refund
/// (see the module doc). `payments` are the orders' payments (every status;
/// only `COMPLETED` ones are money), `orders` the orders they name and the
/// return orders the refunds name, `refunds` the `PaymentRefund`s. Records
/// come in the order of `orders`, then held records for payments whose
/// order is missing, then refunds; an id given twice counts once.
pub fn sales_to_transactions(
    payments: &[Value],
    orders: &[Value],
    refunds: &[Value],
    connection: &Connection,
) -> Result<Vec<Transaction>, TransformError> {
    let mut payments_by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    let mut by_order: BTreeMap<&str, Vec<&Value>> = BTreeMap::new();
    for p in payments {
        let id = str_of(p, "id").ok_or_else(|| err("?", "payment.id", "missing"))?;
        if payments_by_id.insert(id, p).is_none() {
            // Payments without an order stand alone, under their own id.
            let key = str_of(p, "order_id").unwrap_or(id);
            by_order.entry(key).or_default().push(p);
        }
    }
    let mut orders_by_id: BTreeMap<&str, &Value> = BTreeMap::new();
    for o in orders {
        let id = str_of(o, "id").ok_or_else(|| err("?", "order.id", "missing"))?;
        orders_by_id.entry(id).or_insert(o);
    }
    let mut out = Vec::new();
    let mut done: BTreeSet<&str> = BTreeSet::new();
    for o in orders {
        let id = str_of(o, "id").unwrap_or_default();
        if !done.insert(id) || is_return_order(o) {
            continue;
        }
        let own = by_order.get(id).map(Vec::as_slice).unwrap_or_default();
        out.push(order_to_transaction(o, own, &payments_by_id, connection)?);
    }
    for (order_id, group) in &by_order {
        if orders_by_id.contains_key(order_id) {
            continue;
        }
        if group
            .iter()
            .any(|p| matches!(str_of(p, "status"), Some("COMPLETED" | "APPROVED")))
        {
            out.push(orphan_payments(order_id, group, connection)?);
        }
    }
    let mut seen_refunds = BTreeSet::new();
    for r in refunds {
        let id = str_of(r, "id").ok_or_else(|| err("?", "refund.id", "missing"))?;
        if !seen_refunds.insert(id) || str_of(r, "status") != Some("COMPLETED") {
            continue;
        }
        out.push(refund_to_transaction(
            r,
            &payments_by_id,
            &orders_by_id,
            connection,
        )?);
    }
    Ok(out)
}

/// What a payment adds to its order's record; notes what is not money yet.
fn add_payment(
    led: &mut Ledger<'_>,
    p: &Value,
    pending: &mut Vec<String>,
) -> Result<(), TransformError> {
    let pid = str_of(p, "id").unwrap_or("?");
    match str_of(p, "status") {
        Some("COMPLETED") => {}
        Some("CANCELED" | "FAILED") => return Ok(()),
        other => {
            pending.push(format!("{pid} ({})", other.unwrap_or("no status")));
            return Ok(());
        }
    }
    let field = |f: &str| format!("payments[{pid}].{f}");
    let total = match cents_in(
        p,
        "total_money",
        Some(&led.currency),
        led.id,
        &field("total_money"),
    )? {
        Some(t) => t,
        None => {
            led.cents(p, "amount_money", &field("amount_money"))?
                + led.cents(p, "tip_money", &field("tip_money"))?
        }
    };
    let tip = led.cents(p, "tip_money", &field("tip_money"))?;
    led.add(&payment_role(p), total);
    led.add("tips", tip);
    for f in array(p, "processing_fee") {
        let fee = led.cents(f, "amount_money", &field("processing_fee[].amount_money"))?;
        led.add("fees", fee);
    }
    Ok(())
}

fn order_to_transaction(
    o: &Value,
    own: &[&Value],
    payments_by_id: &BTreeMap<&str, &Value>,
    connection: &Connection,
) -> Result<Transaction, TransformError> {
    let id = str_of(o, "id").unwrap_or_default();
    let occurred_at = timestamp(o, "created_at", id)?;
    let currency = [&o["total_money"], &o["line_items"][0]["total_money"]]
        .into_iter()
        .chain(own.iter().map(|p| &p["total_money"]))
        .find_map(|m| m["currency"].as_str())
        .ok_or_else(|| err(id, "total_money.currency", "missing"))?
        .to_string();
    let mut led = Ledger::new(id, &currency);
    let canceled = str_of(o, "state") == Some("CANCELED");
    let mut hold = None;
    let mut main: Option<(i64, &Value)> = None;
    if !canceled {
        let tax_names: BTreeMap<&str, &str> = array(o, "taxes")
            .iter()
            .filter_map(|t| Some((str_of(t, "uid")?, str_of(t, "name").or(str_of(t, "uid"))?)))
            .collect();
        let tax_role = |uid: &str| format!("tax:{}", tax_names.get(uid).copied().unwrap_or(uid));
        let mut lines_total = 0i64;
        for (i, l) in array(o, "line_items").iter().enumerate() {
            let f = |x: &str| format!("line_items[{i}].{x}");
            let gross = led.cents(l, "gross_sales_money", &f("gross_sales_money"))?;
            match str_of(l, "item_type").unwrap_or("ITEM") {
                "GIFT_CARD" => led.add("gift_cards_sold", gross),
                t => led.add(&format!("sales:{}", t.to_ascii_lowercase()), gross),
            }
            led.add(
                "discounts",
                led.cents(l, "total_discount_money", &f("total_discount_money"))?,
            );
            for t in array(l, "applied_taxes") {
                let uid = str_of(t, "tax_uid").unwrap_or("?");
                let c = led.cents(t, "applied_money", &f("applied_taxes[].applied_money"))?;
                led.add(&tax_role(uid), c);
            }
            lines_total += led.cents(l, "total_money", &f("total_money"))?;
        }
        for (i, s) in array(o, "service_charges").iter().enumerate() {
            let f = |x: &str| format!("service_charges[{i}].{x}");
            let tax = led.cents(s, "total_tax_money", &f("total_tax_money"))?;
            let net = match cents_in(s, "total_money", Some(&currency), id, &f("total_money"))? {
                Some(t) => t - tax,
                None => {
                    match cents_in(s, "applied_money", Some(&currency), id, &f("applied_money"))? {
                        Some(a) => a,
                        None => led.cents(s, "amount_money", &f("amount_money"))?,
                    }
                }
            };
            let role = if str_of(s, "type") == Some("AUTO_GRATUITY") {
                "gratuity"
            } else {
                "service_charges"
            };
            led.add(role, net);
            for t in array(s, "applied_taxes") {
                let uid = str_of(t, "tax_uid").unwrap_or("?");
                let c = led.cents(t, "applied_money", &f("applied_taxes[].applied_money"))?;
                led.add(&tax_role(uid), c);
            }
            lines_total += net + tax;
        }
        let mut pending = Vec::new();
        for p in own {
            add_payment(&mut led, p, &mut pending)?;
            if str_of(p, "status") == Some("COMPLETED") {
                let t = cents_in(p, "total_money", None, id, "total_money")?.unwrap_or(0);
                if main.is_none_or(|(best, _)| t > best) {
                    main = Some((t, p));
                }
            }
        }
        let missing: Vec<&str> = array(o, "tenders")
            .iter()
            .filter_map(|t| str_of(t, "payment_id").or(str_of(t, "id")))
            .filter(|pid| !payments_by_id.contains_key(pid))
            .collect();
        let (credits, debits) = led.credits_and_debits();
        let order_total = cents_in(o, "total_money", Some(&currency), id, "total_money")?;
        let mut problems = Vec::new();
        if credits != debits {
            problems.push(format!(
                "credits {} (line_items[].gross_sales_money, service_charges[], applied_taxes[].applied_money, payments' tip_money) against debits {} (line_items[].total_discount_money, COMPLETED payments' total_money): {} unaccounted",
                led.money(credits),
                led.money(debits),
                led.money(credits - debits)
            ));
            if !pending.is_empty() {
                problems.push(format!("payments not COMPLETED: {}", pending.join(", ")));
            }
            if !missing.is_empty() {
                problems.push(format!(
                    "tenders[].payment_id not supplied: {}",
                    missing.join(", ")
                ));
            }
        }
        if let Some(total) = order_total
            && total != lines_total
        {
            problems.push(format!(
                "total_money {} is not line_items[].total_money + service_charges[].total_money {}",
                led.money(total),
                led.money(lines_total)
            ));
        }
        if !problems.is_empty() {
            hold = Some(format!("order {id}: {}", problems.join("; ")));
        }
    }
    let amount = tenders_total(&led);
    let line_items = if canceled {
        Vec::new()
    } else {
        line_items(o, &led)
    };
    Ok(Transaction {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        source: Provider::Square,
        external_id: ExternalId::new(id).map_err(|e| err(id, "id", e))?,
        amount: led.money(amount),
        currency: Currency::new(&currency).map_err(|e| err(id, "total_money.currency", e))?,
        direction: Direction::Credit,
        description: if canceled {
            format!("Square Order {} (canceled)", short(id))
        } else {
            format!("Square Order {}", short(id))
        },
        business_date: connection.business_date(occurred_at),
        occurred_at,
        reference: format!("SQ-{}", short(id)),
        payment_method: main.and_then(|(_, p)| payment_method(p)),
        line_items,
        parts: led.into_parts(),
        hold,
    })
}

fn tenders_total(led: &Ledger<'_>) -> i64 {
    led.parts
        .iter()
        .filter(|(r, _)| r.starts_with("tender:") || *r == "gift_cards_redeemed")
        .map(|(_, c)| c)
        .sum()
}

fn line_items(o: &Value, led: &Ledger<'_>) -> Vec<LineItem> {
    array(o, "line_items")
        .iter()
        .map(|l| {
            let name = str_of(l, "name").unwrap_or(match str_of(l, "item_type") {
                Some("GIFT_CARD") => "Gift card",
                Some("CUSTOM_AMOUNT") => "Custom amount",
                _ => "Item",
            });
            let description = match str_of(l, "variation_name") {
                Some(v) if v != name => format!("{name} ({v})"),
                _ => name.to_string(),
            };
            let money = |k: &str| {
                led.money(
                    cents_in(l, k, None, led.id, k)
                        .ok()
                        .flatten()
                        .unwrap_or_default(),
                )
            };
            LineItem {
                description,
                item_id: str_of(l, "catalog_object_id").and_then(|c| ExternalId::new(c).ok()),
                quantity: decimal(&l["quantity"])
                    .ok()
                    .flatten()
                    .unwrap_or(Decimal::ONE),
                unit_price: money("base_price_money"),
                amount: money("total_money"),
            }
        })
        .collect()
}

/// Payments whose order was not supplied: held under the order's id.
fn orphan_payments(
    order_id: &str,
    group: &[&Value],
    connection: &Connection,
) -> Result<Transaction, TransformError> {
    let first = group[0];
    let occurred_at = timestamp(first, "created_at", order_id)?;
    let currency = first["total_money"]["currency"]
        .as_str()
        .or(first["amount_money"]["currency"].as_str())
        .ok_or_else(|| err(order_id, "total_money.currency", "missing"))?
        .to_string();
    let mut led = Ledger::new(order_id, &currency);
    let mut pending = Vec::new();
    for p in group {
        add_payment(&mut led, p, &mut pending)?;
    }
    let ids: Vec<&str> = group.iter().filter_map(|p| str_of(p, "id")).collect();
    let amount = tenders_total(&led);
    Ok(Transaction {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        source: Provider::Square,
        external_id: ExternalId::new(order_id).map_err(|e| err(order_id, "order_id", e))?,
        amount: led.money(amount),
        currency: Currency::new(&currency).map_err(|e| err(order_id, "total_money.currency", e))?,
        direction: Direction::Credit,
        description: format!("Square Order {}", short(order_id)),
        business_date: connection.business_date(occurred_at),
        occurred_at,
        reference: format!("SQ-{}", short(order_id)),
        payment_method: payment_method(first),
        line_items: Vec::new(),
        hold: Some(format!(
            "order {order_id}: payments {} name it in order_id but the order (line_items, taxes, discounts) was not supplied",
            ids.join(", ")
        )),
        parts: led.into_parts(),
    })
}

/// `component × amount / total`, the share of one refund of several.
fn share(component: i64, amount: i64, total: i64) -> i64 {
    if total == 0 {
        return component;
    }
    i64::try_from(i128::from(component) * i128::from(amount) / i128::from(total)).unwrap_or(0)
}

fn refund_to_transaction(
    r: &Value,
    payments_by_id: &BTreeMap<&str, &Value>,
    orders_by_id: &BTreeMap<&str, &Value>,
    connection: &Connection,
) -> Result<Transaction, TransformError> {
    let id = str_of(r, "id").unwrap_or_default();
    let occurred_at = timestamp(r, "created_at", id)?;
    let currency = r["amount_money"]["currency"]
        .as_str()
        .ok_or_else(|| err(id, "amount_money.currency", "missing"))?
        .to_string();
    let mut led = Ledger::new(id, &currency);
    let amount = led.cents(r, "amount_money", "amount_money")?;
    let payment = str_of(r, "payment_id").and_then(|p| payments_by_id.get(p).copied());
    let tender = match payment {
        Some(p) => payment_role(p),
        None => match str_of(r, "destination_type") {
            Some("CASH") => "tender:cash".into(),
            Some("EXTERNAL") => "tender:other:external".into(),
            _ => "tender:card".into(),
        },
    };
    // The return order's tax per rate and tip, whole.
    let mut taxes: BTreeMap<String, i64> = BTreeMap::new();
    let mut tip = 0i64;
    let mut hold = None;
    let ret = str_of(r, "order_id")
        .and_then(|o| orders_by_id.get(o).copied())
        .filter(|o| !array(o, "returns").is_empty());
    if let Some(ret) = ret {
        for (i, rt) in array(ret, "returns").iter().enumerate() {
            let f = |x: &str| format!("returns[{i}].{x}");
            let source = str_of(rt, "source_order_id").and_then(|s| orders_by_id.get(s).copied());
            let mut rt_tax = 0;
            for t in array(rt, "return_taxes") {
                let name = str_of(t, "name")
                    .or_else(|| {
                        let uid = str_of(t, "source_tax_uid")?;
                        array(source?, "taxes")
                            .iter()
                            .find(|x| str_of(x, "uid") == Some(uid))
                            .and_then(|x| str_of(x, "name"))
                    })
                    .or(str_of(t, "source_tax_uid"))
                    .or(str_of(t, "uid"))
                    .unwrap_or("?");
                let c = led.cents(t, "applied_money", &f("return_taxes[].applied_money"))?;
                *taxes.entry(format!("tax:{name}")).or_default() += c;
                rt_tax += c;
            }
            let amounts = &rt["return_amounts"];
            if let Some(t) = cents_in(
                amounts,
                "tax_money",
                Some(&currency),
                id,
                &f("return_amounts.tax_money"),
            )? && t != rt_tax
            {
                hold = Some(format!(
                    "refund {id}: return order {}: {} = {} but return_taxes[].applied_money sum to {}",
                    str_of(ret, "id").unwrap_or("?"),
                    f("return_amounts.tax_money"),
                    led.money(t),
                    led.money(rt_tax)
                ));
            }
            tip += match cents_in(
                amounts,
                "tip_money",
                Some(&currency),
                id,
                &f("return_amounts.tip_money"),
            )? {
                Some(t) => t,
                None => array(rt, "return_tips")
                    .iter()
                    .map(|t| led.cents(t, "applied_money", &f("return_tips[].applied_money")))
                    .sum::<Result<i64, _>>()?,
            };
        }
        // Several refunds of one return: this refund's share.
        let mut siblings: Vec<(&str, i64)> = array(ret, "refunds")
            .iter()
            .filter_map(|x| Some((str_of(x, "id")?, x["amount_money"]["amount"].as_i64()?)))
            .collect();
        siblings.sort();
        if siblings.len() > 1 && siblings.iter().any(|(s, _)| *s == id) {
            let total: i64 = siblings.iter().map(|(_, a)| a).sum();
            let last = siblings.last().map(|(s, _)| *s) == Some(id);
            let portion = |whole: i64| {
                if last {
                    whole
                        - siblings[..siblings.len() - 1]
                            .iter()
                            .map(|(_, a)| share(whole, *a, total))
                            .sum::<i64>()
                } else {
                    share(whole, amount, total)
                }
            };
            for v in taxes.values_mut() {
                *v = portion(*v);
            }
            tip = portion(tip);
        }
    }
    let tax_total: i64 = taxes.values().sum();
    led.add("refunds", amount - tax_total - tip);
    for (role, c) in &taxes {
        led.add(role, -c);
    }
    led.add("tips", -tip);
    led.add(&tender, -amount);
    for f in array(r, "processing_fee") {
        let fee = led.cents(f, "amount_money", "processing_fee[].amount_money")?;
        led.add("fees", fee);
    }
    if amount - tax_total - tip < 0 && hold.is_none() {
        hold = Some(format!(
            "refund {id}: amount_money {} is less than its returned tax {} and tip {}",
            led.money(amount),
            led.money(tax_total),
            led.money(tip)
        ));
    }
    Ok(Transaction {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        source: Provider::Square,
        external_id: ExternalId::new(id).map_err(|e| err(id, "id", e))?,
        amount: led.money(amount),
        currency: Currency::new(&currency).map_err(|e| err(id, "amount_money.currency", e))?,
        direction: Direction::Debit,
        description: format!("Square Refund {}", short(id)),
        business_date: connection.business_date(occurred_at),
        occurred_at,
        reference: format!("SQ-{}", short(id)),
        payment_method: payment.and_then(payment_method),
        line_items: Vec::new(),
        parts: led.into_parts(),
        hold,
    })
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
    use crate::model::parts::{imbalance, sum_parts};
    use jiff::civil::date;
    use serde_json::json;
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
            currency: None,
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

    fn usd(c: i64) -> Value {
        json!({"amount": c, "currency": "USD"})
    }

    /// Roles → amounts as strings, for compact assertions.
    fn parts(t: &Transaction) -> BTreeMap<String, String> {
        sum_parts(&t.parts)
            .into_iter()
            .map(|(k, v)| (k, v.to_string()))
            .collect()
    }

    fn roles(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    /// An ITEM line of `gross` cents, `discount` off, taxed by `taxes`
    /// (uid, cents).
    fn line(
        name: &str,
        item_type: &str,
        gross: i64,
        discount: i64,
        taxes: &[(&str, i64)],
    ) -> Value {
        let tax: i64 = taxes.iter().map(|(_, c)| c).sum();
        json!({
            "uid": format!("l-{name}"),
            "name": name,
            "quantity": "1",
            "item_type": item_type,
            "base_price_money": usd(gross),
            "gross_sales_money": usd(gross),
            "total_discount_money": usd(discount),
            "total_tax_money": usd(tax),
            "total_money": usd(gross - discount + tax),
            "applied_taxes": taxes.iter().map(|(u, c)| json!({"uid": format!("at-{u}"), "tax_uid": u, "applied_money": usd(*c)})).collect::<Vec<_>>(),
        })
    }

    fn order(
        id: &str,
        lines: Vec<Value>,
        service_charges: Vec<Value>,
        payments: &[&Value],
    ) -> Value {
        let total: i64 = lines
            .iter()
            .chain(&service_charges)
            .map(|l| l["total_money"]["amount"].as_i64().unwrap())
            .sum();
        json!({
            "id": id,
            "location_id": "L1",
            "state": "COMPLETED",
            "created_at": "2026-03-02T19:00:00.000Z",
            "updated_at": "2026-03-02T19:05:00.000Z",
            "taxes": [
                {"uid": "state", "name": "State Tax", "percentage": "6.25", "type": "ADDITIVE", "scope": "LINE_ITEM"},
                {"uid": "city", "name": "City Tax", "percentage": "2.25", "type": "ADDITIVE", "scope": "LINE_ITEM"},
            ],
            "line_items": lines,
            "service_charges": service_charges,
            "tenders": payments.iter().map(|p| json!({"id": p["id"], "payment_id": p["id"], "type": "CARD", "amount_money": p["total_money"]})).collect::<Vec<_>>(),
            "total_money": usd(total),
        })
    }

    fn payment(
        id: &str,
        order_id: &str,
        source: &str,
        amount: i64,
        tip: i64,
        status: &str,
    ) -> Value {
        let mut p = json!({
            "id": id,
            "order_id": order_id,
            "location_id": "L1",
            "created_at": "2026-03-02T19:04:00.000Z",
            "updated_at": "2026-03-02T19:04:02.000Z",
            "status": status,
            "source_type": source,
            "amount_money": usd(amount),
            "total_money": usd(amount + tip),
        });
        if tip > 0 {
            p["tip_money"] = usd(tip);
        }
        if source == "CARD" {
            p["card_details"] =
                json!({"status": "CAPTURED", "card": {"card_brand": "VISA", "last_4": "1111"}});
        }
        p
    }

    #[test]
    fn the_published_payment_with_its_order_books_sales_tax_tender_and_fee() {
        let p = fixture("square/list_payments_response.json")["payments"][0].clone();
        let o = json!({
            "id": p["order_id"],
            "location_id": "L88917AVBK2S5",
            "state": "COMPLETED",
            "created_at": "2021-10-13T19:34:30.000Z",
            "taxes": [{"uid": "t1", "name": "Sales Tax", "percentage": "11", "type": "ADDITIVE"}],
            "line_items": [line("Latte", "ITEM", 500, 0, &[("t1", 55)])],
            "tenders": [{"id": p["id"], "payment_id": p["id"], "type": "CARD", "amount_money": usd(555)}],
            "total_money": usd(555),
            "total_tax_money": usd(55),
        });
        let t = sales_to_transactions(&[p], &[o], &[], &connection()).unwrap();
        assert_eq!(t.len(), 1);
        let t = &t[0];
        assert_eq!(t.external_id.as_str(), "d7eKah653Z579f3gVtjlxpSlmUcZY");
        assert_eq!((t.direction, t.amount), (Direction::Credit, d("5.55")));
        assert_eq!(t.payment_method.as_deref(), Some("CARD:VISA"));
        // 19:34Z on Oct 13 is 12:34 in Los Angeles.
        assert_eq!(t.business_date, date(2021, 10, 13));
        assert_eq!(
            parts(t),
            roles(&[
                ("sales:item", "5.00"),
                ("tax:Sales Tax", "0.55"),
                ("tender:card", "5.55"),
                ("fees", "0.34"),
            ])
        );
        assert_eq!(imbalance(&t.parts), Decimal::ZERO);
        assert_eq!(t.hold, None);
        assert_eq!(t.line_items[0].description, "Latte");
    }

    #[test]
    fn a_split_tender_with_discounts_service_charges_and_two_taxes_balances() {
        let card = {
            let mut p = payment("PC", "O1", "CARD", 2000, 300, "COMPLETED");
            p["processing_fee"] = json!([{"type": "INITIAL", "amount_money": usd(70)}, {"type": "ADJUSTMENT", "amount_money": usd(8)}]);
            p
        };
        let cash = payment("PK", "O1", "CASH", 1416, 0, "COMPLETED");
        let delivery = {
            let mut p = payment("PX", "O1", "EXTERNAL", 500, 0, "COMPLETED");
            p["external_details"] = json!({"type": "EXTERNAL", "source": "DoorDash"});
            p
        };
        // 2000 + 1416 + 500 = 3916 = lines 3221 + service charges 695.
        let lines = vec![
            line("Burger", "ITEM", 1800, 180, &[("state", 101), ("city", 36)]),
            line(
                "Open",
                "CUSTOM_AMOUNT",
                1500,
                100,
                &[("state", 88), ("city", 32)],
            ),
        ];
        // 1800-180+137 = 1757; 1500-100+120 = 1520; sum 3277. Make the
        // gratuity and fee add up to 3916 - 3277 = 639.
        let service_charges = vec![
            json!({"uid": "g", "name": "Auto gratuity", "type": "AUTO_GRATUITY", "percentage": "18",
                   "applied_money": usd(539), "total_tax_money": usd(0), "total_money": usd(539)}),
            json!({"uid": "f", "name": "Delivery fee", "type": "CUSTOM", "amount_money": usd(94),
                   "applied_money": usd(94), "total_tax_money": usd(6), "total_money": usd(100),
                   "applied_taxes": [{"tax_uid": "state", "applied_money": usd(6)}]}),
        ];
        let o = order("O1", lines, service_charges, &[&card, &cash, &delivery]);
        assert_eq!(o["total_money"]["amount"], 3916);
        let t = sales_to_transactions(&[card, cash, delivery], &[o], &[], &connection()).unwrap();
        assert_eq!(t.len(), 1, "one record per order, not per payment");
        let t = &t[0];
        assert_eq!(
            parts(t),
            roles(&[
                ("sales:item", "18.00"),
                ("sales:custom_amount", "15.00"),
                ("discounts", "2.80"),
                ("tax:State Tax", "1.95"),
                ("tax:City Tax", "0.68"),
                ("gratuity", "5.39"),
                ("service_charges", "0.94"),
                ("tips", "3.00"),
                ("tender:card", "23.00"),
                ("tender:cash", "14.16"),
                ("tender:other:external", "5.00"),
                ("fees", "0.78"),
            ])
        );
        assert_eq!(imbalance(&t.parts), Decimal::ZERO, "{:?}", t.hold);
        assert_eq!(t.hold, None);
        assert_eq!(t.amount, d("42.16"), "the tenders' total");
        assert_eq!(
            t.payment_method.as_deref(),
            Some("CARD:VISA"),
            "the main tender"
        );
        assert_eq!(t.business_date, date(2026, 3, 2));
    }

    #[test]
    fn a_gift_card_sold_and_one_redeemed_are_liability_parts_in_the_orders_currency() {
        let jpy = |c: i64| json!({"amount": c, "currency": "JPY"});
        let mut gc = payment("PG", "O2", "CARD", 3000, 0, "COMPLETED");
        gc["card_details"]["card"]["card_brand"] = "SQUARE_GIFT_CARD".into();
        gc["amount_money"] = jpy(3000);
        gc["total_money"] = jpy(3000);
        let mut card = payment("PC", "O2", "CARD", 5000, 0, "COMPLETED");
        card["amount_money"] = jpy(5000);
        card["total_money"] = jpy(5000);
        let o = json!({
            "id": "O2", "location_id": "L1", "state": "COMPLETED",
            "created_at": "2026-03-02T19:00:00Z",
            "line_items": [
                {"uid": "a", "name": "Gift card", "quantity": "1", "item_type": "GIFT_CARD",
                 "gross_sales_money": jpy(5000), "total_money": jpy(5000)},
                {"uid": "b", "name": "Ramen", "quantity": "2", "item_type": "ITEM",
                 "base_price_money": jpy(1500), "gross_sales_money": jpy(3000), "total_money": jpy(3000)},
            ],
            "total_money": jpy(8000),
        });
        let t = sales_to_transactions(&[gc, card], &[o], &[], &connection()).unwrap();
        let t = &t[0];
        assert_eq!(t.currency.as_str(), "JPY");
        assert_eq!(
            parts(t),
            roles(&[
                ("gift_cards_sold", "5000"),
                ("sales:item", "3000"),
                ("gift_cards_redeemed", "3000"),
                ("tender:card", "5000"),
            ])
        );
        assert_eq!(t.hold, None);
        assert_eq!(t.line_items[1].quantity, d("2"));
        assert_eq!(t.line_items[1].unit_price, d("1500"));
    }

    #[test]
    fn an_approved_payment_is_not_booked_and_holds_its_order() {
        let p = payment("PA", "O3", "CARD", 1000, 0, "APPROVED");
        let o = order(
            "O3",
            vec![line("Soup", "ITEM", 1000, 0, &[])],
            vec![],
            &[&p],
        );
        let t = &sales_to_transactions(&[p], &[o], &[], &connection()).unwrap()[0];
        assert_eq!(parts(t), roles(&[("sales:item", "10.00")]));
        assert_eq!(t.amount, Decimal::ZERO);
        let hold = t.hold.as_deref().unwrap();
        assert!(
            hold.contains("payments not COMPLETED: PA (APPROVED)"),
            "{hold}"
        );
    }

    #[test]
    fn a_failed_payment_beside_the_one_that_paid_is_ignored() {
        let failed = payment("PF", "O4", "CARD", 1000, 0, "FAILED");
        let canceled = payment("PV", "O4", "CARD", 1000, 0, "CANCELED");
        let paid = payment("PK", "O4", "CASH", 1000, 0, "COMPLETED");
        let o = order(
            "O4",
            vec![line("Soup", "ITEM", 1000, 0, &[])],
            vec![],
            &[&paid],
        );
        let t =
            &sales_to_transactions(&[failed, canceled, paid], &[o], &[], &connection()).unwrap()[0];
        assert_eq!(
            parts(t),
            roles(&[("sales:item", "10.00"), ("tender:cash", "10.00")])
        );
        assert_eq!(t.hold, None);
        assert_eq!(t.payment_method.as_deref(), Some("CASH"));
    }

    #[test]
    fn a_refund_on_a_later_day_reverses_its_tax_and_tip() {
        let p = payment("PC", "O5", "CARD", 2170, 400, "COMPLETED");
        let o = order(
            "O5",
            vec![
                line("Steak", "ITEM", 1000, 0, &[("state", 63), ("city", 22)]),
                line("Wine", "ITEM", 1000, 0, &[("state", 63), ("city", 22)]),
            ],
            vec![],
            &[&p],
        );
        // The Wine and the whole tip come back the next day: 1085 + 400.
        let ret = json!({
            "id": "R5", "location_id": "L1", "state": "COMPLETED",
            "created_at": "2026-03-03T18:00:00Z",
            "returns": [{
                "uid": "ret", "source_order_id": "O5",
                "return_line_items": [{"uid": "rl", "source_line_item_uid": "l-Wine", "quantity": "1",
                    "item_type": "ITEM", "gross_return_money": usd(1000), "total_tax_money": usd(85),
                    "total_money": usd(1085)}],
                "return_taxes": [
                    {"uid": "rs", "source_tax_uid": "state", "applied_money": usd(63)},
                    {"uid": "rc", "source_tax_uid": "city", "name": "City Tax", "applied_money": usd(22)},
                ],
                "return_amounts": {"total_money": usd(1485), "tax_money": usd(85), "tip_money": usd(400)},
            }],
            "refunds": [{"id": "RF", "location_id": "L1", "amount_money": usd(1485), "status": "APPROVED", "reason": "x"}],
            "total_money": usd(0),
        });
        let refund = json!({
            "id": "RF", "status": "COMPLETED", "location_id": "L1",
            "amount_money": usd(1485), "payment_id": "PC", "order_id": "R5",
            "created_at": "2026-03-03T18:00:00.000Z", "updated_at": "2026-03-03T18:00:05.000Z",
            "destination_type": "CARD", "reason": "Returned goods",
        });
        let pending = json!({
            "id": "RP", "status": "PENDING", "amount_money": usd(100), "payment_id": "PC",
            "created_at": "2026-03-03T18:00:00.000Z",
        });
        let t = sales_to_transactions(&[p], &[o, ret], &[refund, pending], &connection()).unwrap();
        assert_eq!(
            t.len(),
            2,
            "the sale and the completed refund; the return order is no sale"
        );
        let sale = &t[0];
        assert_eq!(sale.hold, None);
        assert_eq!(imbalance(&sale.parts), Decimal::ZERO);
        let r = &t[1];
        assert_eq!(r.external_id.as_str(), "RF");
        assert_eq!((r.direction, r.amount), (Direction::Debit, d("14.85")));
        assert_eq!(r.business_date, date(2026, 3, 3));
        assert_eq!(
            parts(r),
            roles(&[
                ("refunds", "10.00"),
                ("tax:State Tax", "-0.63"),
                ("tax:City Tax", "-0.22"),
                ("tips", "-4.00"),
                ("tender:card", "-14.85"),
            ])
        );
        assert_eq!(imbalance(&r.parts), Decimal::ZERO);
        assert_eq!(r.hold, None);
    }

    #[test]
    fn a_return_refunded_to_two_tenders_splits_its_tax_by_amount() {
        let ret = json!({
            "id": "R6", "location_id": "L1", "created_at": "2026-03-03T18:00:00Z",
            "returns": [{"return_taxes": [{"name": "State Tax", "applied_money": usd(101)}],
                         "return_amounts": {"tax_money": usd(101)}}],
            "refunds": [{"id": "A", "amount_money": usd(1000)}, {"id": "B", "amount_money": usd(1000)}],
        });
        let refund = |id: &str, dest: &str| {
            json!({"id": id, "status": "COMPLETED", "amount_money": usd(1000), "order_id": "R6",
                   "destination_type": dest, "created_at": "2026-03-03T18:00:00Z"})
        };
        let t = sales_to_transactions(
            &[],
            &[ret],
            &[refund("A", "CARD"), refund("B", "CASH")],
            &connection(),
        )
        .unwrap();
        assert_eq!(parts(&t[0])["tax:State Tax"], "-0.50");
        assert_eq!(
            parts(&t[1])["tax:State Tax"],
            "-0.51",
            "the last takes the remainder"
        );
        assert_eq!(parts(&t[1])["tender:cash"], "-10.00");
        assert!(t.iter().all(|r| imbalance(&r.parts).is_zero()));
    }

    #[test]
    fn a_refund_by_amount_is_all_refunds() {
        let refund = json!({"id": "RA", "status": "COMPLETED", "amount_money": usd(500), "payment_id": "PZ",
                            "order_id": "O9", "destination_type": "CARD", "created_at": "2026-03-04T18:00:00Z"});
        let t = &sales_to_transactions(&[], &[], &[refund], &connection()).unwrap()[0];
        assert_eq!(
            parts(t),
            roles(&[("refunds", "5.00"), ("tender:card", "-5.00")])
        );
    }

    #[test]
    fn an_unbalanced_order_is_held_naming_the_fields() {
        let p = payment("PC", "O7", "CARD", 900, 0, "COMPLETED");
        let mut o = order(
            "O7",
            vec![line("Soup", "ITEM", 1000, 0, &[])],
            vec![],
            &[&p],
        );
        o["tenders"]
            .as_array_mut()
            .unwrap()
            .push(json!({"id": "PM", "payment_id": "PM", "type": "CASH"}));
        let t = &sales_to_transactions(&[p], &[o], &[], &connection()).unwrap()[0];
        let hold = t.hold.as_deref().unwrap();
        for want in [
            "order O7",
            "credits 10.00",
            "line_items[].gross_sales_money",
            "debits 9.00",
            "COMPLETED payments' total_money",
            "1.00 unaccounted",
            "tenders[].payment_id not supplied: PM",
        ] {
            assert!(hold.contains(want), "{want:?} in {hold}");
        }
        assert_eq!(imbalance(&t.parts), d("1.00"));
    }

    #[test]
    fn a_canceled_order_has_no_parts_and_orphan_payments_are_held() {
        let v = payment("PV", "O8", "CARD", 1000, 0, "CANCELED");
        let mut o = order("O8", vec![line("Soup", "ITEM", 1000, 0, &[])], vec![], &[]);
        o["state"] = "CANCELED".into();
        let orphan = payment("PO", "MISSING", "CARD", 700, 0, "COMPLETED");
        let t = sales_to_transactions(&[v, orphan], &[o], &[], &connection()).unwrap();
        assert_eq!(t.len(), 2);
        assert!(t[0].parts.is_empty() && t[0].hold.is_none());
        assert_eq!(t[1].external_id.as_str(), "MISSING");
        assert!(t[1].hold.as_deref().unwrap().contains("was not supplied"));
        assert_eq!(parts(&t[1]), roles(&[("tender:card", "7.00")]));
    }

    #[test]
    fn a_money_in_another_currency_is_an_error_naming_the_field() {
        let mut p = payment("PC", "O1", "CARD", 1000, 0, "COMPLETED");
        p["total_money"] = json!({"amount": 1000, "currency": "CAD"});
        let o = order(
            "O1",
            vec![line("Soup", "ITEM", 1000, 0, &[])],
            vec![],
            &[&p],
        );
        let e = sales_to_transactions(&[p], &[o], &[], &connection()).unwrap_err();
        assert_eq!(e.field, "payments[PC].total_money.currency");
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

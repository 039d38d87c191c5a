//! Toast: login, ordersBulk paging with Link headers, validation, late edits,
//! rate limits.

use crate::{client, link};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastRefund, ToastSandbox};
use hub_sandboxes::{Faults, Limit, Truth};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

pub async fn login(toast: &ToastSandbox) -> String {
    let resp = client()
        .post(format!(
            "{}/authentication/v1/authentication/login",
            toast.base_url()
        ))
        .json(&json!({
            "clientId": toast.client_id(),
            "clientSecret": toast.client_secret(),
            "userAccessType": "TOAST_MACHINE_CLIENT",
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["status"], "SUCCESS");
    assert_eq!(body["token"]["tokenType"], "Bearer");
    assert_eq!(body["token"]["expiresIn"], 86_400);
    body["token"]["accessToken"].as_str().unwrap().to_string()
}

fn config() -> ToastConfig {
    ToastConfig {
        days: 2,
        orders_per_day: 25,
        limits: ToastLimits::unlimited(),
        first_business_date: Some(jiff::civil::date(2025, 6, 2)),
        ..ToastConfig::seeded(42)
    }
}

const START: &str = "2025-06-01T00:00:00.000+0000";
const END: &str = "2025-06-10T00:00:00.000+0000";

#[tokio::test]
async fn orders_bulk_pages_through_every_order_with_link_headers() {
    let toast = ToastSandbox::start(config()).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let expected: BTreeSet<String> = toast
        .orders(&restaurant)
        .into_iter()
        .map(|o| o.guid)
        .collect();
    assert_eq!(expected.len(), 50);

    let first = reqwest::Url::parse_with_params(
        &format!("{}/orders/v2/ordersBulk", toast.base_url()),
        &[
            ("startDate", START),
            ("endDate", END),
            ("pageSize", "20"),
            ("page", "1"),
        ],
    )
    .unwrap();
    let mut next = Some(first.to_string());
    let mut seen = Vec::new();
    let mut pages = 0;
    while let Some(url) = next {
        let resp = client()
            .get(&url)
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{url}");
        pages += 1;
        let headers = resp.headers().clone();
        assert!(link(&headers, "first").is_some());
        assert!(link(&headers, "self").is_some());
        assert!(link(&headers, "last").is_none(), "Toast sends no rel=last");
        assert_eq!(link(&headers, "prev").is_some(), pages > 1);
        next = link(&headers, "next");
        let orders: Vec<Value> = resp.json().await.unwrap();
        assert!(orders.len() <= 20);
        for o in &orders {
            assert_eq!(o["entityType"], "Order");
            assert!(o["businessDate"].as_i64().unwrap() >= 20250602);
            let check = &o["checks"][0];
            assert!(
                check["selections"]
                    .as_array()
                    .is_some_and(|s| !s.is_empty())
            );
            assert!(check["payments"].as_array().is_some_and(|p| !p.is_empty()));
            // Money: at most two decimals, and every check adds up to the cent.
            for check in o["checks"].as_array().unwrap() {
                check_identities(check);
            }
            seen.push(o["guid"].as_str().unwrap().to_string());
        }
    }
    assert_eq!(pages, 3, "50 orders in pages of 20");
    assert_eq!(seen.len(), 50, "no order twice");
    assert_eq!(seen.into_iter().collect::<BTreeSet<_>>(), expected);
}

#[tokio::test]
async fn orders_bulk_selects_on_modified_time_and_sees_late_edits() {
    let toast = ToastSandbox::start(config()).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let orders = toast.orders(&restaurant);
    // A window ending exactly at an order's modified time excludes it.
    let pivot = &orders[10];
    let get = |start: String, end: String| {
        let url = reqwest::Url::parse_with_params(
            &format!("{}/orders/v2/ordersBulk", toast.base_url()),
            &[("startDate", start), ("endDate", end)],
        )
        .unwrap();
        client()
            .get(url)
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
    };
    let fmt = |t: Timestamp| t.strftime("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string();
    let before: Vec<Value> = get(START.into(), fmt(pivot.modified))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before.len(), 10, "endDate is exclusive");
    let from: Vec<Value> = get(fmt(pivot.modified), END.into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(from.len(), 40, "startDate is inclusive");
    assert_eq!(from[0]["guid"], pivot.guid.as_str());

    // A late edit moves the order into a window around now.
    let edited = toast
        .edit_order(&restaurant, &pivot.guid, |o| {
            o.checks[0].payments[0].refund = Some(ToastRefund {
                transaction_guid: "00000000-0000-4000-8000-000000000001".into(),
                amount_cents: 100,
                tip_cents: 0,
                date: Timestamp::now(),
                business_date: o.business_date,
            })
        })
        .unwrap();
    let now = Timestamp::now();
    let window: Vec<Value> = get(
        fmt(Timestamp::from_second(now.as_second() - 60).unwrap()),
        fmt(Timestamp::from_second(now.as_second() + 60).unwrap()),
    )
    .await
    .unwrap()
    .json()
    .await
    .unwrap();
    assert_eq!(window.len(), 1);
    assert_eq!(window[0]["guid"], edited.guid.as_str());
    assert_eq!(
        window[0]["checks"][0]["payments"][0]["refundStatus"],
        "PARTIAL"
    );
}

#[tokio::test]
async fn orders_bulk_refuses_bad_requests_in_the_error_message_shape() {
    let toast = ToastSandbox::start(config()).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let base = format!("{}/orders/v2/ordersBulk", toast.base_url());
    let cases: Vec<(String, Option<&str>, u16)> = vec![
        // No restaurant header.
        (
            reqwest::Url::parse_with_params(&base, &[("startDate", START), ("endDate", END)])
                .unwrap()
                .to_string(),
            None,
            400,
        ),
        // '+' not URL-encoded: decodes to a space.
        (
            format!(
                "{base}?startDate=2025-06-01T00:00:00.000+0000&endDate=2025-06-10T00:00:00.000+0000"
            ),
            Some(&restaurant),
            400,
        ),
        // More than a month.
        (
            reqwest::Url::parse_with_params(
                &base,
                &[
                    ("startDate", "2025-01-01T00:00:00.000+0000"),
                    ("endDate", END),
                ],
            )
            .unwrap()
            .to_string(),
            Some(&restaurant),
            400,
        ),
        // pageSize over 100.
        (
            reqwest::Url::parse_with_params(
                &base,
                &[("startDate", START), ("endDate", END), ("pageSize", "101")],
            )
            .unwrap()
            .to_string(),
            Some(&restaurant),
            400,
        ),
        // Unknown restaurant.
        (
            reqwest::Url::parse_with_params(&base, &[("startDate", START), ("endDate", END)])
                .unwrap()
                .to_string(),
            Some("00000000-0000-0000-0000-000000000000"),
            403,
        ),
    ];
    for (url, header, status) in cases {
        let mut req = client().get(&url).bearer_auth(&token);
        if let Some(h) = header {
            req = req.header("Toast-Restaurant-External-ID", h);
        }
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{url}");
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["status"], status);
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
        assert!(body["requestId"].is_string());
    }
    // No token at all.
    let resp = client()
        .get(
            reqwest::Url::parse_with_params(&base, &[("startDate", START), ("endDate", END)])
                .unwrap(),
        )
        .header("Toast-Restaurant-External-ID", &restaurant)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
}

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_and_toast_headers() {
    let toast = ToastSandbox::start(ToastConfig {
        limits: ToastLimits {
            global: vec![Limit::sliding("15min", 3, Duration::from_secs(30))],
            ..ToastLimits::unlimited()
        },
        ..config()
    })
    .await
    .unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let url = format!("{}/menus/v2/metadata", toast.base_url());
    let mut statuses = Vec::new();
    let mut last = None;
    for _ in 0..5 {
        let resp = client()
            .get(&url)
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
            .await
            .unwrap();
        statuses.push(resp.status().as_u16());
        assert!(resp.headers().contains_key("X-Toast-RateLimit-Remaining"));
        assert!(resp.headers().contains_key("X-Toast-RateLimit-Reset"));
        assert_eq!(resp.headers()["X-Toast-RateLimit-By"], "GLOBAL");
        last = Some(resp);
    }
    assert_eq!(statuses, [200, 200, 200, 429, 429]);
    let last = last.unwrap();
    let retry: u64 = last.headers()["Retry-After"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&retry), "Retry-After {retry}");
    assert_eq!(last.headers()["X-Toast-RateLimit-Remaining"], "0");
    let body: Value = last.json().await.unwrap();
    assert_eq!(body["status"], 429);
    let c = toast.counters();
    assert_eq!(c.rate_limited, 2);
    assert_eq!(c.max_calls_per_window[&restaurant], 3);
    assert_eq!(c.calls_to("GET", "/menus/v2/metadata"), 5);
    assert_eq!(c.token_requests, 1);
    // Another restaurant has its own budget.
    let other = toast.seed_restaurant("Second");
    let resp = client()
        .get(&url)
        .bearer_auth(&token)
        .header("Toast-Restaurant-External-ID", &other)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
}

#[tokio::test]
async fn expired_tokens_get_401() {
    let toast = ToastSandbox::start(config()).await.unwrap();
    let token = login(&toast).await;
    let restaurant = toast.restaurant_guids()[0].clone();
    let url = format!("{}/menus/v2/menus", toast.base_url());
    let get = || {
        client()
            .get(&url)
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", &restaurant)
            .send()
    };
    let menus: Value = get().await.unwrap().json().await.unwrap();
    assert_eq!(menus["restaurantGuid"], restaurant.as_str());
    assert!(menus["menus"][0]["menuGroups"][0]["menuItems"][0]["price"].is_number());
    toast.set_faults(Faults {
        expire_tokens: true,
        ..Faults::none()
    });
    assert_eq!(get().await.unwrap().status(), 401);
    toast.set_faults(Faults::none());
    assert_eq!(get().await.unwrap().status(), 200);
    toast.expire_access_tokens();
    assert_eq!(get().await.unwrap().status(), 401);
    assert_eq!(toast.counters().unauthorized, 2);
}

// ---- Generated content: identities, every kind of money, the truth ----

/// A money value as integer cents; at most two decimals; null is zero.
fn cents(v: &Value) -> i64 {
    if v.is_null() {
        return 0;
    }
    let s = v.to_string();
    let d: rust_decimal::Decimal = s.parse().unwrap();
    assert!(d.scale() <= 2, "{s} has more than two decimals");
    (d * rust_decimal::Decimal::ONE_HUNDRED).try_into().unwrap()
}

fn array(v: &Value) -> &[Value] {
    v.as_array().map(Vec::as_slice).unwrap_or_default()
}

/// A payment that is money (books.md): not voided; CREDIT AUTHORIZED,
/// CAPTURE_IN_PROGRESS or CAPTURED; other tenders CAPTURED or no status.
fn is_money(p: &Value) -> bool {
    let status = p["paymentStatus"].as_str();
    if p["type"] == "CREDIT" {
        matches!(
            status,
            Some("AUTHORIZED" | "CAPTURE_IN_PROGRESS" | "CAPTURED")
        )
    } else {
        matches!(status, None | Some("CAPTURED"))
    }
}

fn live_selections(check: &Value) -> impl Iterator<Item = &Value> {
    array(&check["selections"])
        .iter()
        .filter(|s| s["voided"] != true)
}

/// The identities of one check's JSON, to the cent.
fn check_identities(check: &Value) {
    let mut lines = 0;
    let mut tax = 0;
    let mut allocated = 0;
    for s in live_selections(check) {
        let item_discounts: i64 = array(&s["appliedDiscounts"])
            .iter()
            .map(|d| cents(&d["discountAmount"]))
            .sum();
        let pre = cents(&s["preDiscountPrice"]);
        let price = cents(&s["price"]);
        assert_eq!(
            pre,
            cents(&s["receiptLinePrice"]) * s["quantity"].as_i64().unwrap()
        );
        allocated += pre - item_discounts - price;
        let applied: i64 = array(&s["appliedTaxes"])
            .iter()
            .map(|t| cents(&t["taxAmount"]))
            .sum();
        assert_eq!(
            cents(&s["tax"]),
            applied,
            "selection tax = its applied taxes"
        );
        lines += price;
        tax += cents(&s["tax"]);
    }
    let check_discounts: i64 = array(&check["appliedDiscounts"])
        .iter()
        .map(|d| cents(&d["discountAmount"]))
        .sum();
    assert_eq!(
        allocated, check_discounts,
        "check discounts allocated to the selections' price"
    );
    let charges = |gratuity: bool| -> i64 {
        array(&check["appliedServiceCharges"])
            .iter()
            .filter(|c| c["gratuity"] == gratuity)
            .map(|c| cents(&c["chargeAmount"]))
            .sum()
    };
    let amount = cents(&check["amount"]);
    assert_eq!(amount, lines + charges(false), "amount");
    assert_eq!(cents(&check["taxAmount"]), tax, "taxAmount");
    let total = cents(&check["totalAmount"]);
    assert_eq!(total, amount + charges(true) + tax, "totalAmount");
    if check["voided"] != true {
        let paid: i64 = array(&check["payments"])
            .iter()
            .filter(|p| is_money(p))
            .map(|p| cents(&p["amount"]))
            .sum();
        assert_eq!(paid, total, "money payments cover totalAmount");
    }
    // A refund is its refunded selections' price and tax.
    for p in array(&check["payments"]) {
        let refund = &p["refund"];
        if refund.is_null() {
            assert_eq!(p["refundStatus"], "NONE");
            continue;
        }
        let transaction = &refund["refundTransaction"]["guid"];
        let details: i64 = live_selections(check)
            .filter(|s| s["refundDetails"]["refundTransaction"]["guid"] == *transaction)
            .map(|s| {
                cents(&s["refundDetails"]["refundAmount"])
                    + cents(&s["refundDetails"]["taxRefundAmount"])
            })
            .sum();
        assert_eq!(cents(&refund["refundAmount"]), details);
    }
}

fn content_config(seed: u64) -> ToastConfig {
    ToastConfig {
        days: 4,
        orders_per_day: 25,
        limits: ToastLimits::unlimited(),
        first_business_date: Some(jiff::civil::date(2025, 6, 2)),
        ..ToastConfig::seeded(seed)
    }
}

/// Every order of every day, as ordersBulk serves it (by business date).
async fn served(toast: &ToastSandbox, restaurant: &str, days: u32) -> Vec<Value> {
    let token = login(toast).await;
    let mut out = Vec::new();
    for day in 0..days {
        let date = jiff::civil::date(2025, 6, 2)
            .checked_add(jiff::Span::new().days(i64::from(day)))
            .unwrap();
        let url = reqwest::Url::parse_with_params(
            &format!("{}/orders/v2/ordersBulk", toast.base_url()),
            &[
                ("businessDate", date.strftime("%Y%m%d").to_string()),
                ("pageSize", "100".into()),
            ],
        )
        .unwrap();
        let resp = client()
            .get(url)
            .bearer_auth(&token)
            .header("Toast-Restaurant-External-ID", restaurant)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let orders: Vec<Value> = resp.json().await.unwrap();
        assert_eq!(orders.len(), 25, "orders_per_day orders on {date}");
        out.extend(orders);
    }
    out
}

/// The truth as a reader of the served JSON would book it (independent of
/// the sandbox's own `truth()`): (yyyyMMdd, role) → cents.
fn truth_from_json(orders: &[Value]) -> BTreeMap<(i64, String), i64> {
    let mut t: BTreeMap<(i64, String), i64> = BTreeMap::new();
    let mut add = |day: i64, role: String, c: i64| {
        *t.entry((day, role)).or_default() += c;
    };
    for o in orders {
        if o["voided"] == true || o["deleted"] == true {
            continue;
        }
        let day = o["businessDate"].as_i64().unwrap();
        for c in array(&o["checks"]).iter().filter(|c| c["voided"] != true) {
            for s in live_selections(c) {
                if s["deferred"] == true {
                    add(day, "gift_cards_sold".into(), cents(&s["price"]));
                } else {
                    let cat = s["salesCategory"]["guid"].as_str().unwrap();
                    add(day, format!("sales:{cat}"), cents(&s["preDiscountPrice"]));
                }
                for d in array(&s["appliedDiscounts"]) {
                    add(day, "discounts".into(), cents(&d["discountAmount"]));
                }
                for tx in array(&s["appliedTaxes"]) {
                    let name = tx["name"].as_str().unwrap();
                    add(day, format!("tax:{name}"), cents(&tx["taxAmount"]));
                }
            }
            for d in array(&c["appliedDiscounts"]) {
                add(day, "discounts".into(), cents(&d["discountAmount"]));
            }
            for sc in array(&c["appliedServiceCharges"]) {
                let role = if sc["gratuity"] == true {
                    "gratuity"
                } else {
                    "service_charges"
                };
                add(day, role.into(), cents(&sc["chargeAmount"]));
            }
            for p in array(&c["payments"]).iter().filter(|p| is_money(p)) {
                let role = match p["type"].as_str().unwrap() {
                    "CASH" => "tender:cash".to_string(),
                    "CREDIT" => "tender:card".to_string(),
                    "HOUSE_ACCOUNT" => "tender:house_account".to_string(),
                    "GIFTCARD" => "gift_cards_redeemed".to_string(),
                    "OTHER" => format!(
                        "tender:other:{}",
                        p["otherPayment"]["guid"].as_str().unwrap()
                    ),
                    other => panic!("tender {other}"),
                };
                let tip = cents(&p["tipAmount"]);
                add(day, "tips".into(), tip);
                add(day, role.clone(), cents(&p["amount"]) + tip);
                add(day, "fees".into(), cents(&p["originalProcessingFee"]));
                let r = &p["refund"];
                if r.is_null() {
                    continue;
                }
                let on = r["refundBusinessDate"].as_i64().unwrap();
                let transaction = &r["refundTransaction"]["guid"];
                let mut tax = 0;
                for s in live_selections(c)
                    .filter(|s| s["refundDetails"]["refundTransaction"]["guid"] == *transaction)
                {
                    let rates = array(&s["appliedTaxes"]);
                    assert!(rates.len() <= 1, "a refunded selection has one rate");
                    let t = cents(&s["refundDetails"]["taxRefundAmount"]);
                    if let Some(rate) = rates.first() {
                        add(on, format!("tax:{}", rate["name"].as_str().unwrap()), -t);
                    }
                    tax += t;
                }
                let amount = cents(&r["refundAmount"]);
                let tip = cents(&r["tipRefundAmount"]);
                add(on, "refunds".into(), amount - tax);
                add(on, "tips".into(), -tip);
                add(on, role, -(amount + tip));
            }
        }
    }
    t.retain(|_, c| *c != 0);
    t
}

#[tokio::test]
async fn served_json_holds_the_amount_identities_and_agrees_with_the_truth() {
    for seed in [1, 42] {
        let toast = ToastSandbox::start(content_config(seed)).await.unwrap();
        let restaurant = toast.restaurant_guids()[0].clone();
        let orders = served(&toast, &restaurant, 4).await;
        for o in &orders {
            for c in array(&o["checks"]) {
                check_identities(c);
            }
            // Refunds fall on or after the order's day, never after the last.
            for p in array(&o["checks"])
                .iter()
                .flat_map(|c| array(&c["payments"]))
            {
                assert_eq!(p["paidBusinessDate"], o["businessDate"]);
                if let Some(on) = p["refund"]["refundBusinessDate"].as_i64() {
                    assert!(on >= o["businessDate"].as_i64().unwrap());
                    assert!(on <= 20250605, "refund on {on}, after the last day");
                }
            }
        }
        let from_json = truth_from_json(&orders);
        let truth = toast.truth();
        let mut from_sandbox: BTreeMap<(i64, String), i64> = BTreeMap::new();
        for (loc, date) in truth.days() {
            assert_eq!(loc, restaurant);
            for (role, amount) in truth.day(&loc, date, 2) {
                let c: i64 = (amount * rust_decimal::Decimal::ONE_HUNDRED)
                    .try_into()
                    .unwrap();
                from_sandbox.insert(
                    (date.strftime("%Y%m%d").to_string().parse().unwrap(), role),
                    c,
                );
            }
        }
        assert_eq!(from_json, from_sandbox, "seed {seed}");
    }
}

#[tokio::test]
async fn truth_balances_every_day_over_several_seeds() {
    for seed in 1..=6 {
        let toast = ToastSandbox::start(ToastConfig {
            restaurants: 2,
            ..content_config(seed)
        })
        .await
        .unwrap();
        let categories: BTreeSet<String> = toast
            .sales_categories()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        let rates: BTreeSet<String> = toast.tax_rate_names().into_iter().collect();
        let others: BTreeSet<String> = toast
            .other_payment_types()
            .into_iter()
            .map(|(g, _)| g)
            .collect();
        assert_eq!(categories.len(), 2);
        assert_eq!(rates.len(), 2);
        assert_eq!(others.len(), 2);
        let truth = toast.truth();
        assert_eq!(truth.days().len(), 8, "2 restaurants × 4 days");
        for (loc, date) in truth.days() {
            let day = truth.day(&loc, date, 2);
            let (mut credits, mut debits) =
                (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
            for (role, amount) in &day {
                match role.split_once(':') {
                    Some(("sales", c)) => {
                        assert!(categories.contains(c), "{role}");
                        credits += amount;
                    }
                    Some(("tax", r)) => {
                        assert!(rates.contains(r), "{role}");
                        credits += amount;
                    }
                    Some(("tender", t)) => {
                        assert!(
                            ["cash", "card", "house_account"].contains(&t)
                                || t.strip_prefix("other:").is_some_and(|g| others.contains(g)),
                            "{role}"
                        );
                        debits += amount;
                    }
                    None if ["service_charges", "gratuity", "tips", "gift_cards_sold"]
                        .contains(&role.as_str()) =>
                    {
                        credits += amount;
                    }
                    None if ["discounts", "refunds", "gift_cards_redeemed"]
                        .contains(&role.as_str()) =>
                    {
                        debits += amount;
                    }
                    None if role == "fees" => {
                        assert!(*amount > rust_decimal::Decimal::ZERO);
                    }
                    _ => panic!("unknown role {role}"),
                }
            }
            assert_eq!(credits, debits, "seed {seed} {loc} {date}: {day:?}");
            assert!(credits > rust_decimal::Decimal::ZERO);
        }
    }
}

#[tokio::test]
async fn truth_follows_edits_made_through_the_sandbox() {
    let toast = ToastSandbox::start(content_config(7)).await.unwrap();
    let restaurant = toast.restaurant_guids()[0].clone();
    let order = toast
        .orders(&restaurant)
        .into_iter()
        .find(|o| {
            !o.voided
                && !o.deleted
                && o.checks[0].payments[0].is_money()
                && o.checks[0].payments[0].refund.is_none()
        })
        .unwrap();
    let before = toast.truth().day(&restaurant, order.business_date, 2);
    toast
        .edit_order(&restaurant, &order.guid, |o| {
            o.checks[0].payments[0].tip_cents += 250
        })
        .unwrap();
    let after = toast.truth().day(&restaurant, order.business_date, 2);
    let role = order.checks[0].payments[0].tender.role();
    let d = |m: &BTreeMap<String, rust_decimal::Decimal>, r: &str| {
        m.get(r).copied().unwrap_or_default()
    };
    assert_eq!(
        d(&after, "tips") - d(&before, "tips"),
        rust_decimal::Decimal::new(250, 2)
    );
    assert_eq!(
        d(&after, &role) - d(&before, &role),
        rust_decimal::Decimal::new(250, 2)
    );
    // Voiding the order takes all of its money, and only its, off the day.
    let mut own = Truth::default();
    toast
        .order(&restaurant, &order.guid)
        .unwrap()
        .add_truth(&restaurant, &mut own);
    let own = own.day(&restaurant, order.business_date, 2);
    assert!(!own.is_empty());
    toast
        .edit_order(&restaurant, &order.guid, |o| o.voided = true)
        .unwrap();
    let voided = toast.truth().day(&restaurant, order.business_date, 2);
    for role in after.keys().chain(own.keys()) {
        assert_eq!(d(&after, role) - d(&voided, role), d(&own, role), "{role}");
    }
}

#[tokio::test]
async fn every_kind_of_order_content_appears_in_a_few_days() {
    for seed in [42, 7] {
        let toast = ToastSandbox::start(content_config(seed)).await.unwrap();
        let restaurant = toast.restaurant_guids()[0].clone();
        let orders = served(&toast, &restaurant, 4).await;
        let n = kinds_seen(&toast, &restaurant, &orders);
        for kind in KINDS {
            assert!(
                n.get(kind).copied().unwrap_or(0) > 0,
                "seed {seed}: no {kind} in 100 orders: {n:?}"
            );
        }
    }
}

/// What a typical few days hold (counted by [`kinds_seen`]).
const KINDS: &[&str] = &[
    "voided order",
    "deleted order",
    "voided check on a multi-check order",
    "check discount",
    "service charge",
    "auto-gratuity",
    "voided selection",
    "gift card sold",
    "comp",
    "item discount",
    "refund details",
    "split tender",
    "failed card payment",
    "CASH",
    "CREDIT",
    "GIFTCARD",
    "HOUSE_ACCOUNT",
    "OTHER",
    "non-card with null status",
    "AUTHORIZED or CAPTURE_IN_PROGRESS",
    "processing fee",
    "tip",
    "partial refund",
    "full refund",
    "refund on a later day",
    "tip refund",
    "tip adjusted after close",
];

/// How many of each kind `orders` (served JSON) hold, checking each one's
/// shape on the way; both sales categories and both tax rates must be used.
fn kinds_seen(
    toast: &ToastSandbox,
    restaurant: &str,
    orders: &[Value],
) -> BTreeMap<&'static str, usize> {
    let categories: BTreeSet<String> = toast
        .sales_categories()
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    let others: BTreeSet<String> = toast
        .other_payment_types()
        .into_iter()
        .map(|(g, _)| g)
        .collect();
    let mut n: BTreeMap<&str, usize> = BTreeMap::new();
    let mut seen = |kind: &'static str, yes: bool| {
        if yes {
            *n.entry(kind).or_default() += 1;
        }
    };
    let mut rates = BTreeSet::new();
    let mut used_categories = BTreeSet::new();
    for o in orders {
        seen("voided order", o["voided"] == true);
        seen("deleted order", o["deleted"] == true);
        let checks = array(&o["checks"]);
        seen(
            "voided check on a multi-check order",
            checks.len() > 1 && checks.iter().any(|c| c["voided"] == true),
        );
        for c in checks {
            seen("check discount", !array(&c["appliedDiscounts"]).is_empty());
            for sc in array(&c["appliedServiceCharges"]) {
                assert_eq!(sc["appliedTaxes"], json!([]));
                seen("service charge", sc["gratuity"] == false);
                seen("auto-gratuity", sc["gratuity"] == true);
                if sc["gratuity"] == true {
                    assert!(o["numberOfGuests"].as_i64().unwrap() >= 6);
                }
            }
            for s in array(&c["selections"]) {
                seen("voided selection", s["voided"] == true);
                if s["deferred"] == true {
                    seen("gift card sold", s["selectionType"] == "TOAST_CARD_SELL");
                    assert!(s["salesCategory"].is_null());
                    assert_eq!(cents(&s["tax"]), 0);
                    continue;
                }
                assert_eq!(s["selectionType"], "NONE");
                let cat = &s["salesCategory"];
                assert_eq!(cat["entityType"], "SalesCategory");
                assert!(cat["externalId"].is_null());
                used_categories.insert(cat["guid"].as_str().unwrap().to_string());
                for t in array(&s["appliedTaxes"]) {
                    assert_eq!(t["entityType"], "AppliedTaxRate");
                    assert_eq!(t["type"], "PERCENT");
                    assert_eq!(t["facilitatorCollectAndRemitTax"], false);
                    assert!(t["taxRate"]["guid"].is_string());
                    rates.insert(t["name"].as_str().unwrap().to_string());
                }
                for d in array(&s["appliedDiscounts"]) {
                    assert_eq!(d["discountAmount"], d["nonTaxDiscountAmount"]);
                    let comp = d["name"] == "Comp";
                    seen("comp", comp);
                    seen("item discount", !comp);
                    if comp {
                        assert_eq!(cents(&s["price"]), 0);
                    }
                }
                seen("refund details", !s["refundDetails"].is_null());
            }
            let payments = array(&c["payments"]);
            let money: Vec<&Value> = payments.iter().filter(|p| is_money(p)).collect();
            seen(
                "split tender",
                money.len() == 2 && money[0]["type"] == "CREDIT" && money[1]["type"] == "CASH",
            );
            for p in payments {
                let kind = p["type"].as_str().unwrap();
                let status = p["paymentStatus"].as_str();
                let failed = matches!(status, Some("DENIED" | "ERROR" | "PROCESSING_VOID"));
                seen(
                    "failed card payment",
                    failed && kind == "CREDIT" && c["voided"] != true,
                );
                if !is_money(p) {
                    continue;
                }
                seen("CASH", kind == "CASH");
                seen("CREDIT", kind == "CREDIT");
                seen("GIFTCARD", kind == "GIFTCARD");
                seen(
                    "non-card with null status",
                    kind != "CREDIT" && status.is_none(),
                );
                seen(
                    "AUTHORIZED or CAPTURE_IN_PROGRESS",
                    matches!(status, Some("AUTHORIZED" | "CAPTURE_IN_PROGRESS")),
                );
                if kind == "CREDIT" {
                    assert!(p["cardType"].is_string() && p["last4Digits"].is_string());
                    assert_eq!(
                        p["originalProcessingFee"].is_null(),
                        status != Some("CAPTURED"),
                        "a fee on captured card payments"
                    );
                }
                seen("processing fee", !p["originalProcessingFee"].is_null());
                seen("tip", cents(&p["tipAmount"]) > 0);
                if kind == "HOUSE_ACCOUNT" {
                    assert_eq!(p["houseAccount"]["entityType"], "HouseAccount");
                    seen("HOUSE_ACCOUNT", p["houseAccount"]["guid"].is_string());
                }
                if kind == "OTHER" {
                    let other = &p["otherPayment"];
                    assert_eq!(other["entityType"], "AlternatePaymentType");
                    assert!(other["externalId"].is_null());
                    seen("OTHER", others.contains(other["guid"].as_str().unwrap()));
                }
                let r = &p["refund"];
                if !r.is_null() {
                    seen("partial refund", p["refundStatus"] == "PARTIAL");
                    seen("full refund", p["refundStatus"] == "FULL");
                    seen(
                        "refund on a later day",
                        r["refundBusinessDate"].as_i64() > o["businessDate"].as_i64(),
                    );
                    seen("tip refund", cents(&r["tipRefundAmount"]) > 0);
                    assert!(r["refundDate"].is_string());
                }
            }
        }
    }
    // Tip adjustments after close: the order's modified time moved later.
    let guids: BTreeSet<&str> = orders.iter().filter_map(|o| o["guid"].as_str()).collect();
    for o in toast.orders(restaurant) {
        if !guids.contains(o.guid.as_str()) {
            continue;
        }
        let adjusted = o
            .checks
            .iter()
            .flat_map(|c| &c.payments)
            .filter_map(|p| p.tip_adjustment.as_ref().map(|a| (p, a)))
            .any(|(p, a)| {
                p.tip_cents != a.original_tip_cents
                    && o.closed.is_some_and(|c| a.at > c)
                    && o.modified >= a.at
            });
        seen("tip adjusted after close", adjusted);
    }
    assert_eq!(used_categories, categories, "both sales categories sold");
    assert_eq!(
        rates,
        toast.tax_rate_names().into_iter().collect::<BTreeSet<_>>(),
        "both tax rates charged"
    );
    n
}

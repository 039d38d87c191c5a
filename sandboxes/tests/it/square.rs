//! Square: cursor paging of payments and inventory counts, OAuth refresh
//! (same refresh token in the code flow), error shapes, rate limits; orders,
//! locations, refunds, the served JSON's own identities and the truth.

use crate::client;
use hub_sandboxes::square::{SquareConfig, SquareSandbox};
use hub_sandboxes::{Faults, Limit};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

fn config() -> SquareConfig {
    SquareConfig {
        days: 2,
        payments_per_day: 40,
        first_date: Some(jiff::civil::date(2025, 6, 2)),
        ..SquareConfig::seeded(5)
    }
}

const BEGIN: &str = "2025-06-01T00:00:00Z";
const END: &str = "2025-06-05T00:00:00Z";

#[tokio::test]
async fn list_payments_follows_the_cursor_to_every_payment_in_order() {
    let square = SquareSandbox::start(config()).await.unwrap();
    let token = square.grant().access_token;
    let main = square.locations()[0].id.clone();
    let expected: Vec<String> = square
        .payments()
        .into_iter()
        .filter(|p| p.location_id == main)
        .map(|p| p.id)
        .collect();
    // 40 orders a day for 2 days, some paid in two payments or after a
    // declined attempt.
    assert!(expected.len() > 80, "{}", expected.len());

    for (order, reversed) in [("ASC", false), ("DESC", true)] {
        let mut ids = Vec::new();
        let mut cursor: Option<String> = None;
        let mut pages = 0;
        loop {
            let mut req = client()
                .get(format!("{}/v2/payments", square.base_url()))
                .bearer_auth(&token)
                .header("Square-Version", "2025-01-23");
            req = match &cursor {
                Some(c) => req.query(&[("cursor", c.as_str())]),
                None => req.query(&[
                    ("begin_time", BEGIN),
                    ("end_time", END),
                    ("sort_order", order),
                    ("limit", "30"),
                ]),
            };
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            let body: Value = resp.json().await.unwrap();
            pages += 1;
            for p in body["payments"].as_array().unwrap() {
                assert!(p["amount_money"]["amount"].is_i64(), "integer cents");
                assert_eq!(p["amount_money"]["currency"], "USD");
                assert_eq!(p["location_id"], main.as_str());
                let total = p["total_money"]["amount"].as_i64().unwrap();
                let tip = p["tip_money"]["amount"].as_i64().unwrap_or(0);
                assert_eq!(total, p["amount_money"]["amount"].as_i64().unwrap() + tip);
                ids.push(p["id"].as_str().unwrap().to_string());
            }
            match body.get("cursor").and_then(Value::as_str) {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(pages, expected.len().div_ceil(30), "pages of 30");
        let mut want = expected.clone();
        if reversed {
            want.reverse();
        }
        assert_eq!(ids, want, "sort_order {order}");
    }
}

#[tokio::test]
async fn limit_above_100_falls_back_to_100_and_empty_pages_are_empty_objects() {
    let square = SquareSandbox::start(SquareConfig {
        days: 3,
        payments_per_day: 50,
        ..config()
    })
    .await
    .unwrap();
    let token = square.grant().access_token;
    let body: Value = client()
        .get(format!("{}/v2/payments", square.base_url()))
        .bearer_auth(&token)
        .query(&[("begin_time", BEGIN), ("end_time", END), ("limit", "500")])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["payments"].as_array().unwrap().len(), 100);
    assert!(body["cursor"].is_string());
    let empty: Value = client()
        .get(format!("{}/v2/payments", square.base_url()))
        .bearer_auth(&token)
        .query(&[
            ("begin_time", "2020-01-01T00:00:00Z"),
            ("end_time", "2020-01-02T00:00:00Z"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(empty, json!({}));
}

#[tokio::test]
async fn inventory_counts_page_by_cursor_newest_first() {
    let square = SquareSandbox::start(config()).await.unwrap();
    let token = square.grant().access_token;
    let all = square.inventory_counts();
    assert_eq!(all.len(), 24);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut body = json!({"limit": 10});
        if let Some(c) = &cursor {
            body = json!({"cursor": c});
        }
        let resp: Value = client()
            .post(format!(
                "{}/v2/inventory/counts/batch-retrieve",
                square.base_url()
            ))
            .bearer_auth(&token)
            .json(&body)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for c in resp["counts"].as_array().unwrap() {
            assert!(c["quantity"].is_string(), "quantity is a string");
            seen.push((
                c["calculated_at"].as_str().unwrap().to_string(),
                c["catalog_object_id"].as_str().unwrap().to_string(),
                c["location_id"].as_str().unwrap().to_string(),
            ));
        }
        match resp.get("cursor").and_then(Value::as_str) {
            Some(c) => cursor = Some(c.to_string()),
            None => break,
        }
    }
    assert_eq!(seen.len(), 24);
    assert!(
        seen.windows(2).all(|w| w[0].0 >= w[1].0),
        "newest calculated_at first"
    );
    assert_eq!(seen.iter().cloned().collect::<BTreeSet<_>>().len(), 24);

    // A new count shows up for updated_after.
    let item = all[0].catalog_object_id.clone();
    let loc = all[0].location_id.clone();
    square.set_inventory_count(&loc, &item, "12.5".parse().unwrap());
    let resp: Value = client()
        .post(format!(
            "{}/v2/inventory/counts/batch-retrieve",
            square.base_url()
        ))
        .bearer_auth(&token)
        .json(&json!({"updated_after": "2026-01-01T00:00:00Z", "location_ids": [loc]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["counts"].as_array().unwrap().len(), 1);
    assert_eq!(resp["counts"][0]["quantity"], "12.5");
}

#[tokio::test]
async fn oauth_refresh_returns_the_same_refresh_token_and_errors_have_square_shape() {
    let square = SquareSandbox::start(config()).await.unwrap();
    let code = square.authorization_code();
    let token = |body: Value| {
        client()
            .post(format!("{}/oauth2/token", square.base_url()))
            .json(&body)
            .send()
    };
    let creds = json!({"client_id": square.client_id(), "client_secret": square.client_secret()});
    let mut body = creds.clone();
    body["grant_type"] = json!("authorization_code");
    body["code"] = json!(code);
    let first: Value = token(body.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(first["token_type"], "bearer");
    assert_eq!(first["merchant_id"], square.merchant_id().as_str());
    let refresh = first["refresh_token"].as_str().unwrap().to_string();
    // A code works once.
    assert_eq!(token(body).await.unwrap().status(), 401);

    let mut body = creds.clone();
    body["grant_type"] = json!("refresh_token");
    body["refresh_token"] = json!(refresh);
    let second: Value = token(body.clone()).await.unwrap().json().await.unwrap();
    assert_eq!(
        second["refresh_token"],
        refresh.as_str(),
        "code flow keeps the refresh token"
    );
    assert_ne!(second["access_token"], first["access_token"]);
    let third = token(body).await.unwrap();
    assert_eq!(third.status(), 200, "the same refresh token works again");
    let c = square.counters();
    assert_eq!(c.token_requests, 4);
    assert_eq!(c.refreshes, 2);

    // The old access token still works until it expires; then 401 ACCESS_TOKEN_EXPIRED.
    let access = second["access_token"].as_str().unwrap().to_string();
    let list = || {
        client()
            .get(format!("{}/v2/payments", square.base_url()))
            .bearer_auth(&access)
            .send()
    };
    assert_eq!(list().await.unwrap().status(), 200);
    square.expire_access_tokens();
    let resp = list().await.unwrap();
    assert_eq!(resp.status(), 401);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["category"], "AUTHENTICATION_ERROR");
    assert_eq!(body["errors"][0]["code"], "ACCESS_TOKEN_EXPIRED");
    let resp = client()
        .get(format!("{}/v2/payments", square.base_url()))
        .bearer_auth("nope")
        .send()
        .await
        .unwrap();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["code"], "UNAUTHORIZED");
}

#[tokio::test]
async fn rate_limited_requests_get_square_429() {
    let square = SquareSandbox::start(SquareConfig {
        limits: vec![Limit::sliding("minute", 2, Duration::from_secs(60))],
        ..config()
    })
    .await
    .unwrap();
    let token = square.grant().access_token;
    let mut last = None;
    for _ in 0..3 {
        last = Some(
            client()
                .get(format!("{}/v2/payments", square.base_url()))
                .bearer_auth(&token)
                .send()
                .await
                .unwrap(),
        );
    }
    let last = last.unwrap();
    assert_eq!(last.status(), 429);
    assert!(last.headers().contains_key("retry-after"));
    let body: Value = last.json().await.unwrap();
    assert_eq!(body["errors"][0]["category"], "RATE_LIMIT_ERROR");
    assert_eq!(body["errors"][0]["code"], "RATE_LIMITED");
    // Injected errors use the same errors[] shape.
    let square = SquareSandbox::start(config()).await.unwrap();
    square.set_faults(Faults::errors(1.0));
    let resp = client()
        .get(format!("{}/v2/payments", square.base_url()))
        .bearer_auth(square.grant().access_token)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_server_error());
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["errors"][0]["category"], "API_ERROR");
}

/// Credits and debits of one day's truth (fees balance themselves).
fn sides(
    day: &std::collections::BTreeMap<String, rust_decimal::Decimal>,
) -> (rust_decimal::Decimal, rust_decimal::Decimal) {
    let (mut credits, mut debits) = (rust_decimal::Decimal::ZERO, rust_decimal::Decimal::ZERO);
    for (role, amount) in day {
        let head = role.split(':').next().unwrap();
        match head {
            "sales" | "tax" | "service_charges" | "gratuity" | "tips" | "gift_cards_sold" => {
                credits += amount
            }
            "discounts" | "refunds" | "tender" | "gift_cards_redeemed" => debits += amount,
            "fees" => {}
            other => panic!("unknown role {other}"),
        }
    }
    (credits, debits)
}

#[tokio::test]
async fn each_days_truth_balances_over_seeds_and_every_kind_appears() {
    let mut roles = BTreeSet::new();
    let mut statuses = BTreeSet::new();
    let (mut split, mut captured_later, mut later_refunds, mut partial) = (0, 0, 0, 0);
    for seed in 1..=5 {
        let square = SquareSandbox::start(SquareConfig {
            days: 3,
            payments_per_day: 40,
            first_date: Some(jiff::civil::date(2025, 6, 2)),
            ..SquareConfig::seeded(seed)
        })
        .await
        .unwrap();
        let truth = square.truth();
        let locations: BTreeSet<String> = truth.days().into_iter().map(|(l, _)| l).collect();
        assert_eq!(locations.len(), 2, "both locations have sales");
        for (loc, date) in truth.days() {
            let day = truth.day(&loc, date, 2);
            let (credits, debits) = sides(&day);
            assert_eq!(credits, debits, "seed {seed} {loc} {date}: {day:?}");
            roles.extend(day.keys().cloned());
        }
        let payments = square.payments();
        for p in &payments {
            statuses.insert(p.status.clone());
            captured_later += usize::from(p.captured_at.is_some());
        }
        for o in square.orders() {
            let kinds: BTreeSet<String> = o
                .payment_ids
                .iter()
                .filter_map(|id| square.payment(id))
                .filter(|p| p.status == "COMPLETED")
                .map(|p| p.role())
                .collect();
            split += usize::from(kinds.len() > 1);
        }
        for r in square.refunds() {
            let p = square.payment(&r.payment_id).unwrap();
            later_refunds +=
                usize::from(r.created_at.as_second() - p.created_at.as_second() > 20 * 3600);
            partial += usize::from(r.amount_cents < p.amount_cents + p.tip_cents);
        }
    }
    for want in [
        "sales:item",
        "sales:custom_amount",
        "gift_cards_sold",
        "gift_cards_redeemed",
        "discounts",
        "tax:State Tax",
        "tax:City Tax",
        "gratuity",
        "service_charges",
        "tips",
        "tender:card",
        "tender:cash",
        "tender:other:external",
        "fees",
        "refunds",
    ] {
        assert!(roles.contains(want), "{want} in {roles:?}");
    }
    for want in ["COMPLETED", "APPROVED", "FAILED", "CANCELED"] {
        assert!(statuses.contains(want), "{want} in {statuses:?}");
    }
    assert!(split > 0 && captured_later > 0 && later_refunds > 0 && partial > 0);
}

async fn get(square: &SquareSandbox, token: &str, path: &str, query: &[(&str, &str)]) -> Value {
    let resp = client()
        .get(format!("{}{path}", square.base_url()))
        .bearer_auth(token)
        .query(query)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "{path}");
    resp.json().await.unwrap()
}

fn cents(v: &Value) -> i64 {
    v["amount"].as_i64().unwrap_or(0)
}

fn sum(items: &Value, field: &str) -> i64 {
    items
        .as_array()
        .map(|a| a.iter().map(|x| cents(&x[field])).sum())
        .unwrap_or(0)
}

#[tokio::test]
async fn served_orders_payments_and_refunds_hold_their_own_identities() {
    let square = SquareSandbox::start(SquareConfig {
        days: 3,
        payments_per_day: 40,
        first_date: Some(jiff::civil::date(2025, 6, 2)),
        ..SquareConfig::seeded(9)
    })
    .await
    .unwrap();
    let token = square.grant().access_token;
    let locations = get(&square, &token, "/v2/locations", &[]).await;
    let locations: Vec<String> = locations["locations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(locations.len(), 2);
    let (mut orders_seen, mut refunds_seen) = (0, 0);
    for loc in &locations {
        let mut payments = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let page = match &cursor {
                Some(c) => get(&square, &token, "/v2/payments", &[("cursor", c)]).await,
                None => {
                    get(
                        &square,
                        &token,
                        "/v2/payments",
                        &[
                            ("location_id", loc),
                            ("begin_time", "2024-06-01T00:00:00Z"),
                            ("updated_at_begin_time", BEGIN),
                            ("updated_at_end_time", "2025-06-07T00:00:00Z"),
                            ("sort_field", "UPDATED_AT"),
                            ("sort_order", "ASC"),
                        ],
                    )
                    .await
                }
            };
            payments.extend(page["payments"].as_array().cloned().unwrap_or_default());
            match page["cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
        }
        assert_eq!(
            payments.len(),
            square
                .payments()
                .iter()
                .filter(|p| &p.location_id == loc)
                .count()
        );
        let by_id: std::collections::BTreeMap<&str, &Value> = payments
            .iter()
            .map(|p| (p["id"].as_str().unwrap(), p))
            .collect();
        for p in &payments {
            assert_eq!(
                cents(&p["total_money"]),
                cents(&p["amount_money"]) + cents(&p["tip_money"])
            );
        }
        let ids: Vec<String> = payments
            .iter()
            .map(|p| p["order_id"].as_str().unwrap().to_string())
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        for chunk in ids.chunks(100) {
            let resp: Value = client()
                .post(format!("{}/v2/orders/batch-retrieve", square.base_url()))
                .bearer_auth(&token)
                .json(&json!({"location_id": loc, "order_ids": chunk}))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            let orders = resp["orders"].as_array().unwrap();
            assert_eq!(orders.len(), chunk.len(), "every order found");
            for o in orders {
                orders_seen += 1;
                let lines = &o["line_items"];
                for l in lines.as_array().unwrap() {
                    assert_eq!(
                        cents(&l["total_money"]),
                        cents(&l["gross_sales_money"]) - cents(&l["total_discount_money"])
                            + cents(&l["total_tax_money"])
                    );
                    assert_eq!(
                        cents(&l["total_tax_money"]),
                        sum(&l["applied_taxes"], "applied_money")
                    );
                    assert_eq!(
                        cents(&l["total_discount_money"]),
                        sum(&l["applied_discounts"], "applied_money")
                    );
                    let qty: i64 = l["quantity"].as_str().unwrap().parse().unwrap();
                    assert_eq!(
                        cents(&l["gross_sales_money"]),
                        qty * cents(&l["base_price_money"])
                    );
                }
                let charges = &o["service_charges"];
                for s in charges.as_array().into_iter().flatten() {
                    assert_eq!(
                        cents(&s["total_money"]),
                        cents(&s["applied_money"]) + cents(&s["total_tax_money"])
                    );
                    let kind = s["type"].as_str().unwrap();
                    assert!(kind == "AUTO_GRATUITY" || kind == "CUSTOM");
                }
                assert_eq!(
                    cents(&o["total_money"]),
                    sum(lines, "total_money") + sum(charges, "total_money"),
                    "order total = lines + service charges"
                );
                let sc_tax: i64 = charges
                    .as_array()
                    .into_iter()
                    .flatten()
                    .map(|s| cents(&s["total_tax_money"]))
                    .sum();
                assert_eq!(
                    cents(&o["total_tax_money"]),
                    sum(lines, "total_tax_money") + sc_tax
                );
                assert_eq!(
                    cents(&o["total_tax_money"]),
                    sum(&o["taxes"], "applied_money")
                );
                assert_eq!(
                    cents(&o["total_discount_money"]),
                    sum(lines, "total_discount_money")
                );
                let mut paid = 0;
                for t in o["tenders"].as_array().into_iter().flatten() {
                    let p = by_id[t["payment_id"].as_str().unwrap()];
                    assert_eq!(cents(&t["amount_money"]), cents(&p["total_money"]));
                    if p["status"] == "COMPLETED" {
                        paid += cents(&p["amount_money"]);
                    }
                }
                if o["state"] == "COMPLETED" {
                    assert_eq!(paid, cents(&o["total_money"]), "completed orders are paid");
                }
                // Refunds and their return orders.
                for p in o["tenders"].as_array().into_iter().flatten() {
                    let p = by_id[p["payment_id"].as_str().unwrap()];
                    let mut refunded = 0;
                    for rid in p["refund_ids"].as_array().into_iter().flatten() {
                        let r = get(
                            &square,
                            &token,
                            &format!("/v2/refunds/{}", rid.as_str().unwrap()),
                            &[],
                        )
                        .await["refund"]
                            .clone();
                        refunds_seen += 1;
                        refunded += cents(&r["amount_money"]);
                        let ret: Value = client()
                            .post(format!("{}/v2/orders/batch-retrieve", square.base_url()))
                            .bearer_auth(&token)
                            .json(&json!({"order_ids": [r["order_id"]]}))
                            .send()
                            .await
                            .unwrap()
                            .json()
                            .await
                            .unwrap();
                        let ret = &ret["orders"][0]["returns"][0];
                        assert_eq!(ret["source_order_id"], o["id"]);
                        let amounts = &ret["return_amounts"];
                        assert_eq!(cents(&amounts["total_money"]), cents(&r["amount_money"]));
                        assert_eq!(
                            cents(&amounts["total_money"]),
                            sum(&ret["return_line_items"], "total_money")
                                + sum(&ret["return_service_charges"], "total_money")
                                + cents(&amounts["tip_money"])
                        );
                        assert_eq!(
                            cents(&amounts["tax_money"]),
                            sum(&ret["return_taxes"], "applied_money")
                        );
                    }
                    assert_eq!(refunded, cents(&p["refunded_money"]));
                }
            }
        }
    }
    assert!(
        orders_seen > 200 && refunds_seen > 0,
        "{orders_seen} {refunds_seen}"
    );
    // Payments without location_id: the main location only.
    let main = get(
        &square,
        &token,
        "/v2/payments",
        &[("begin_time", BEGIN), ("end_time", END)],
    )
    .await;
    assert!(
        main["payments"]
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["location_id"] == locations[0].as_str())
    );
    // GetPayment, and BatchRetrieveOrders' limit.
    let p = &square.payments()[0];
    let one = get(&square, &token, &format!("/v2/payments/{}", p.id), &[]).await;
    assert_eq!(one["payment"]["id"], p.id.as_str());
    let too_many: Vec<String> = (0..101).map(|i| format!("o{i}")).collect();
    let resp = client()
        .post(format!("{}/v2/orders/batch-retrieve", square.base_url()))
        .bearer_auth(&token)
        .json(&json!({"order_ids": too_many}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 400);
}

#[tokio::test]
async fn captures_and_refunds_by_amount_change_the_truth() {
    let square = SquareSandbox::start(SquareConfig {
        days: 2,
        payments_per_day: 60,
        first_date: Some(jiff::civil::date(2025, 6, 2)),
        ..SquareConfig::seeded(3)
    })
    .await
    .unwrap();
    let before = square.truth();
    let approved = square
        .payments()
        .into_iter()
        .find(|p| p.status == "APPROVED")
        .expect("an approved payment");
    let p = square.complete_payment(&approved.id).unwrap();
    assert_eq!(p.status, "COMPLETED");
    assert!(p.fee_cents > 0);
    let after = square.truth();
    assert_ne!(before, after, "the captured order now counts");
    let order = square.order(&p.order_id).unwrap();
    assert_eq!(order.state, "COMPLETED");
    let date = jiff::tz::TimeZone::get("America/Los_Angeles")
        .unwrap()
        .to_datetime(order.created_at)
        .date();
    let day = after.day(&order.location_id, date, 2);
    let (credits, debits) = sides(&day);
    assert_eq!(credits, debits);

    let at: jiff::Timestamp = "2025-06-05T20:00:00Z".parse().unwrap();
    let r = square.refund_payment(&p.id, 100, at).unwrap();
    let t = square.truth();
    let day = t.day(&r.location_id, jiff::civil::date(2025, 6, 5), 2);
    assert_eq!(day["refunds"].to_string(), "1.00");
    assert_eq!(day[&p.role()].to_string(), "-1.00");
    assert!(square.payment(&p.id).unwrap().refund_ids.contains(&r.id));
    assert!(
        square.refund_payment(&p.id, 1_000_000, at).is_none(),
        "more than is left"
    );
}

/// The hub's own transform of what the sandbox serves, summed per business
/// date, equals the truth (which shares no code with it).
#[tokio::test]
async fn the_hubs_transform_of_the_served_sales_matches_the_truth() {
    use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
    use shared::model::{Connection, Provider, TimeZoneName};
    for seed in [4, 7] {
        let square = SquareSandbox::start(SquareConfig {
            days: 3,
            payments_per_day: 30,
            first_date: Some(jiff::civil::date(2025, 6, 2)),
            ..SquareConfig::seeded(seed)
        })
        .await
        .unwrap();
        let token = square.grant().access_token;
        let connection = Connection {
            id: ConnectionId::new("square").unwrap(),
            tenant: TenantId::new("cafe").unwrap(),
            provider: Provider::Square,
            account_id: ProviderAccountId::new(square.merchant_id()).unwrap(),
            time_zone: TimeZoneName::new("America/Los_Angeles").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new("cafe/square").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        };
        let mut payments = Vec::new();
        for loc in square.locations() {
            let mut cursor: Option<String> = None;
            loop {
                let page = match &cursor {
                    Some(c) => get(&square, &token, "/v2/payments", &[("cursor", c)]).await,
                    None => {
                        get(
                            &square,
                            &token,
                            "/v2/payments",
                            &[
                                ("location_id", &loc.id),
                                ("begin_time", "2024-06-01T00:00:00Z"),
                            ],
                        )
                        .await
                    }
                };
                payments.extend(page["payments"].as_array().cloned().unwrap_or_default());
                match page["cursor"].as_str() {
                    Some(c) => cursor = Some(c.to_string()),
                    None => break,
                }
            }
        }
        let batch = |ids: Vec<String>| {
            let square = &square;
            let token = &token;
            async move {
                let mut out = Vec::new();
                for chunk in ids.chunks(100) {
                    let v: Value = client()
                        .post(format!("{}/v2/orders/batch-retrieve", square.base_url()))
                        .bearer_auth(token)
                        .json(&json!({ "order_ids": chunk }))
                        .send()
                        .await
                        .unwrap()
                        .json()
                        .await
                        .unwrap();
                    out.extend(v["orders"].as_array().cloned().unwrap_or_default());
                }
                out
            }
        };
        let order_ids: BTreeSet<String> = payments
            .iter()
            .map(|p| p["order_id"].as_str().unwrap().to_string())
            .collect();
        let mut orders = batch(order_ids.into_iter().collect()).await;
        let mut refunds = Vec::new();
        for p in &payments {
            for id in p["refund_ids"].as_array().into_iter().flatten() {
                let r = get(
                    &square,
                    &token,
                    &format!("/v2/refunds/{}", id.as_str().unwrap()),
                    &[],
                )
                .await;
                refunds.push(r["refund"].clone());
            }
        }
        let returns: Vec<String> = refunds
            .iter()
            .map(|r| r["order_id"].as_str().unwrap().to_string())
            .collect();
        orders.extend(batch(returns).await);
        let records = shared::providers::square::transform::sales_to_transactions(
            &payments,
            &orders,
            &refunds,
            &connection,
        )
        .unwrap();
        let mut books: std::collections::BTreeMap<
            jiff::civil::Date,
            std::collections::BTreeMap<String, rust_decimal::Decimal>,
        > = Default::default();
        let mut held = 0;
        for t in &records {
            if t.hold.is_some() {
                held += 1;
                continue;
            }
            assert!(shared::model::parts::imbalance(&t.parts).is_zero(), "{t:?}");
            let day = books.entry(t.business_date).or_default();
            for p in &t.parts {
                *day.entry(p.role.clone()).or_default() += p.amount;
            }
        }
        assert!(
            held > 0,
            "seed {seed}: some orders wait on an approved payment"
        );
        let truth = square.truth();
        let mut want: std::collections::BTreeMap<
            jiff::civil::Date,
            std::collections::BTreeMap<String, rust_decimal::Decimal>,
        > = Default::default();
        for (loc, date) in truth.days() {
            let day = want.entry(date).or_default();
            for (role, amount) in truth.day(&loc, date, 2) {
                *day.entry(role).or_default() += amount;
            }
        }
        for day in books.values_mut() {
            day.retain(|_, v| !v.is_zero());
        }
        assert_eq!(books, want, "seed {seed}");
    }
}

//! Toast: login, ordersBulk paging with Link headers, validation, late edits,
//! rate limits.

use crate::{client, link};
use hub_sandboxes::toast::{ToastConfig, ToastLimits, ToastSandbox};
use hub_sandboxes::{Faults, Limit};
use jiff::Timestamp;
use serde_json::{Value, json};
use std::collections::BTreeSet;
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
            assert!(check["payments"].as_array().is_some_and(|p| p.len() == 1));
            // Money: at most two decimals, and the check adds up to the cent.
            let cents = |v: &Value| -> i64 {
                let s = v.to_string();
                let d: rust_decimal::Decimal = s.parse().unwrap();
                assert!(d.scale() <= 2, "{s} has more than two decimals");
                (d * rust_decimal::Decimal::ONE_HUNDRED).try_into().unwrap()
            };
            let lines: i64 = check["selections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| cents(&s["price"]))
                .sum();
            let tax: i64 = check["selections"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| cents(&s["tax"]))
                .sum();
            assert_eq!(cents(&check["amount"]), lines);
            assert_eq!(cents(&check["totalAmount"]), lines + tax);
            assert_eq!(cents(&check["payments"][0]["amount"]), lines + tax);
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
            o.checks[0].payments[0].refund_cents = 100
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

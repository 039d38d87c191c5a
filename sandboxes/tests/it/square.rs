//! Square: cursor paging of payments and inventory counts, OAuth refresh
//! (same refresh token in the code flow), error shapes, rate limits.

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
    assert_eq!(expected.len(), 80);

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
        assert_eq!(pages, 3, "80 payments in pages of 30");
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

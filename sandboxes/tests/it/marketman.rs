//! MarketMan: token, Take/Skip paging, purchase-order and delivery round
//! trips, and "Reached max calls".

use crate::client;
use hub_sandboxes::Limit;
use hub_sandboxes::marketman::{MarketManConfig, MarketManSandbox};
use serde_json::{Value, json};
use std::collections::BTreeSet;
use std::time::Duration;

async fn call(
    mm: &MarketManSandbox,
    token: Option<&str>,
    method: &str,
    body: Value,
) -> (u16, Value) {
    let mut req = client()
        .post(format!("{}/v3/buyers/{method}", mm.base_url()))
        .json(&body);
    if let Some(t) = token {
        req = req.header("AUTH_TOKEN", t);
    }
    let resp = req.send().await.unwrap();
    (resp.status().as_u16(), resp.json().await.unwrap())
}

async fn token(mm: &MarketManSandbox) -> String {
    let (status, body) = call(
        mm,
        None,
        "auth/GetToken",
        json!({"APIKey": mm.api_key(), "APIPassword": mm.api_password()}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["IsSuccess"], true);
    let expires = body["ExpireDateUTC"].as_str().unwrap();
    assert_eq!(expires.len(), 19, "yyyy/mm/dd hh:mm:ss: {expires}");
    assert_eq!(&expires[4..5], "/");
    body["Token"].as_str().unwrap().to_string()
}

#[tokio::test]
async fn get_items_pages_with_take_and_skip() {
    let mm = MarketManSandbox::start(MarketManConfig {
        inventory_items: 150,
        first_date: Some(jiff::civil::date(2025, 6, 2)),
        ..MarketManConfig::seeded(4)
    })
    .await
    .unwrap();
    let t = token(&mm).await;
    let buyer = mm.buyer_guid();
    let (_, bad) = call(
        &mm,
        None,
        "auth/GetToken",
        json!({"APIKey": mm.api_key(), "APIPassword": "wrong"}),
    )
    .await;
    assert_eq!(bad["IsSuccess"], false);

    let mut ids = Vec::new();
    let mut skip = 0;
    loop {
        let (_, page) = call(
            &mm,
            Some(&t),
            "inventory/GetItems",
            json!({"itemIDs": null, "Take": 40, "Skip": skip, "BuyerGuid": buyer}),
        )
        .await;
        assert_eq!(page["IsSuccess"], true);
        let items = page["Items"].as_array().unwrap();
        ids.extend(items.iter().map(|i| i["ID"].as_str().unwrap().to_string()));
        if items.len() < 40 {
            break;
        }
        skip += 40;
    }
    assert_eq!(ids.len(), 150);
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), 150);
    let (_, big) = call(
        &mm,
        Some(&t),
        "inventory/GetItems",
        json!({"Take": 500, "Skip": 0, "BuyerGuid": buyer}),
    )
    .await;
    assert_eq!(
        big["Items"].as_array().unwrap().len(),
        100,
        "Take is capped"
    );
    let (_, all) = call(
        &mm,
        Some(&t),
        "inventory/GetInventoryItems",
        json!({"BuyerGuid": buyer}),
    )
    .await;
    assert_eq!(all["Items"].as_array().unwrap().len(), 150);
    let (_, counts) = call(&mm, Some(&t), "inventory/GetInventoryCounts", json!({
        "DateTimeFromUTC": "2025/06/01 00:00:00", "DateTimeToUTC": "2025/06/03 23:59:59", "BuyerGUID": buyer, "GetLineDetails": true
    })).await;
    let counts = counts["InventoryCounts"].as_array().unwrap();
    assert_eq!(counts.len(), 2, "June 2 and 3 of the three generated days");
    assert_eq!(counts[0]["Lines"].as_array().unwrap().len(), 150);
    let (_, wrong) = call(
        &mm,
        Some(&t),
        "inventory/GetItems",
        json!({"Take": 5, "BuyerGuid": "nope"}),
    )
    .await;
    assert_eq!(wrong["IsSuccess"], false);
}

#[tokio::test]
async fn created_orders_and_received_deliveries_read_back() {
    let mm = MarketManSandbox::start(MarketManConfig::seeded(4))
        .await
        .unwrap();
    let t = token(&mm).await;
    let buyer = mm.buyer_guid();
    let vendor = mm.vendors()[0].clone();
    let code = vendor.catalog[0].code.clone();
    let order = json!({
        "BuyerGuid": buyer, "VendorGuid": vendor.guid, "OrderStatus": "Sent",
        "deliveryDateUTC": "2025/06/05 00:00:00", "sentDateUTC": "2025/06/04 09:30:00",
        "comment": "hub:po-1", "catalogItems": [{"CatalogItemCode": code, "Quantity": 2.5}],
    });
    let (status, created) = call(&mm, Some(&t), "orders/CreateOrder", order.clone()).await;
    assert_eq!(
        (status, &created["IsSuccess"]),
        (200, &json!(true)),
        "{created}"
    );
    let number = created["OrderNumber"].as_str().unwrap().to_string();
    let mut bad = order.clone();
    bad["catalogItems"] = json!([{"CatalogItemCode": "0000", "Quantity": 1}]);
    let (_, refused) = call(&mm, Some(&t), "orders/CreateOrder", bad).await;
    assert_eq!(refused["IsSuccess"], false);
    // A quantity sent as a string is refused: the API takes numbers.
    let mut stringly = order.clone();
    stringly["catalogItems"][0]["Quantity"] = json!("2.5");
    let (_, refused) = call(&mm, Some(&t), "orders/CreateOrder", stringly).await;
    assert_eq!(refused["IsSuccess"], false, "{refused}");
    assert!(
        refused["ErrorMessage"]
            .as_str()
            .is_some_and(|m| m.contains("must be a positive number")),
        "{refused}"
    );
    assert_eq!(mm.created_orders().len(), 1);
    assert_eq!(mm.created_orders()[0].comment, "hub:po-1");

    let (_, sent) = call(&mm, Some(&t), "orders/GetOrdersBySentDate", json!({
        "DateTimeFromUTC": "2025/06/04 00:00:00", "DateTimeToUTC": "2025/06/04 23:59:59", "BuyerGuid": buyer
    })).await;
    let orders = sent["Orders"].as_array().unwrap();
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["OrderNumber"], number.as_str());
    assert_eq!(orders[0]["Items"][0]["Quantity"], json!(2.5));
    let price = vendor.catalog[0].price_cents;
    let total: rust_decimal::Decimal = orders[0]["TotalPrice"].to_string().parse().unwrap();
    assert_eq!(
        total,
        (rust_decimal::Decimal::new(price, 2) * rust_decimal::Decimal::new(25, 1))
            .round_dp_with_strategy(2, rust_decimal::RoundingStrategy::MidpointAwayFromZero)
    );

    // The delivery arrives: recorded through the vendor docs API.
    let resp: Value = client()
        .post(format!("{}/v3/vendors/docs/SetDocs", mm.base_url()))
        .header("AUTH_TOKEN", &t)
        .json(&json!({"VendorGuid": vendor.guid, "Docs": [{
            "BuyerGuid": buyer, "DocNumber": "DN-77", "DocType": "DeliveryNote",
            "DocDateUTC": "2025/06/05 08:00:00", "OrderNumber": number,
            "Items": [{"CatalogItemCode": code, "Quantity": 2, "Price": 12.34}],
        }]}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(resp["IsSuccess"], true, "{resp}");
    let doc_id = resp["Docs"][0]["DocID"].as_str().unwrap().to_string();
    let received = mm.received_docs();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].order_number.as_deref(), Some(number.as_str()));
    assert_eq!(received[0].lines[0].price_cents, 1234);
    let (_, docs) = call(&mm, Some(&t), "docs/GetDocsByDocDate", json!({
        "DateTimeFromUTC": "2025/06/05 00:00:00", "DateTimeToUTC": "2025/06/05 23:59:59", "BuyerGuid": buyer
    })).await;
    assert_eq!(docs["Docs"][0]["DocNumber"], "DN-77");
    assert_eq!(docs["Docs"][0]["TotalAmount"], json!(24.68));
    let (_, exported) = call(
        &mm,
        Some(&t),
        "docs/SetDocsExported",
        json!({"BuyerGuid": buyer, "DocIDs": [doc_id]}),
    )
    .await;
    assert_eq!(exported["UpdatedDocs"], 1);
    assert!(mm.received_docs()[0].exported);
}

#[tokio::test]
async fn past_the_daily_limit_the_answer_is_reached_max_calls() {
    let mm = MarketManSandbox::start(MarketManConfig {
        limits: vec![Limit::sliding("day", 5, Duration::from_secs(86_400))],
        ..MarketManConfig::seeded(4)
    })
    .await
    .unwrap();
    let t = token(&mm).await;
    let buyer = mm.buyer_guid();
    let mut answers = Vec::new();
    for _ in 0..6 {
        let (status, body) = call(
            &mm,
            Some(&t),
            "inventory/GetInventoryItems",
            json!({"BuyerGuid": buyer}),
        )
        .await;
        assert_eq!(status, 200, "MarketMan refuses with HTTP 200");
        answers.push(body);
    }
    assert!(
        answers[..4].iter().all(|a| a["IsSuccess"] == true),
        "GetToken was call 1 of 5"
    );
    assert_eq!(
        answers[4],
        json!({"IsSuccess": false, "ErrorMessage": "Reached max calls"})
    );
    assert_eq!(answers[5]["ErrorMessage"], "Reached max calls");
    let c = mm.counters();
    assert_eq!(c.rate_limited, 2);
    assert_eq!(c.max_calls_per_window[mm.api_key()], 5);
    assert_eq!(c.token_requests, 1);

    // An expired token is refused in the MarketMan shape.
    let mm = MarketManSandbox::start(MarketManConfig::seeded(4))
        .await
        .unwrap();
    let t = token(&mm).await;
    mm.expire_access_tokens();
    let (status, body) = call(
        &mm,
        Some(&t),
        "inventory/GetInventoryItems",
        json!({"BuyerGuid": mm.buyer_guid()}),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["IsSuccess"], false);
    assert_eq!(body["ErrorCode"], "InvalidToken");
}

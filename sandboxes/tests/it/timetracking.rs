//! Time tracking: create, idempotent retry, conflict, update with If-Match,
//! list, auth.

use crate::client;
use hub_sandboxes::timetracking::{TimeTrackingConfig, TimeTrackingSandbox};
use serde_json::{Value, json};

#[tokio::test]
async fn time_entries_round_trip() {
    let tt = TimeTrackingSandbox::start(TimeTrackingConfig::seeded(1))
        .await
        .unwrap();
    let url = format!("{}/api/timeentries", tt.base_url());
    let token = tt.api_token();
    let entry = json!({"employeeId": "E-7", "start": "2025-06-02T09:00:00-04:00", "end": "2025-06-02T17:30:00-04:00", "externalId": "toast:shift:1", "jobCode": "LINE"});
    let post = |body: Value, key: Option<&str>| {
        let mut r = client().post(&url).bearer_auth(&token).json(&body);
        if let Some(k) = key {
            r = r.header("Idempotency-Key", k);
        }
        r.send()
    };
    let resp = post(entry.clone(), Some("k1")).await.unwrap();
    assert_eq!(resp.status(), 201);
    let location = resp.headers()["location"].to_str().unwrap().to_string();
    let created: Value = resp.json().await.unwrap();
    assert_eq!(created["durationMinutes"], 510);
    assert_eq!(created["version"], 1);
    assert_eq!(created["jobCode"], "LINE");
    assert_eq!(
        location,
        format!("/api/timeentries/{}", created["id"].as_str().unwrap())
    );
    let replay: Value = post(entry.clone(), Some("k1"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(replay, created);
    let conflict = post(entry.clone(), None).await.unwrap();
    assert_eq!(conflict.status(), 409);
    assert_eq!(conflict.json::<Value>().await.unwrap()["id"], created["id"]);
    assert_eq!(tt.entries().len(), 1);
    assert_eq!(tt.counters().creates_for("k1"), 1);

    let mut bad = entry.clone();
    bad["end"] = json!("2025-06-02T08:00:00-04:00");
    bad["externalId"] = json!("other");
    assert_eq!(post(bad, None).await.unwrap().status(), 400);

    let id = created["id"].as_str().unwrap();
    let mut changed = entry.clone();
    changed["end"] = json!("2025-06-02T18:00:00-04:00");
    let put = |v: &str| {
        client()
            .put(format!("{url}/{id}"))
            .bearer_auth(&token)
            .header("If-Match", v)
            .json(&changed)
            .send()
    };
    let updated: Value = put("1").await.unwrap().json().await.unwrap();
    assert_eq!(updated["version"], 2);
    assert_eq!(updated["durationMinutes"], 540);
    assert_eq!(put("1").await.unwrap().status(), 412);
    assert_eq!(tt.entry(id).unwrap()["durationMinutes"], 540);

    let list: Value = client()
        .get(&url)
        .bearer_auth(&token)
        .query(&[
            ("employeeId", "E-7"),
            ("from", "2025-06-02T00:00:00Z"),
            ("to", "2025-06-03T00:00:00Z"),
        ])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["total"], 1);
    assert_eq!(list["items"][0]["id"], id);

    tt.expire_access_tokens();
    let resp = client().get(&url).bearer_auth(&token).send().await.unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.json::<Value>().await.unwrap()["error"], "unauthorized");
    let fresh = tt.issue_token();
    assert_eq!(
        client()
            .get(&url)
            .bearer_auth(&fresh)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

//! The back office's submissions through `hub serve`'s intake: purchase
//! orders and deliveries round-trip to the MarketMan sandbox, time entries to
//! the time-tracking sandbox (open shifts held, edits as updates), and
//! invalid submissions refused with the field named and nothing queued.

use super::{Hub, login};
use crate::backends::{Backend, conformance};
use hub::serve::{AppState, run};
use hub_sandboxes::marketman::{MarketManConfig, MarketManSandbox};
use hub_sandboxes::timetracking::{TimeTrackingConfig, TimeTrackingSandbox};
use serde_json::json;
use shared::model::Provider;
use shared::pipelines::push::{PushOutcome, Pusher};
use shared::providers::Endpoints;

conformance!(
    purchase_orders_and_deliveries_round_trip_to_marketman,
    time_entries_are_sent_when_closed_and_updated_when_edited,
    invalid_submissions_name_the_field_and_queue_nothing,
);

const TOKEN: &str = "intake-test-token";

struct Ops {
    hub: Hub,
    url: String,
    http: reqwest::Client,
    _stop: tokio::sync::oneshot::Sender<()>,
}

async fn serve(hub: Hub) -> Ops {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!(
        "http://{}/intake/{}",
        listener.local_addr().unwrap(),
        hub.tenant
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let state = AppState::new(hub.stores.clone(), Default::default())
        .with_intake_token(Some(TOKEN.to_string().into()));
    tokio::spawn(run(listener, state, async {
        let _ = stopped.await;
    }));
    Ops {
        hub,
        url,
        http: reqwest::Client::new(),
        _stop: stop,
    }
}

impl Ops {
    async fn submit(
        &self,
        kind: &str,
        key: &str,
        body: serde_json::Value,
    ) -> (u16, serde_json::Value) {
        let r = self
            .http
            .post(format!("{}/{kind}", self.url))
            .bearer_auth(TOKEN)
            .header("idempotency-key", key)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or_default())
    }
}

async fn purchase_orders_and_deliveries_round_trip_to_marketman(b: Backend) {
    let mm = MarketManSandbox::start(MarketManConfig::seeded(61))
        .await
        .unwrap();
    let hub = Hub::new(b).await;
    let buyer = mm.buyer_guid();
    let vendor = mm.vendors()[0].clone();
    let mut conn = hub
        .connect(
            "mm",
            Provider::MarketMan,
            &buyer,
            "UTC",
            login(&[
                ("api_key", mm.api_key()),
                ("api_password", mm.api_password()),
            ]),
        )
        .await;
    conn.codes
        .insert("supplier:acme".into(), vendor.guid.clone());
    conn.codes
        .insert("item:flour".into(), vendor.catalog[0].code.clone());
    hub.stores.connections.register(&conn).await.unwrap();
    let clients = hub.clients(Endpoints {
        marketman: mm.base_url(),
        ..Endpoints::default()
    });
    let ops = serve(hub).await;

    let po = json!({"id": "po-1", "supplier_id": "acme", "location": "main", "delivery_date": "2026-12-02",
        "lines": [{"item_id": "flour", "quantity": "2.5", "unit": "bag", "unit_cost": "18.40"}], "notes": "weekly"});
    let (status, answer) = ops.submit("purchase-orders", "po-1-a", po.clone()).await;
    assert_eq!(status, 202, "{answer}");
    // The same key again replays; nothing new is queued.
    let (status, again) = ops.submit("purchase-orders", "po-1-a", po).await;
    assert_eq!((status, &again), (202, &answer));
    let pusher = Pusher::new(ops.hub.stores.clone(), clients.clone());
    let out = pusher
        .drain(ops.hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [PushOutcome::Posted(_)]),
        "{out:?}"
    );
    let orders = mm.created_orders();
    assert_eq!(orders.len(), 1);
    assert_eq!(
        (
            orders[0].vendor_guid.as_str(),
            orders[0].lines[0].code.as_str()
        ),
        (vendor.guid.as_str(), vendor.catalog[0].code.as_str())
    );
    assert_eq!(orders[0].lines[0].quantity, "2.5".parse().unwrap());

    let delivery = json!({"id": "dl-1", "purchase_order": "po-1", "invoice_number": "INV-77", "received_at": "2026-12-02T09:30:00Z",
        "lines": [{"item_id": "flour", "quantity_received": "2.5", "unit": "bag", "unit_cost": "18.40"}]});
    let (status, answer) = ops.submit("deliveries", "dl-1-a", delivery).await;
    assert_eq!(status, 202, "{answer}");
    let out = pusher
        .drain(ops.hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [PushOutcome::Posted(_)]),
        "{out:?}"
    );
    let docs = mm.received_docs();
    assert_eq!(docs.len(), 1);
    assert_eq!(
        (docs[0].number.as_str(), docs[0].order_number.as_deref()),
        ("INV-77", Some(orders[0].order_number.as_str()))
    );
}

async fn time_entries_are_sent_when_closed_and_updated_when_edited(b: Backend) {
    let tt = TimeTrackingSandbox::start(TimeTrackingConfig::seeded(62))
        .await
        .unwrap();
    let hub = Hub::new(b).await;
    hub.connect(
        "time",
        Provider::TimeTracking,
        "acct-1",
        "America/New_York",
        login(&[("base_url", &tt.base_url()), ("api_token", &tt.api_token())]),
    )
    .await;
    let clients = hub.clients(Endpoints::default());
    let ops = serve(hub).await;
    let pusher = Pusher::new(ops.hub.stores.clone(), clients);

    // Clocked in at 22:00, still working: held, nothing sent.
    let open = json!({"id": "te-1", "employee_id": "e-7", "location": "main", "clock_in": "2026-11-28T03:00:00Z", "breaks": []});
    assert_eq!(ops.submit("time-entries", "te-1-open", open).await.0, 202);
    let out = pusher
        .drain(ops.hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [PushOutcome::Skipped(_)]),
        "{out:?}"
    );
    assert!(
        tt.entries().is_empty(),
        "an open shift is not sent as zero hours"
    );

    // Clocked out at 02:30 after a 30-minute unpaid break: 4 hours.
    let closed = json!({"id": "te-1", "employee_id": "e-7", "location": "main", "clock_in": "2026-11-28T03:00:00Z", "clock_out": "2026-11-28T07:30:00Z",
        "breaks": [{"start": "2026-11-28T05:00:00Z", "end": "2026-11-28T05:30:00Z", "paid": false}]});
    assert_eq!(
        ops.submit("time-entries", "te-1-closed", closed.clone())
            .await
            .0,
        202
    );
    let out = pusher
        .drain(ops.hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [PushOutcome::Posted(_)]),
        "{out:?}"
    );
    let entries = tt.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0]["hours"], "4.00");
    assert_eq!(
        entries[0]["businessDate"], "2026-11-27",
        "22:00 on the 27th, New York"
    );

    // Corrected clock-out: an update of the same entry, not a second one.
    let mut edited = closed;
    edited["clock_out"] = "2026-11-28T08:00:00Z".into();
    assert_eq!(ops.submit("time-entries", "te-1-edit", edited).await.0, 202);
    let out = pusher
        .drain(ops.hub.stores.push_queue.as_ref(), 10)
        .await
        .unwrap();
    assert!(
        matches!(out.as_slice(), [PushOutcome::Posted(_)]),
        "{out:?}"
    );
    let entries = tt.entries();
    assert_eq!(entries.len(), 1);
    assert_eq!(
        (entries[0]["hours"].as_str(), entries[0]["version"].as_i64()),
        (Some("4.50"), Some(2))
    );
}

async fn invalid_submissions_name_the_field_and_queue_nothing(b: Backend) {
    let hub = Hub::new(b).await;
    let ops = serve(hub).await;
    let cases = [
        (
            "purchase-orders",
            json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": [{"item_id": "i", "quantity": "0", "unit": "u", "unit_cost": "1"}]}),
            422,
            "lines[0].quantity",
        ),
        (
            "purchase-orders",
            json!({"id": "p", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
            422,
            "supplier_id",
        ),
        (
            "purchase-orders",
            json!({"id": "p", "supplier_id": "s", "location": "l", "delivery_date": "2026-12-02", "lines": []}),
            422,
            "lines",
        ),
        (
            "deliveries",
            json!({"id": "d", "received_at": "yesterday", "lines": []}),
            422,
            "received_at",
        ),
        (
            "time-entries",
            json!({"id": "t", "employee_id": "e", "location": "l", "clock_in": "2026-11-28T10:00:00Z", "clock_out": "2026-11-28T09:00:00Z"}),
            422,
            "clock_out",
        ),
        (
            "time-entries",
            json!({"id": "t", "employee_id": "e", "location": "l", "clock_in": "2026-11-28T10:00:00Z", "clock_out": "2026-11-28T12:00:00Z",
            "breaks": [{"start": "2026-11-28T13:00:00Z", "end": "2026-11-28T13:30:00Z"}]}),
            422,
            "breaks[0]",
        ),
    ];
    for (kind, body, status, field) in cases {
        let (s, v) = ops.submit(kind, "k-1", body).await;
        assert_eq!(
            (s, v["field"].as_str()),
            (status, Some(field)),
            "{kind}: {v}"
        );
        assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()));
    }
    // No key, no token, wrong token, wrong method.
    let r = ops
        .http
        .post(format!("{}/purchase-orders", ops.url))
        .bearer_auth(TOKEN)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let r = ops
        .http
        .post(format!("{}/purchase-orders", ops.url))
        .header("idempotency-key", "k")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ops
        .http
        .post(format!("{}/purchase-orders", ops.url))
        .bearer_auth("guess")
        .header("idempotency-key", "k")
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let r = ops
        .http
        .get(format!("{}/purchase-orders", ops.url))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 405);
    let d = ops.hub.stores.push_queue.depth().await.unwrap();
    assert_eq!(d.visible + d.in_flight + d.dead, 0, "nothing was queued");
}

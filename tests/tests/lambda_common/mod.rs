//! What the two Lambda test binaries (`lambda_smoke`, `lambda_aws`) share:
//! the sample events, invoking a function through cargo lambda's runtime
//! emulator, and the connect event a signed link makes.

// Each test binary uses a part of it.
#![allow(dead_code)]

use serde_json::Value;
use shared::Stores;
use shared::ids::{ConnectionId, TenantId};
use shared::model::{Provider, TimeZoneName};
use shared::providers::connect::{ConnectService, PendingConnect};
use std::time::Duration;

/// The API's host in the sample events.
pub const API: &str = "https://abc123.execute-api.us-east-1.amazonaws.com";

/// A sample event from `tests/fixtures/events/`.
pub fn fixture(name: &str) -> Value {
    let path = format!("{}/fixtures/events/{name}", env!("CARGO_MANIFEST_DIR"));
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap()
}

/// cargo lambda's runtime emulator.
pub struct Runtime {
    url: String,
    http: reqwest::Client,
}

impl Runtime {
    /// The emulator at `url`.
    pub fn new(url: String) -> Self {
        Runtime {
            url,
            http: reqwest::Client::builder()
                .no_proxy()
                .timeout(Duration::from_secs(600))
                .build()
                .unwrap(),
        }
    }

    /// The HTTP client, for the test's own requests.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// Invokes `function` with `event`; its answer.
    pub async fn invoke(&self, function: &str, event: &Value) -> Value {
        let url = format!("{}/2015-03-31/functions/{function}/invocations", self.url);
        let r = self
            .http
            .post(&url)
            .json(event)
            .send()
            .await
            .unwrap_or_else(|e| panic!("invoke {function}: {e}"));
        let status = r.status();
        let text = r.text().await.unwrap();
        assert!(status.is_success(), "{function}: {status} {text}");
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("{function} answered {text}"))
    }
}

/// The connect function's event for a link `hub connect --link` issues:
/// QuickBooks for bistro's `connection`, signed with the key in `stores`.
pub async fn signed_connect_event(stores: &Stores, connection: &str) -> Value {
    let issuer = ConnectService::new(
        stores.clone(),
        stores.provider_http(),
        Default::default(),
        API,
    );
    let link = issuer
        .issue_link(
            &PendingConnect {
                provider: Provider::QuickBooks,
                tenant: TenantId::new("bistro").unwrap(),
                connection: ConnectionId::new(connection).unwrap(),
                time_zone: TimeZoneName::new("America/New_York").unwrap(),
                business_day_close: Default::default(),
                replace: false,
            },
            jiff::SignedDuration::from_mins(5),
        )
        .await
        .unwrap();
    let mut event = fixture("connect.json");
    event["rawQueryString"] = link.split_once('?').unwrap().1.into();
    event
}

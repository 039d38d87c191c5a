//! Toast: bulk orders (page/pageSize, `Link` rel="next") and menus, with the
//! machine-client login in `login::ToastLogin`. Limits (providers.md §1.3–1.5):
//! 20 requests/s and 10,000 per 15 minutes per restaurant, `ordersBulk` 5/s,
//! `menus` 1/s; windows of at most a month per `ordersBulk` request.

use crate::ids::{ProviderAccountId, SecretName};
use crate::model::Provider;
use crate::ports::Limit;
use crate::providers::auth::{Credentials, Renewer, StoredToken, TokenManager};
use crate::providers::http::{
    Idempotence, ProviderError, ProviderHttp, ProviderMessage, RateScope,
};
use crate::providers::{bearer, with_token};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::Value;
use std::time::Duration;

/// Toast's page size ceiling for `ordersBulk`.
pub const MAX_PAGE_SIZE: u32 = 100;
/// The longest window one `ordersBulk` request may ask for.
pub const MAX_WINDOW: SignedDuration = SignedDuration::from_hours(24 * 30);

/// Toast's documented limits per restaurant.
pub fn limits() -> Vec<Limit> {
    vec![
        Limit::new("second", 20, Duration::from_secs(1)),
        Limit::new("quarter-hour", 10_000, Duration::from_secs(900)),
    ]
}

/// Toast's `ErrorMessage` bodies (`{"status","code","message","messageKey","fieldName",...}`).
pub fn errors(body: &[u8]) -> Vec<ProviderMessage> {
    let v: Value = serde_json::from_slice(body).unwrap_or_default();
    match v["message"].as_str() {
        Some(m) => vec![ProviderMessage {
            code: v["code"]
                .as_i64()
                .map(|c| c.to_string())
                .or_else(|| v["messageKey"].as_str().map(str::to_string)),
            message: match v["fieldName"].as_str() {
                Some(f) => format!("{m} (field {f})"),
                None => m.to_string(),
            },
        }],
        None => Vec::new(),
    }
}

/// Toast's date format for `startDate`/`endDate`: `2016-01-01T14:13:12.000+0000`.
pub fn format_date(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S.%3f+0000").to_string()
}

/// One page of `ordersBulk`.
#[derive(Debug, Clone, PartialEq)]
pub struct OrdersPage {
    /// The orders, as Toast sent them.
    pub orders: Vec<Value>,
    /// Whether the `Link` header names a next page.
    pub has_next: bool,
}

/// A client for one restaurant.
#[derive(Debug, Clone)]
pub struct ToastClient {
    http: ProviderHttp,
    tokens: TokenManager,
    base_url: String,
    restaurant: ProviderAccountId,
    secret: SecretName,
    login: ToastLogin,
    scope: RateScope,
}

fn has_next(headers: &http::HeaderMap) -> bool {
    headers
        .get_all("link")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|part| part.contains("rel=\"next\"") || part.contains("rel=next"))
}

impl ToastClient {
    /// A client for `restaurant`, whose login lives in `secret`.
    pub fn new(
        http: ProviderHttp,
        tokens: TokenManager,
        base_url: &str,
        restaurant: ProviderAccountId,
        secret: SecretName,
    ) -> Self {
        let base_url = base_url.trim_end_matches('/').to_string();
        ToastClient {
            scope: RateScope::new(Provider::Toast, restaurant.as_str(), limits(), None),
            login: ToastLogin {
                base_url: base_url.clone(),
            },
            http,
            tokens,
            base_url,
            restaurant,
            secret,
        }
    }

    /// Overrides the rate limits (tests, or a contract with higher limits).
    pub fn with_limits(mut self, limits: Vec<Limit>) -> Self {
        self.scope.limits = limits;
        self
    }

    async fn get(
        &self,
        endpoint: &'static str,
        path: &str,
        query: &[(&str, String)],
        extra: Option<Limit>,
    ) -> Result<crate::providers::Reply, ProviderError> {
        let url = format!("{}{path}", self.base_url);
        let mut scope = self.scope.clone();
        scope.limits.extend(extra);
        with_token(&self.tokens, &self.secret, &self.login, |token| {
            let (url, scope) = (&url, &scope);
            async move {
                self.http
                    .send(scope, endpoint, Idempotence::Safe, errors, || {
                        self.http
                            .client()
                            .get(url)
                            .query(query)
                            .header("authorization", bearer(&token))
                            .header("toast-restaurant-external-id", self.restaurant.as_str())
                    })
                    .await
            }
        })
        .await
    }

    /// One page of orders modified in `[start, end)`.
    pub async fn orders_bulk_page(
        &self,
        start: Timestamp,
        end: Timestamp,
        page: u32,
        page_size: u32,
    ) -> Result<OrdersPage, ProviderError> {
        if end.duration_since(start) > MAX_WINDOW {
            return Err(ProviderError::Validation(vec![ProviderMessage {
                code: None,
                message: format!("window {start}..{end} is longer than Toast's one month"),
            }]));
        }
        let reply = self
            .get(
                "toast.ordersBulk",
                "/orders/v2/ordersBulk",
                &[
                    ("startDate", format_date(start)),
                    ("endDate", format_date(end)),
                    ("page", page.to_string()),
                    ("pageSize", page_size.min(MAX_PAGE_SIZE).to_string()),
                ],
                Some(Limit::new("bulk-second", 5, Duration::from_secs(1))),
            )
            .await?;
        let orders: Vec<Value> = reply.json()?;
        Ok(OrdersPage {
            has_next: has_next(&reply.headers) && !orders.is_empty(),
            orders,
        })
    }

    /// Every order modified in `[start, end)`, page by page (no silent cap).
    pub async fn orders_bulk(
        &self,
        start: Timestamp,
        end: Timestamp,
    ) -> Result<Vec<Value>, ProviderError> {
        let mut out = Vec::new();
        let mut page = 1;
        loop {
            let p = self
                .orders_bulk_page(start, end, page, MAX_PAGE_SIZE)
                .await?;
            out.extend(p.orders);
            if !p.has_next {
                return Ok(out);
            }
            page += 1;
        }
    }

    /// The restaurant's menus (`GET /menus/v2/menus`).
    pub async fn menus(&self) -> Result<Value, ProviderError> {
        self.get(
            "toast.menus",
            "/menus/v2/menus",
            &[],
            Some(Limit::new("menus-second", 1, Duration::from_secs(1))),
        )
        .await?
        .json()
    }

    /// The restaurant's currency (`general.currencyCode` of `GET
    /// /restaurants/v1/restaurants/{guid}`): orders carry none.
    pub async fn currency(&self) -> Result<crate::model::Currency, ProviderError> {
        let path = format!("/restaurants/v1/restaurants/{}", self.restaurant.as_str());
        let v: Value = self
            .get("toast.restaurant", &path, &[], None)
            .await?
            .json()?;
        let code = v["general"]["currencyCode"].as_str().ok_or_else(|| {
            ProviderError::Permanent("the restaurant has no general.currencyCode".into())
        })?;
        crate::model::Currency::new(code).map_err(ProviderError::Permanent)
    }

    /// When the menus last changed (`GET /menus/v2/metadata`).
    pub async fn menus_metadata(&self) -> Result<Value, ProviderError> {
        self.get("toast.menus.metadata", "/menus/v2/metadata", &[], None)
            .await?
            .json()
    }
}

/// Toast machine-client login: a token a day, reused by every invocation, and
/// never more than two logins an hour per client (Toast cuts off clients that
/// log in too often).
#[derive(Debug, Clone)]
pub struct ToastLogin {
    /// The Toast API host, e.g. `https://ws-api.toasttab.com`.
    pub base_url: String,
}

/// Toast's login budget per client.
pub const TOAST_LOGINS: Limit = Limit::new("hour", 2, Duration::from_secs(3600));

#[async_trait]
impl Renewer for ToastLogin {
    async fn renew(
        &self,
        http: &ProviderHttp,
        creds: &Credentials,
        name: &SecretName,
    ) -> Result<StoredToken, ProviderError> {
        let id = creds.login("client_id", name)?;
        let secret = creds.login("client_secret", name)?;
        let scope = RateScope::new(
            Provider::Toast,
            &format!("login:{}", id.expose_secret()),
            vec![TOAST_LOGINS],
            None,
        );
        let url = format!(
            "{}/authentication/v1/authentication/login",
            self.base_url.trim_end_matches('/')
        );
        let reply = http
            .send(&scope, "toast.login", Idempotence::Safe, errors, || {
                http.client().post(&url).json(&serde_json::json!({
                    "clientId": id.expose_secret(),
                    "clientSecret": secret.expose_secret(),
                    "userAccessType": "TOAST_MACHINE_CLIENT",
                }))
            })
            .await?;
        #[derive(Deserialize)]
        #[serde(rename_all = "camelCase")]
        struct Token {
            access_token: String,
            expires_in: i64,
        }
        #[derive(Deserialize)]
        struct Login {
            token: Token,
        }
        let login: Login = reply.json()?;
        Ok(StoredToken {
            access_token: login.token.access_token,
            refresh_token: None,
            expires_at: Timestamp::now() + SignedDuration::from_secs(login.token.expires_in),
            refresh_expires_at: None,
        })
    }
}

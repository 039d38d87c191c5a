//! Against the provider sandboxes, over real HTTP on loopback.

mod batching;
mod cadence;
mod clients;
mod health;
mod journal;
mod ops;
mod posting;
mod pulls;

use crate::backends::Backend;
use jiff::{SignedDuration, Timestamp};
use shared::Stores;
use shared::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use shared::model::{Connection, Provider, Tenant, TimeZoneName};
use shared::providers::auth::{Credentials, StoredToken};
use shared::providers::{Endpoints, ProviderClients};

/// Stores on a backend with one tenant, and clients pointed at the sandboxes.
pub struct Hub {
    pub stores: Stores,
    pub tenant: TenantId,
    _backend: Backend,
}

impl Hub {
    pub async fn new(b: Backend) -> Hub {
        let stores = b.stores(5).await;
        let tenant = TenantId::new("bistro").unwrap();
        stores
            .connections
            .put_tenant(&Tenant {
                id: tenant.clone(),
                name: "Bistro".into(),
            })
            .await
            .unwrap();
        Hub {
            stores,
            tenant,
            _backend: b,
        }
    }

    pub fn clients(&self, endpoints: Endpoints) -> ProviderClients {
        ProviderClients::new(&self.stores, endpoints, "http://127.0.0.1:9")
    }

    /// Registers a connection whose secret holds `creds`.
    pub async fn connect(
        &self,
        id: &str,
        provider: Provider,
        account: &str,
        tz: &str,
        creds: Credentials,
    ) -> Connection {
        let secret = SecretName::new(format!("{}/{id}", self.tenant)).unwrap();
        self.stores
            .secrets
            .put(&secret, &creds.to_secret())
            .await
            .unwrap();
        let c = Connection {
            id: ConnectionId::new(id).unwrap(),
            tenant: self.tenant.clone(),
            provider,
            account_id: ProviderAccountId::new(account).unwrap(),
            time_zone: TimeZoneName::new(tz).unwrap(),
            business_day_close: Default::default(),
            credentials: secret,
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        };
        self.stores.connections.register(&c).await.unwrap();
        c
    }

    pub async fn app(&self, provider: Provider, client_id: &str, client_secret: &str) {
        self.stores
            .secrets
            .put(
                &SecretName::new(format!("apps/{provider}")).unwrap(),
                &serde_json::json!({"client_id": client_id, "client_secret": client_secret})
                    .to_string()
                    .into(),
            )
            .await
            .unwrap();
    }
}

/// Credentials holding a token (and refresh token) the sandbox issued.
pub fn token_credentials(
    access: &str,
    refresh: Option<&str>,
    expires_in: SignedDuration,
) -> Credentials {
    Credentials {
        token: Some(StoredToken {
            access_token: access.into(),
            refresh_token: refresh.map(str::to_string),
            expires_at: Timestamp::now() + expires_in,
            refresh_expires_at: None,
        }),
        login: Default::default(),
    }
}

/// Login credentials.
pub fn login(pairs: &[(&str, &str)]) -> Credentials {
    Credentials {
        token: None,
        login: pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
    }
}

/// Every message on `q`, received and deleted, bodies in order.
pub async fn drain(q: &dyn shared::ports::WorkQueue) -> Vec<String> {
    let mut out = Vec::new();
    loop {
        let got = q
            .receive(
                10,
                std::time::Duration::from_secs(300),
                std::time::Duration::ZERO,
            )
            .await
            .unwrap();
        if got.is_empty() {
            return out;
        }
        for m in got {
            q.delete(&m.receipt).await.unwrap();
            out.push(m.body);
        }
    }
}

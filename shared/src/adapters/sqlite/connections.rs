use super::{SqliteStore, decode, encode, q};
use crate::ids::{ConnectionId, ProviderAccountId, TenantId};
use crate::model::{Connection, Provider, Tenant};
use crate::ports::{ConnectionStore, StoreError, StoreResult};
use async_trait::async_trait;
use rusqlite::{OptionalExtension, Transaction, params};

fn list<T: serde::de::DeserializeOwned>(
    tx: &Transaction<'_>,
    op: &'static str,
    sql: &str,
    args: impl rusqlite::Params,
) -> StoreResult<Vec<T>> {
    let mut stmt = tx.prepare_cached(sql).map_err(q(op))?;
    let rows = stmt
        .query_map(args, |r| r.get::<_, String>(0))
        .map_err(q(op))?;
    let mut out = Vec::new();
    for row in rows {
        out.push(decode(op, &row.map_err(q(op))?)?);
    }
    Ok(out)
}

#[async_trait]
impl ConnectionStore for SqliteStore {
    async fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        let (id, body) = (tenant.id.to_string(), encode("tenant", tenant)?);
        self.tx("connections.put_tenant", move |tx| {
            tx.execute(
                "INSERT INTO tenants (id, body) VALUES (?1, ?2) ON CONFLICT (id) DO UPDATE SET body = ?2",
                params![id, body],
            )
            .map_err(q("connections.put_tenant"))?;
            Ok(())
        })
        .await
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        let id = id.to_string();
        self.tx("connections.get_tenant", move |tx| {
            let body: Option<String> = tx
                .query_row("SELECT body FROM tenants WHERE id = ?1", params![id], |r| {
                    r.get(0)
                })
                .optional()
                .map_err(q("connections.get_tenant"))?;
            body.map(|b| decode("tenant", &b)).transpose()
        })
        .await
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        self.tx("connections.list_tenants", |tx| {
            list(
                tx,
                "connections.list_tenants",
                "SELECT body FROM tenants ORDER BY id",
                [],
            )
        })
        .await
    }

    async fn register(&self, connection: &Connection) -> StoreResult<()> {
        let c = connection.clone();
        let body = encode("connection", &c)?;
        self.tx("connections.register", move |tx| {
            let tenant_exists: bool = tx
                .query_row(
                    "SELECT EXISTS (SELECT 1 FROM tenants WHERE id = ?1)",
                    params![c.tenant.as_str()],
                    |r| r.get(0),
                )
                .map_err(q("connections.register"))?;
            if !tenant_exists {
                return Err(StoreError::NotFound(format!("tenant {}", c.tenant)));
            }
            let owner: Option<(String, String)> = tx
                .query_row(
                    "SELECT tenant, id FROM connections WHERE provider = ?1 AND account = ?2",
                    params![c.provider.as_str(), c.account_id.as_str()],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()
                .map_err(q("connections.register"))?;
            if let Some((tenant, id)) = owner
                && (tenant != c.tenant.as_str() || id != c.id.as_str())
            {
                return Err(StoreError::Conflict(format!(
                    "{} account {} already belongs to connection {tenant}/{id}",
                    c.provider, c.account_id
                )));
            }
            tx.execute(
                "INSERT INTO connections (tenant, id, provider, account, body) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (tenant, id) DO UPDATE SET provider = ?3, account = ?4, body = ?5",
                params![c.tenant.as_str(), c.id.as_str(), c.provider.as_str(), c.account_id.as_str(), body],
            )
            .map_err(q("connections.register"))?;
            Ok(())
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> StoreResult<Option<Connection>> {
        let (tenant, id) = (tenant.to_string(), id.to_string());
        self.tx("connections.get", move |tx| {
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM connections WHERE tenant = ?1 AND id = ?2",
                    params![tenant, id],
                    |r| r.get(0),
                )
                .optional()
                .map_err(q("connections.get"))?;
            body.map(|b| decode("connection", &b)).transpose()
        })
        .await
    }

    async fn list_for_tenant(&self, tenant: &TenantId) -> StoreResult<Vec<Connection>> {
        let tenant = tenant.to_string();
        self.tx("connections.list_for_tenant", move |tx| {
            list(
                tx,
                "connections.list_for_tenant",
                "SELECT body FROM connections WHERE tenant = ?1 ORDER BY id",
                params![tenant],
            )
        })
        .await
    }

    async fn list_all(&self) -> StoreResult<Vec<Connection>> {
        self.tx("connections.list_all", |tx| {
            list(
                tx,
                "connections.list_all",
                "SELECT body FROM connections ORDER BY tenant, id",
                [],
            )
        })
        .await
    }

    async fn find_by_account(
        &self,
        provider: Provider,
        account: &ProviderAccountId,
    ) -> StoreResult<Option<Connection>> {
        let account = account.to_string();
        self.tx("connections.find_by_account", move |tx| {
            let body: Option<String> = tx
                .query_row(
                    "SELECT body FROM connections WHERE provider = ?1 AND account = ?2",
                    params![provider.as_str(), account],
                    |r| r.get(0),
                )
                .optional()
                .map_err(q("connections.find_by_account"))?;
            body.map(|b| decode("connection", &b)).transpose()
        })
        .await
    }
}

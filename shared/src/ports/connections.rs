//! Tenants and connections: registered by operators, looked up by the webhook
//! path (by provider account id) and by pulls (by tenant).

use super::StoreResult;
use crate::ids::{ConnectionId, ProviderAccountId, TenantId};
use crate::model::{Connection, Provider, Tenant};
use async_trait::async_trait;

/// Stores tenants and their connections.
#[async_trait]
pub trait ConnectionStore: Send + Sync + std::fmt::Debug {
    /// Creates or updates a tenant.
    async fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()>;

    /// One tenant.
    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>>;

    /// Every tenant, by id.
    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>>;

    /// Creates or updates a connection. Its tenant must exist, and its provider
    /// account must not belong to another connection (`Conflict`).
    async fn register(&self, connection: &Connection) -> StoreResult<()>;

    /// One connection of a tenant.
    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> StoreResult<Option<Connection>>;

    /// A tenant's connections, by id.
    async fn list_for_tenant(&self, tenant: &TenantId) -> StoreResult<Vec<Connection>>;

    /// Every connection of every tenant (for schedules that fan out).
    async fn list_all(&self) -> StoreResult<Vec<Connection>>;

    /// The connection that owns a provider account, if any.
    async fn find_by_account(
        &self,
        provider: Provider,
        account: &ProviderAccountId,
    ) -> StoreResult<Option<Connection>>;
}

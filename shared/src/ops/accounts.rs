//! The chart of accounts of a tenant's books (QuickBooks or Xero), fetched
//! through the provider client and cached in the store for a day, so
//! operators can pick the account and item ids the mappings name without
//! spending the realm's call budget each time (`hub accounts <tenant>`).
//!
//! The cache is a cursor of the `chart-of-accounts` stream of the tenant's
//! books at that provider: written by compare-and-set like every cursor, its value the
//! chart as JSON.

use crate::Stores;
use crate::ids::{ConnectionId, StreamName, TenantId};
use crate::model::{Connection, Provider};
use crate::ports::{CasOutcome, CursorKey, StoreError};
use crate::providers::{ProviderClients, ProviderError};
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// How long a fetched chart is served from the cache.
pub const MAX_AGE: SignedDuration = SignedDuration::from_hours(24);

/// The stream name the cache is kept under.
pub const STREAM: &str = "chart-of-accounts";

/// One account, in the same shape for both books.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// QuickBooks' `Id`, Xero's `AccountID`.
    pub id: String,
    /// The code a mapping may name instead (QuickBooks `AcctNum`, Xero `Code`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    /// Its name.
    pub name: String,
    /// QuickBooks `AccountType`, Xero `Type`.
    pub kind: String,
    /// Whether it can be posted to.
    pub active: bool,
}

/// One connection's chart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chart {
    /// The books.
    pub provider: Provider,
    /// Their connection.
    pub connection: ConnectionId,
    /// When it was fetched from the provider.
    pub fetched_at: Timestamp,
    /// Whether this answer came from the cache.
    #[serde(default)]
    pub cached: bool,
    /// The accounts, by name.
    pub accounts: Vec<Account>,
}

/// Why a chart could not be shown.
#[derive(Debug, thiserror::Error)]
pub enum ChartError {
    /// The tenant has no QuickBooks or Xero connection.
    #[error("tenant {0} has no quickbooks or xero connection")]
    NoBooks(TenantId),
    /// The store failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The provider failed.
    #[error("{provider} chart of accounts: {error}")]
    Provider {
        /// Which books.
        provider: Provider,
        /// What went wrong.
        error: ProviderError,
    },
}

/// QuickBooks `Account` or Xero `Accounts` rows in the common shape.
pub fn normalize(provider: Provider, rows: &[Value]) -> Vec<Account> {
    let text = |v: &Value| v.as_str().map(str::to_string);
    let mut out: Vec<Account> = rows
        .iter()
        .filter_map(|r| match provider {
            Provider::QuickBooks => Some(Account {
                id: text(&r["Id"])?,
                code: text(&r["AcctNum"]),
                name: text(&r["Name"]).unwrap_or_default(),
                kind: text(&r["AccountType"]).unwrap_or_default(),
                active: r["Active"].as_bool().unwrap_or(true),
            }),
            _ => Some(Account {
                id: text(&r["AccountID"])?,
                code: text(&r["Code"]),
                name: text(&r["Name"]).unwrap_or_default(),
                kind: text(&r["Type"]).unwrap_or_default(),
                active: r["Status"].as_str().is_none_or(|s| s == "ACTIVE"),
            }),
        })
        .collect();
    out.sort_by(|a, b| a.name.cmp(&b.name).then(a.id.cmp(&b.id)));
    out
}

fn cache_key(c: &Connection) -> Result<CursorKey, StoreError> {
    Ok(CursorKey {
        tenant: c.tenant.clone(),
        provider: c.provider,
        stream: StreamName::new(STREAM).map_err(|e| StoreError::Corrupt {
            what: "stream name".into(),
            detail: e.to_string(),
        })?,
    })
}

/// The chart of each of `tenant`'s books: from the cache when younger than
/// [`MAX_AGE`] and `refresh` is not asked, else fetched and cached.
pub async fn charts(
    stores: &Stores,
    clients: &ProviderClients,
    tenant: &TenantId,
    refresh: bool,
) -> Result<Vec<Chart>, ChartError> {
    let books: Vec<Connection> = stores
        .connections
        .list_for_tenant(tenant)
        .await?
        .into_iter()
        .filter(|c| c.provider.is_accounting())
        .collect();
    if books.is_empty() {
        return Err(ChartError::NoBooks(tenant.clone()));
    }
    let mut out = Vec::new();
    for c in &books {
        let key = cache_key(c)?;
        let stored = stores.cursors.get(&key).await?;
        if !refresh
            && let Some(cursor) = &stored
            && let Ok(mut chart) = serde_json::from_str::<Chart>(&cursor.value)
            && Timestamp::now().duration_since(chart.fetched_at) < MAX_AGE
        {
            chart.cached = true;
            out.push(chart);
            continue;
        }
        let failed = |error| ChartError::Provider {
            provider: c.provider,
            error,
        };
        let rows = match c.provider {
            Provider::QuickBooks => {
                let client = clients.quickbooks(c).await.map_err(failed)?;
                client.accounts().await.map_err(failed)?
            }
            _ => {
                let client = clients.xero(c).await.map_err(failed)?;
                client.accounts().await.map_err(failed)?
            }
        };
        let chart = Chart {
            provider: c.provider,
            connection: c.id.clone(),
            fetched_at: Timestamp::now(),
            cached: false,
            accounts: normalize(c.provider, &rows),
        };
        let text = serde_json::to_string(&chart).map_err(|e| StoreError::Corrupt {
            what: "chart of accounts".into(),
            detail: e.to_string(),
        })?;
        // Another fetch writing first is as good as this one.
        match stores
            .cursors
            .compare_and_set(&key, stored.map(|s| s.version), &text)
            .await?
        {
            CasOutcome::Set(_) | CasOutcome::Conflict { .. } => {}
        }
        out.push(chart);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn both_books_read_into_one_shape() {
        let qbo = normalize(
            Provider::QuickBooks,
            &[
                json!({"Id": "4", "Name": "Undeposited Funds", "AccountType": "Other Current Asset", "Active": true}),
                json!({"Id": "79", "Name": "Sales", "AcctNum": "4000", "AccountType": "Income", "Active": false}),
                json!({"Name": "no id: skipped"}),
            ],
        );
        assert_eq!(qbo.len(), 2);
        assert_eq!(qbo[0].name, "Sales");
        assert_eq!(qbo[0].code.as_deref(), Some("4000"));
        assert!(!qbo[0].active);
        let xero = normalize(
            Provider::Xero,
            &[
                json!({"AccountID": "a-1", "Code": "200", "Name": "Sales", "Type": "REVENUE", "Status": "ARCHIVED"}),
            ],
        );
        assert_eq!(xero[0].code.as_deref(), Some("200"));
        assert!(!xero[0].active);
    }
}

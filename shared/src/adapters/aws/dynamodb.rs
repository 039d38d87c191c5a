//! DynamoDB adapter for idempotency, cursors, ledger and connections.
//!
//! Two tables. The idempotency table is keyed by `id`. The state table is a
//! single table keyed by `pk`/`sk`, with index `gsi1` for listings:
//!
//! | item | pk | sk | gsi1pk / gsi1sk |
//! |---|---|---|---|
//! | tenant | `TENANT#<id>` | `TENANT` | `TENANTS` / `<id>` |
//! | connection | `TENANT#<tenant>` | `CONN#<id>` | `CONNS` / `<tenant>#<id>` |
//! | account owner | `ACCOUNT#<provider>#<account>` | `ACCOUNT` | |
//! | cursor | `CURSOR#<tenant>#<provider>#<stream>` | `CURSOR` | |
//! | ledger row | `LEDGER#<key>` | `LEDGER` | `LEDGERDATE#<tenant>#<date>` or, undated, `LEDGERKIND#<tenant>#<kind>` / `<key>` |
//! | rate budget | `RATE#<provider>:<account>` | `RATE` | |
//! | provider call | `CALLS#<provider>:<account>` | `<ms, 15 digits>#<uuid>` (TTL a week) | |
//!
//! Every check-then-write is one conditional write (or one transaction), so
//! concurrent invocations cannot both win. The time the conditions compare
//! against is the store's [`Clock`] (the system's unless given another), not
//! DynamoDB's.

use super::schema::{GSI1, TTL_ATTRIBUTE};
use super::{Item, get_n, get_opt_s, get_s, n, s, sdk_err};
use crate::adapters::{from_millis, millis};
use crate::ids::{ConnectionId, IdempotencyKey, ProviderAccountId, TenantId};
use crate::model::{Connection, Provider, RecordKind, Tenant};
use crate::ports::{
    Acquire, Budget, CallLog, CallRecord, CasOutcome, ClaimOutcome, ClaimToken, Clock,
    ConnectionStore, Cursor, CursorKey, CursorStore, IdempotencyStore, Ledger, LedgerEntry,
    LedgerKey, Limit, RateLimitStore, SourceRecord, StoreError, StoreResult, UpsertOutcome,
    system_clock,
};
use async_trait::async_trait;
use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::types::{
    ConditionCheck, Delete, Put, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use jiff::Timestamp;
use jiff::civil::Date;
use std::sync::Arc;

/// How many times a read-modify-write retries after losing a race.
const MAX_OPTIMISTIC_RETRIES: u32 = 8;

/// The DynamoDB-backed stores.
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    state_table: String,
    idempotency_table: String,
    clock: Arc<dyn Clock>,
}

impl DynamoStore {
    /// Stores in `state_table` and `idempotency_table`, going by the system
    /// clock.
    pub fn new(
        client: Client,
        state_table: impl Into<String>,
        idempotency_table: impl Into<String>,
    ) -> Self {
        DynamoStore {
            client,
            state_table: state_table.into(),
            idempotency_table: idempotency_table.into(),
            clock: system_clock(),
        }
    }

    /// The same stores, going by `clock` instead.
    pub fn with_clock(self, clock: impl Clock + 'static) -> Self {
        DynamoStore {
            clock: Arc::new(clock),
            ..self
        }
    }

    async fn get_item(&self, op: &'static str, pk: String, sk: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.state_table)
            .key("pk", s(pk))
            .key("sk", s(sk))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err("dynamodb", op))?;
        Ok(out.item)
    }

    async fn query_all(
        &self,
        op: &'static str,
        index: Option<&str>,
        key_condition: &str,
        values: Vec<(&str, aws_sdk_dynamodb::types::AttributeValue)>,
    ) -> StoreResult<Vec<Item>> {
        let mut out = Vec::new();
        let mut start: Option<Item> = None;
        loop {
            let mut req = self
                .client
                .query()
                .table_name(&self.state_table)
                .key_condition_expression(key_condition)
                .set_exclusive_start_key(start.take());
            if let Some(index) = index {
                req = req.index_name(index);
            } else {
                req = req.consistent_read(true);
            }
            for (k, v) in &values {
                req = req.expression_attribute_values(*k, v.clone());
            }
            let page = req.send().await.map_err(sdk_err("dynamodb", op))?;
            out.extend(page.items.unwrap_or_default());
            match page.last_evaluated_key {
                Some(k) if !k.is_empty() => start = Some(k),
                _ => return Ok(out),
            }
        }
    }

    async fn read_idempotency(&self, key: &str) -> StoreResult<Option<Item>> {
        let out = self
            .client
            .get_item()
            .table_name(&self.idempotency_table)
            .key("id", s(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(sdk_err("dynamodb", "idempotency.claim"))?;
        Ok(out.item)
    }
}

fn body<T: serde::de::DeserializeOwned>(item: &Item, what: &str) -> StoreResult<T> {
    serde_json::from_str(get_s(item, "body")?).map_err(|e| StoreError::corrupt(what, e))
}

fn to_json<T: serde::Serialize>(what: &str, v: &T) -> StoreResult<String> {
    serde_json::to_string(v).map_err(|e| StoreError::corrupt(what, e))
}

fn is_condition_failed<E: aws_sdk_dynamodb::error::ProvideErrorMetadata, R>(
    e: &aws_sdk_dynamodb::error::SdkError<E, R>,
) -> bool {
    e.as_service_error()
        .and_then(|se| se.code())
        .is_some_and(|c| c == "ConditionalCheckFailedException")
}

// ---------------------------------------------------------------- idempotency

fn claim_outcome(item: &Item, now: i64) -> StoreResult<Option<ClaimOutcome>> {
    let status = get_s(item, "status")?;
    if status == "in_progress" {
        let lease: i64 = get_n(item, "lease_until_ms")?;
        if lease > now {
            return Ok(Some(ClaimOutcome::InProgress {
                lease_until: from_millis(lease)?,
            }));
        }
    } else if status == "completed" {
        let retain: i64 = get_n(item, "retain_until_ms")?;
        if retain > now {
            return Ok(Some(ClaimOutcome::Done {
                result: get_opt_s(item, "result").map(str::to_string),
                retained_until: from_millis(retain)?,
            }));
        }
    }
    Ok(None)
}

#[async_trait]
impl IdempotencyStore for DynamoStore {
    async fn claim(
        &self,
        key: &IdempotencyKey,
        lease_until: Timestamp,
    ) -> StoreResult<ClaimOutcome> {
        // A lost race against an expired record can need a second try: the
        // record we saw may have been reclaimed and released in between.
        for _ in 0..MAX_OPTIMISTIC_RETRIES {
            let now = millis(self.clock.now());
            let token = ClaimToken::generate();
            let result = self
                .client
                .put_item()
                .table_name(&self.idempotency_table)
                .item("id", s(key.as_str()))
                .item("status", s("in_progress"))
                .item("token", s(&token.0))
                .item("lease_until_ms", n(millis(lease_until)))
                .item(TTL_ATTRIBUTE, n(lease_until.as_second() + 3600))
                .condition_expression(
                    "attribute_not_exists(id) \
                     OR (#st = :in_progress AND lease_until_ms <= :now) \
                     OR (#st = :completed AND retain_until_ms <= :now)",
                )
                .expression_attribute_names("#st", "status")
                .expression_attribute_values(":in_progress", s("in_progress"))
                .expression_attribute_values(":completed", s("completed"))
                .expression_attribute_values(":now", n(now))
                .return_values_on_condition_check_failure(
                    ReturnValuesOnConditionCheckFailure::AllOld,
                )
                .send()
                .await;
            match result {
                Ok(_) => return Ok(ClaimOutcome::Claimed(token)),
                Err(e) if is_condition_failed(&e) => {
                    let old = match e.as_service_error() {
                        Some(PutItemError::ConditionalCheckFailedException(c)) => c.item().cloned(),
                        _ => None,
                    };
                    let old = match old {
                        Some(item) => Some(item),
                        None => self.read_idempotency(key.as_str()).await?,
                    };
                    if let Some(item) = old
                        && let Some(outcome) = claim_outcome(&item, now)?
                    {
                        return Ok(outcome);
                    }
                }
                Err(e) => return Err(sdk_err("dynamodb", "idempotency.claim")(e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "idempotency key {key}: claim kept losing races"
        )))
    }

    async fn complete(
        &self,
        key: &IdempotencyKey,
        token: &ClaimToken,
        result: Option<&str>,
        retain_until: Timestamp,
    ) -> StoreResult<()> {
        let mut req = self
            .client
            .update_item()
            .table_name(&self.idempotency_table)
            .key("id", s(key.as_str()))
            .condition_expression("#tok = :token AND #st = :in_progress")
            .expression_attribute_names("#tok", "token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_names("#exp", TTL_ATTRIBUTE)
            .expression_attribute_values(":token", s(&token.0))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .expression_attribute_values(":completed", s("completed"))
            .expression_attribute_values(":retain", n(millis(retain_until)))
            .expression_attribute_values(":exp", n(retain_until.as_second() + 3600));
        req = match result {
            Some(r) => req
                .update_expression(
                    "SET #st = :completed, retain_until_ms = :retain, #exp = :exp, #res = :result",
                )
                .expression_attribute_names("#res", "result")
                .expression_attribute_values(":result", s(r)),
            None => req
                .update_expression("SET #st = :completed, retain_until_ms = :retain, #exp = :exp"),
        };
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(StoreError::Conflict(format!(
                "idempotency key {key} is no longer claimed by this caller"
            ))),
            Err(e) => Err(sdk_err("dynamodb", "idempotency.complete")(e)),
        }
    }

    async fn release(&self, key: &IdempotencyKey, token: &ClaimToken) -> StoreResult<()> {
        let result = self
            .client
            .delete_item()
            .table_name(&self.idempotency_table)
            .key("id", s(key.as_str()))
            .condition_expression("#tok = :token AND #st = :in_progress")
            .expression_attribute_names("#tok", "token")
            .expression_attribute_names("#st", "status")
            .expression_attribute_values(":token", s(&token.0))
            .expression_attribute_values(":in_progress", s("in_progress"))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(e) if is_condition_failed(&e) => Err(StoreError::Conflict(format!(
                "idempotency key {key} is no longer claimed by this caller"
            ))),
            Err(e) => Err(sdk_err("dynamodb", "idempotency.release")(e)),
        }
    }
}

// ---------------------------------------------------------------- cursors

fn cursor_pk(key: &CursorKey) -> String {
    format!("CURSOR#{}", key.storage_key())
}

fn cursor_from(item: &Item) -> StoreResult<Cursor> {
    Ok(Cursor {
        value: get_s(item, "value")?.to_string(),
        version: get_n(item, "version")?,
        updated_at: from_millis(get_n(item, "updated_at_ms")?)?,
    })
}

#[async_trait]
impl CursorStore for DynamoStore {
    async fn get(&self, key: &CursorKey) -> StoreResult<Option<Cursor>> {
        self.get_item("cursors.get", cursor_pk(key), "CURSOR")
            .await?
            .map(|i| cursor_from(&i))
            .transpose()
    }

    async fn compare_and_set(
        &self,
        key: &CursorKey,
        expected: Option<u64>,
        value: &str,
    ) -> StoreResult<CasOutcome> {
        let cursor = Cursor {
            value: value.to_string(),
            version: expected.map_or(1, |v| v + 1),
            updated_at: self.clock.now(),
        };
        let mut req = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .item("pk", s(cursor_pk(key)))
            .item("sk", s("CURSOR"))
            .item("value", s(&cursor.value))
            .item("version", n(cursor.version))
            .item("updated_at_ms", n(millis(cursor.updated_at)));
        req = match expected {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(v) => req
                .condition_expression("version = :expected")
                .expression_attribute_values(":expected", n(v)),
        };
        match req.send().await {
            Ok(_) => Ok(CasOutcome::Set(cursor)),
            Err(e) if is_condition_failed(&e) => Ok(CasOutcome::Conflict {
                current: CursorStore::get(self, key).await?,
            }),
            Err(e) => Err(sdk_err("dynamodb", "cursors.compare_and_set")(e)),
        }
    }
}

// ---------------------------------------------------------------- ledger

fn ledger_pk(key: &LedgerKey) -> String {
    format!("LEDGER#{}", key.storage_key())
}

fn ledger_kind_pk(tenant: &TenantId, kind: RecordKind) -> String {
    format!("LEDGERKIND#{tenant}#{}", kind.as_str())
}

fn ledger_date_pk(tenant: &TenantId, date: Date) -> String {
    format!("LEDGERDATE#{tenant}#{date}")
}

impl DynamoStore {
    /// Reads a ledger row with its revision counter.
    async fn read_ledger(&self, key: &LedgerKey) -> StoreResult<Option<(LedgerEntry, u64)>> {
        let Some(item) = self
            .get_item("ledger.get", ledger_pk(key), "LEDGER")
            .await?
        else {
            return Ok(None);
        };
        let entry = serde_json::from_str(get_s(&item, "entry")?)
            .map_err(|e| StoreError::corrupt(format!("ledger row {}", key.storage_key()), e))?;
        Ok(Some((entry, get_n(&item, "rev")?)))
    }

    /// Writes a ledger row if its revision is still `rev` (`None`: a new row).
    /// Returns false when another writer got there first.
    async fn write_ledger(&self, entry: &LedgerEntry, rev: Option<u64>) -> StoreResult<bool> {
        let storage_key = entry.key.storage_key();
        let mut req = self
            .client
            .put_item()
            .table_name(&self.state_table)
            .item("pk", s(ledger_pk(&entry.key)))
            .item("sk", s("LEDGER"))
            .item("entry", s(to_json("ledger row", entry)?))
            .item("rev", n(rev.map_or(1, |r| r + 1)));
        req = match entry.business_date {
            Some(date) => req
                .item("gsi1pk", s(ledger_date_pk(&entry.key.tenant, date)))
                .item("gsi1sk", s(storage_key)),
            None => req
                .item(
                    "gsi1pk",
                    s(ledger_kind_pk(&entry.key.tenant, entry.key.kind)),
                )
                .item("gsi1sk", s(storage_key)),
        };
        req = match rev {
            None => req.condition_expression("attribute_not_exists(pk)"),
            Some(r) => req
                .condition_expression("rev = :rev")
                .expression_attribute_values(":rev", n(r)),
        };
        match req.send().await {
            Ok(_) => Ok(true),
            Err(e) if is_condition_failed(&e) => Ok(false),
            Err(e) => Err(sdk_err("dynamodb", "ledger.write")(e)),
        }
    }

    async fn modify_ledger<T>(
        &self,
        key: &LedgerKey,
        mut f: impl FnMut(&mut LedgerEntry, Timestamp) -> StoreResult<T> + Send,
    ) -> StoreResult<T>
    where
        T: Send,
    {
        for _ in 0..MAX_OPTIMISTIC_RETRIES {
            let (mut entry, rev) = self
                .read_ledger(key)
                .await?
                .ok_or_else(|| StoreError::NotFound(format!("ledger row {}", key.storage_key())))?;
            let out = f(&mut entry, self.clock.now())?;
            if self.write_ledger(&entry, Some(rev)).await? {
                return Ok(out);
            }
        }
        Err(StoreError::Conflict(format!(
            "ledger row {}: too many concurrent writers",
            key.storage_key()
        )))
    }
}

#[async_trait]
impl Ledger for DynamoStore {
    async fn upsert(
        &self,
        record: &SourceRecord,
        destinations: &[Provider],
    ) -> StoreResult<UpsertOutcome> {
        let hash = record.content_hash();
        for _ in 0..MAX_OPTIMISTIC_RETRIES {
            let now = self.clock.now();
            match self.read_ledger(&record.key).await? {
                None => {
                    let entry = LedgerEntry::create(record, &hash, destinations, now);
                    if self.write_ledger(&entry, None).await? {
                        return Ok(UpsertOutcome::Created { version: 1 });
                    }
                }
                Some((mut entry, rev)) => {
                    let before = entry.clone();
                    let outcome = entry.apply_upsert(record, &hash, destinations, now);
                    if entry == before || self.write_ledger(&entry, Some(rev)).await? {
                        return Ok(outcome);
                    }
                }
            }
        }
        Err(StoreError::Conflict(format!(
            "ledger row {}: too many concurrent writers",
            record.key.storage_key()
        )))
    }

    async fn get(&self, key: &LedgerKey) -> StoreResult<Option<LedgerEntry>> {
        Ok(self.read_ledger(key).await?.map(|(e, _)| e))
    }

    async fn mark_posted(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        remote_id: &str,
        sync_token: Option<&str>,
    ) -> StoreResult<()> {
        self.modify_ledger(key, |e, now| {
            e.apply_posted(destination, version, remote_id, sync_token, now)
        })
        .await
    }

    async fn mark_failed(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        reason: &str,
    ) -> StoreResult<u32> {
        self.modify_ledger(key, |e, now| {
            e.apply_failed(destination, version, reason, now)
        })
        .await
    }

    async fn mark_send(
        &self,
        key: &LedgerKey,
        destination: Provider,
        version: u32,
        send: Option<&str>,
        expected: Option<&str>,
    ) -> StoreResult<()> {
        self.modify_ledger(key, |e, now| {
            e.apply_send(destination, version, send, expected, now)
        })
        .await
    }

    async fn list_undated(
        &self,
        tenant: &TenantId,
        kind: RecordKind,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let items = self
            .query_all(
                "ledger.list_undated",
                Some(GSI1),
                "gsi1pk = :pk",
                vec![(":pk", s(ledger_kind_pk(tenant, kind)))],
            )
            .await?;
        items
            .iter()
            .map(|i| {
                serde_json::from_str(get_s(i, "entry")?)
                    .map_err(|e| StoreError::corrupt("ledger row", e))
            })
            .collect()
    }

    async fn list_for_business_date(
        &self,
        tenant: &TenantId,
        date: Date,
    ) -> StoreResult<Vec<LedgerEntry>> {
        let items = self
            .query_all(
                "ledger.list_for_business_date",
                Some(GSI1),
                "gsi1pk = :pk",
                vec![(":pk", s(ledger_date_pk(tenant, date)))],
            )
            .await?;
        items
            .iter()
            .map(|i| {
                serde_json::from_str(get_s(i, "entry")?)
                    .map_err(|e| StoreError::corrupt("ledger row", e))
            })
            .collect()
    }
}

// ---------------------------------------------------------------- connections

fn tenant_pk(id: &TenantId) -> String {
    format!("TENANT#{id}")
}

fn account_pk(provider: Provider, account: &ProviderAccountId) -> String {
    format!("ACCOUNT#{provider}#{account}")
}

fn build<T, E: std::error::Error + Send + Sync + 'static>(r: Result<T, E>) -> StoreResult<T> {
    r.map_err(|e| StoreError::backend("dynamodb", "build request", e))
}

#[async_trait]
impl ConnectionStore for DynamoStore {
    async fn put_tenant(&self, tenant: &Tenant) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.state_table)
            .item("pk", s(tenant_pk(&tenant.id)))
            .item("sk", s("TENANT"))
            .item("gsi1pk", s("TENANTS"))
            .item("gsi1sk", s(tenant.id.as_str()))
            .item("body", s(to_json("tenant", tenant)?))
            .send()
            .await
            .map_err(sdk_err("dynamodb", "connections.put_tenant"))?;
        Ok(())
    }

    async fn get_tenant(&self, id: &TenantId) -> StoreResult<Option<Tenant>> {
        self.get_item("connections.get_tenant", tenant_pk(id), "TENANT")
            .await?
            .map(|i| body(&i, "tenant"))
            .transpose()
    }

    async fn list_tenants(&self) -> StoreResult<Vec<Tenant>> {
        let items = self
            .query_all(
                "connections.list_tenants",
                Some(GSI1),
                "gsi1pk = :pk",
                vec![(":pk", s("TENANTS"))],
            )
            .await?;
        items.iter().map(|i| body(i, "tenant")).collect()
    }

    async fn register(&self, c: &Connection) -> StoreResult<()> {
        let json = to_json("connection", c)?;
        let previous = ConnectionStore::get(self, &c.tenant, &c.id).await?;
        let tenant_check = TransactWriteItem::builder()
            .condition_check(build(
                ConditionCheck::builder()
                    .table_name(&self.state_table)
                    .key("pk", s(tenant_pk(&c.tenant)))
                    .key("sk", s("TENANT"))
                    .condition_expression("attribute_exists(pk)")
                    .build(),
            )?)
            .build();
        let account_put = TransactWriteItem::builder()
            .put(build(
                Put::builder()
                    .table_name(&self.state_table)
                    .item("pk", s(account_pk(c.provider, &c.account_id)))
                    .item("sk", s("ACCOUNT"))
                    .item("tenant", s(c.tenant.as_str()))
                    .item("connection", s(c.id.as_str()))
                    .item("body", s(&json))
                    .condition_expression(
                        "attribute_not_exists(pk) OR (tenant = :tenant AND #conn = :conn)",
                    )
                    .expression_attribute_names("#conn", "connection")
                    .expression_attribute_values(":tenant", s(c.tenant.as_str()))
                    .expression_attribute_values(":conn", s(c.id.as_str()))
                    .build(),
            )?)
            .build();
        let connection_put = TransactWriteItem::builder()
            .put(build(
                Put::builder()
                    .table_name(&self.state_table)
                    .item("pk", s(tenant_pk(&c.tenant)))
                    .item("sk", s(format!("CONN#{}", c.id)))
                    .item("gsi1pk", s("CONNS"))
                    .item("gsi1sk", s(format!("{}#{}", c.tenant, c.id)))
                    .item("body", s(&json))
                    .build(),
            )?)
            .build();
        let mut req = self
            .client
            .transact_write_items()
            .transact_items(tenant_check)
            .transact_items(account_put)
            .transact_items(connection_put);
        if let Some(old) = previous
            && (old.provider != c.provider || old.account_id != c.account_id)
        {
            req = req.transact_items(
                TransactWriteItem::builder()
                    .delete(build(
                        Delete::builder()
                            .table_name(&self.state_table)
                            .key("pk", s(account_pk(old.provider, &old.account_id)))
                            .key("sk", s("ACCOUNT"))
                            .build(),
                    )?)
                    .build(),
            );
        }
        match req.send().await {
            Ok(_) => Ok(()),
            Err(e) => {
                let reasons: Vec<Option<String>> = match e.as_service_error() {
                    Some(TransactWriteItemsError::TransactionCanceledException(t)) => t
                        .cancellation_reasons()
                        .iter()
                        .map(|r| r.code().map(str::to_string))
                        .collect(),
                    _ => Vec::new(),
                };
                let failed = |i: usize| {
                    reasons
                        .get(i)
                        .and_then(|c| c.as_deref())
                        .is_some_and(|c| c == "ConditionalCheckFailed")
                };
                if failed(0) {
                    Err(StoreError::NotFound(format!("tenant {}", c.tenant)))
                } else if failed(1) {
                    Err(StoreError::Conflict(format!(
                        "{} account {} already belongs to another connection",
                        c.provider, c.account_id
                    )))
                } else {
                    Err(sdk_err("dynamodb", "connections.register")(e))
                }
            }
        }
    }

    async fn get(&self, tenant: &TenantId, id: &ConnectionId) -> StoreResult<Option<Connection>> {
        self.get_item("connections.get", tenant_pk(tenant), &format!("CONN#{id}"))
            .await?
            .map(|i| body(&i, "connection"))
            .transpose()
    }

    async fn list_for_tenant(&self, tenant: &TenantId) -> StoreResult<Vec<Connection>> {
        let items = self
            .query_all(
                "connections.list_for_tenant",
                None,
                "pk = :pk AND begins_with(sk, :conn)",
                vec![(":pk", s(tenant_pk(tenant))), (":conn", s("CONN#"))],
            )
            .await?;
        items.iter().map(|i| body(i, "connection")).collect()
    }

    async fn list_all(&self) -> StoreResult<Vec<Connection>> {
        let items = self
            .query_all(
                "connections.list_all",
                Some(GSI1),
                "gsi1pk = :pk",
                vec![(":pk", s("CONNS"))],
            )
            .await?;
        items.iter().map(|i| body(i, "connection")).collect()
    }

    async fn find_by_account(
        &self,
        provider: Provider,
        account: &ProviderAccountId,
    ) -> StoreResult<Option<Connection>> {
        self.get_item(
            "connections.find_by_account",
            account_pk(provider, account),
            "ACCOUNT",
        )
        .await?
        .map(|i| body(&i, "connection"))
        .transpose()
    }
}

// ---------------------------------------------------------------- rate budgets

fn budget_pk(key: &str) -> String {
    format!("RATE#{key}")
}

/// Attempts at a budget update before giving up (fifty workers on one budget
/// each lose a few races).
const BUDGET_RETRIES: u32 = 64;

impl DynamoStore {
    async fn with_budget<T>(
        &self,
        key: &str,
        mut f: impl FnMut(&mut Budget, i64) -> T + Send,
    ) -> StoreResult<T>
    where
        T: Send,
    {
        for attempt in 0..BUDGET_RETRIES {
            let item = self
                .get_item("budgets.read", budget_pk(key), "RATE")
                .await?;
            let (mut budget, rev): (Budget, Option<u64>) = match &item {
                Some(i) => (
                    serde_json::from_str(get_s(i, "body")?)
                        .map_err(|e| StoreError::corrupt("rate budget", e))?,
                    Some(get_n(i, "rev")?),
                ),
                None => (Budget::default(), None),
            };
            let before = budget.clone();
            let out = f(&mut budget, millis(self.clock.now()));
            if budget == before {
                return Ok(out);
            }
            let mut req = self
                .client
                .put_item()
                .table_name(&self.state_table)
                .item("pk", s(budget_pk(key)))
                .item("sk", s("RATE"))
                .item("body", s(to_json("rate budget", &budget)?))
                .item("rev", n(rev.map_or(1, |r| r + 1)));
            req = match rev {
                None => req.condition_expression("attribute_not_exists(pk)"),
                Some(r) => req
                    .condition_expression("rev = :rev")
                    .expression_attribute_values(":rev", n(r)),
            };
            match req.send().await {
                Ok(_) => return Ok(out),
                Err(e) if is_condition_failed(&e) => {
                    // Lost a race: back off a little, with jitter, and re-read.
                    let jitter = rand::random_range(0..=(5 + 5 * u64::from(attempt.min(10))));
                    tokio::time::sleep(std::time::Duration::from_millis(jitter)).await;
                }
                Err(e) => return Err(sdk_err("dynamodb", "budgets.write")(e)),
            }
        }
        Err(StoreError::Conflict(format!(
            "rate budget {key}: too many concurrent writers"
        )))
    }
}

#[async_trait]
impl RateLimitStore for DynamoStore {
    async fn acquire(&self, key: &str, limits: &[Limit]) -> StoreResult<Acquire> {
        self.with_budget(key, |b, now| b.acquire(limits, now)).await
    }

    async fn block_until(&self, key: &str, until: Timestamp) -> StoreResult<()> {
        let until = millis(until);
        self.with_budget(key, |b, _| {
            b.blocked_until_ms = b.blocked_until_ms.max(until);
        })
        .await
    }

    async fn take_slot(
        &self,
        key: &str,
        slot: &str,
        max: u32,
        lease: std::time::Duration,
    ) -> StoreResult<bool> {
        let lease_ms = i64::try_from(lease.as_millis()).unwrap_or(i64::MAX);
        self.with_budget(key, |b, now| {
            b.take_slot(slot, max, now.saturating_add(lease_ms), now)
        })
        .await
    }

    async fn release_slot(&self, key: &str, slot: &str) -> StoreResult<()> {
        self.with_budget(key, |b, _| {
            b.slots.remove(slot);
        })
        .await
    }
}

// ---------------------------------------------------------------- call log

fn calls_pk(account: &str) -> String {
    format!("CALLS#{account}")
}

/// Call records expire (DynamoDB TTL) a week after they were made.
const CALL_RETENTION_SECONDS: i64 = 7 * 24 * 3600;

#[async_trait]
impl CallLog for DynamoStore {
    async fn record(&self, call: &CallRecord) -> StoreResult<()> {
        self.client
            .put_item()
            .table_name(&self.state_table)
            .item("pk", s(calls_pk(&call.account)))
            .item(
                "sk",
                s(format!(
                    "{:015}#{}",
                    millis(call.at),
                    uuid::Uuid::new_v4().simple()
                )),
            )
            .item("body", s(to_json("call", call)?))
            .item(
                TTL_ATTRIBUTE,
                n(call.at.as_second() + CALL_RETENTION_SECONDS),
            )
            .send()
            .await
            .map_err(sdk_err("dynamodb", "calls.record"))?;
        Ok(())
    }

    async fn since(&self, account: &str, since: Timestamp) -> StoreResult<Vec<CallRecord>> {
        let items = self
            .query_all(
                "calls.since",
                None,
                "pk = :pk AND sk >= :since",
                vec![
                    (":pk", s(calls_pk(account))),
                    (":since", s(format!("{:015}", millis(since)))),
                ],
            )
            .await?;
        items.iter().map(|i| body(i, "call")).collect()
    }
}

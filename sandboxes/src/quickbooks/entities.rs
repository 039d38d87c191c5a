//! The QuickBooks company file of one realm: seeded lists (accounts, items,
//! customers, vendors) and the transactions the hub writes (SalesReceipt,
//! Purchase), with the validation faults QuickBooks answers.
//!
//! Rules applied on create and update (providers.md §3.2 and the fixtures):
//! - `AccountRef`, `DepositToAccountRef`, `ItemRef`, `CustomerRef` must name
//!   an existing entity, else `ValidationFault` 610 "Object Not Found"
//!   (the message of `batch_response.json`).
//! - An update must carry `Id` and the current `SyncToken`, else 5010
//!   "Stale Object Error"; success bumps `SyncToken`. `"sparse": true`
//!   replaces only the fields sent; otherwise the entity is replaced.
//! - Amounts are decimals with at most two places (sandbox strictness, to
//!   catch float money: code 2170, UNVERIFIED), and a sales line with `Qty`
//!   and `UnitPrice` must have `Amount = Qty × UnitPrice` (6070, as QuickBooks
//!   reports it; from memory, UNVERIFIED).
//! - The response entity is filled in as in `salesreceipt_create_response.json`
//!   / `purchase_create_response.json`: `Id`, `SyncToken`, `domain`, `sparse`,
//!   `MetaData`, line `Id`/`LineNum`, a `SubTotalLineDetail` line (sales),
//!   `TotalAmt`, reference names.

use crate::common::money::{decimal_cents, decimal_json, json_decimal, round_cents};
use crate::common::time;
use http::StatusCode;
use jiff::Timestamp;
use jiff::civil::Date;
use jiff::tz::TimeZone;
use rust_decimal::Decimal;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

/// The entities the sandbox knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum QboEntity {
    /// Chart of accounts.
    Account,
    /// Products and services.
    Item,
    /// Customers.
    Customer,
    /// Vendors.
    Vendor,
    /// Sales receipts (written by the hub).
    SalesReceipt,
    /// Purchases / expenses (written by the hub).
    Purchase,
    /// The company.
    CompanyInfo,
}

impl QboEntity {
    /// Every entity.
    pub const ALL: [QboEntity; 7] = [
        QboEntity::Account,
        QboEntity::Item,
        QboEntity::Customer,
        QboEntity::Vendor,
        QboEntity::SalesReceipt,
        QboEntity::Purchase,
        QboEntity::CompanyInfo,
    ];

    /// The entity's name in JSON and queries.
    pub fn name(self) -> &'static str {
        match self {
            QboEntity::Account => "Account",
            QboEntity::Item => "Item",
            QboEntity::Customer => "Customer",
            QboEntity::Vendor => "Vendor",
            QboEntity::SalesReceipt => "SalesReceipt",
            QboEntity::Purchase => "Purchase",
            QboEntity::CompanyInfo => "CompanyInfo",
        }
    }

    /// The entity by name, any letter case.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|e| e.name().eq_ignore_ascii_case(name))
    }

    /// Whether the hub may create and update it here.
    pub fn writable(self) -> bool {
        matches!(self, QboEntity::SalesReceipt | QboEntity::Purchase)
    }
}

/// One `Error` of a `Fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct FaultError {
    pub message: String,
    pub detail: String,
    pub code: String,
}

/// A QuickBooks `Fault`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Fault {
    pub status: StatusCode,
    pub kind: String,
    pub errors: Vec<FaultError>,
}

impl Fault {
    pub(crate) fn new(
        status: StatusCode,
        kind: &str,
        code: &str,
        message: &str,
        detail: &str,
    ) -> Self {
        Self {
            status,
            kind: kind.into(),
            errors: vec![FaultError {
                message: message.into(),
                detail: detail.into(),
                code: code.into(),
            }],
        }
    }

    pub(crate) fn validation(code: &str, message: &str, detail: &str) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "ValidationFault",
            code,
            message,
            detail,
        )
    }

    pub(crate) fn not_found(what: &str) -> Self {
        Self::validation(
            "610",
            "Object Not Found",
            &format!(
                "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees. ({what})"
            ),
        )
    }

    pub(crate) fn missing(param: &str) -> Self {
        Self::validation(
            "2020",
            "Required param missing, need to supply the required value for the API",
            &format!("Required parameter {param} is missing in the request"),
        )
    }

    pub(crate) fn stale() -> Self {
        Self::validation(
            "5010",
            "Stale Object Error",
            "Stale Object Error : You and root were working on this at the same time. root finished before you did, so your work was not saved.",
        )
    }

    /// `{"Error":[...],"type":...}`, as inside batch items.
    pub(crate) fn body(&self) -> Value {
        let errors: Vec<Value> = self
            .errors
            .iter()
            .map(|e| json!({"Message": e.message, "Detail": e.detail, "code": e.code, "element": ""}))
            .collect();
        json!({"Error": errors, "type": self.kind})
    }

    /// The whole response body (as `fault_template.json`).
    pub(crate) fn response(&self, time: String) -> Value {
        json!({"Fault": self.body(), "time": time})
    }
}

/// One realm's company file.
#[derive(Debug)]
pub(crate) struct Realm {
    pub tz: TimeZone,
    pub entities: BTreeMap<QboEntity, BTreeMap<u64, Value>>,
    pub next_id: u64,
    pub next_doc: u64,
    /// `requestid` → the original answer.
    pub replays: HashMap<String, (StatusCode, Value)>,
    /// Entities created by the hub, in order (kind, id).
    pub created: Vec<(QboEntity, u64)>,
}

fn meta(now: Timestamp, tz: &TimeZone) -> Value {
    let t = time::qbo(now, tz);
    json!({"CreateTime": t, "LastUpdatedTime": t})
}

fn account(
    id: u64,
    name: &str,
    account_type: &str,
    sub_type: &str,
    classification: &str,
    created: &Value,
) -> Value {
    json!({
        "FullyQualifiedName": name,
        "domain": "QBO",
        "Name": name,
        "Classification": classification,
        "AccountSubType": sub_type,
        "CurrencyRef": {"name": "United States Dollar", "value": "USD"},
        "CurrentBalanceWithSubAccounts": 0,
        "sparse": false,
        "MetaData": created,
        "AccountType": account_type,
        "CurrentBalance": 0,
        "Active": true,
        "SyncToken": "0",
        "Id": id.to_string(),
        "SubAccount": false,
    })
}

/// The seeded chart of accounts: (Id, Name, AccountType, AccountSubType,
/// Classification). Ids 4, 13, 35, 42 match the published examples.
pub const ACCOUNTS: &[(u64, &str, &str, &str, &str)] = &[
    (1, "Services", "Income", "ServiceFeeIncome", "Revenue"),
    (
        4,
        "Undeposited Funds",
        "Other Current Asset",
        "UndepositedFunds",
        "Asset",
    ),
    (
        7,
        "Advertising",
        "Expense",
        "AdvertisingPromotional",
        "Expense",
    ),
    (
        13,
        "Meals and Entertainment",
        "Expense",
        "EntertainmentMeals",
        "Expense",
    ),
    (
        33,
        "Accounts Payable (A/P)",
        "Accounts Payable",
        "AccountsPayable",
        "Liability",
    ),
    (35, "Checking", "Bank", "Checking", "Asset"),
    (36, "Savings", "Bank", "Savings", "Asset"),
    (42, "Visa", "Credit Card", "CreditCard", "Liability"),
    (
        79,
        "Sales of Product Income",
        "Income",
        "SalesOfProductIncome",
        "Revenue",
    ),
    (
        80,
        "Cost of Goods Sold",
        "Cost of Goods Sold",
        "SuppliesMaterialsCogs",
        "Expense",
    ),
    (
        90,
        "Tips Payable",
        "Other Current Liability",
        "OtherCurrentLiabilities",
        "Liability",
    ),
    (
        91,
        "Sales Tax Payable",
        "Other Current Liability",
        "SalesTaxPayable",
        "Liability",
    ),
    (
        92,
        "Discounts given",
        "Income",
        "DiscountsRefundsGiven",
        "Revenue",
    ),
];

/// The seeded items: (Id, Name, income account Id). Item 10 matches the
/// published SalesReceipt example.
pub const ITEMS: &[(u64, &str, u64)] = &[
    (1, "Services", 1),
    (10, "Pest Control", 1),
    (20, "Food Sales", 79),
    (21, "Beverage Sales", 79),
    (22, "Gratuity", 90),
    (23, "Sales Tax Collected", 91),
];

impl Realm {
    pub(crate) fn seeded(tz: TimeZone, now: Timestamp) -> Self {
        let created = meta(now, &tz);
        let mut entities: BTreeMap<QboEntity, BTreeMap<u64, Value>> = BTreeMap::new();
        let accounts = entities.entry(QboEntity::Account).or_default();
        for (aid, name, at, st, class) in ACCOUNTS {
            accounts.insert(*aid, account(*aid, name, at, st, class, &created));
        }
        let items = entities.entry(QboEntity::Item).or_default();
        for (iid, name, income) in ITEMS {
            let income_name = ACCOUNTS
                .iter()
                .find(|a| a.0 == *income)
                .map(|a| a.1)
                .unwrap_or_default();
            items.insert(
                *iid,
                json!({
                    "Name": name, "FullyQualifiedName": name, "Active": true, "Type": "Service",
                    "IncomeAccountRef": {"value": income.to_string(), "name": income_name},
                    "Taxable": false, "UnitPrice": 0, "domain": "QBO", "sparse": false,
                    "Id": iid.to_string(), "SyncToken": "0", "MetaData": created,
                }),
            );
        }
        let customers = entities.entry(QboEntity::Customer).or_default();
        for (cid, name) in [(1u64, "Walk-in Customer"), (6, "Dylan Sollfrank")] {
            customers.insert(
                cid,
                json!({"DisplayName": name, "FullyQualifiedName": name, "Active": true, "domain": "QBO",
                    "sparse": false, "Id": cid.to_string(), "SyncToken": "0", "MetaData": created}),
            );
        }
        let vendors = entities.entry(QboEntity::Vendor).or_default();
        for (vid, name) in [(56u64, "Sysco"), (57, "Restaurant Depot")] {
            vendors.insert(
                vid,
                json!({"DisplayName": name, "Active": true, "domain": "QBO", "sparse": false,
                    "Id": vid.to_string(), "SyncToken": "0", "MetaData": created}),
            );
        }
        entities.entry(QboEntity::CompanyInfo).or_default().insert(
            1,
            json!({"CompanyName": "Sandbox Restaurant Group", "LegalName": "Sandbox Restaurant Group LLC",
                "Country": "US", "domain": "QBO", "sparse": false, "Id": "1", "SyncToken": "0",
                "MetaData": created}),
        );
        entities.entry(QboEntity::SalesReceipt).or_default();
        entities.entry(QboEntity::Purchase).or_default();
        Self {
            tz,
            entities,
            next_id: 1000,
            next_doc: 1001,
            replays: HashMap::new(),
            created: Vec::new(),
        }
    }

    pub(crate) fn get(&self, kind: QboEntity, id: &str) -> Option<&Value> {
        let id: u64 = id.trim().parse().ok()?;
        self.entities.get(&kind)?.get(&id)
    }

    pub(crate) fn all(&self, kind: QboEntity) -> Vec<Value> {
        self.entities
            .get(&kind)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default()
    }

    pub(crate) fn now_time(&self) -> String {
        time::qbo_ms(Timestamp::now(), &self.tz)
    }

    /// Fills `{"value": id}` with `name` from the referenced entity, or 610.
    fn resolve_ref(&self, r: &mut Value, kind: QboEntity, field: &str) -> Result<(), Fault> {
        let id = ref_value(r).ok_or_else(|| Fault::missing(&format!("{field}.value")))?;
        let target = self
            .get(kind, &id)
            .ok_or_else(|| Fault::not_found(&format!("{field} {} {id}", kind.name())))?;
        let name = target
            .get("Name")
            .or_else(|| target.get("DisplayName"))
            .cloned()
            .unwrap_or(Value::Null);
        if let Some(obj) = r.as_object_mut() {
            obj.insert("value".into(), Value::String(id));
            obj.entry("name").or_insert(name);
        }
        Ok(())
    }

    /// Creates, updates (with `Id`) or, with `operation=delete`, deletes.
    /// Returns the answer's entity JSON and whether an entity was created.
    pub(crate) fn write(
        &mut self,
        kind: QboEntity,
        input: &Value,
        operation: Option<&str>,
    ) -> Result<(Value, bool), Fault> {
        if !input.is_object() {
            return Err(Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                "The request body must be a JSON object",
            ));
        }
        let now = Timestamp::now();
        match operation {
            Some(op) if op.eq_ignore_ascii_case("delete") => {
                return self.delete(kind, input).map(|v| (v, false));
            }
            Some(op)
                if !op.eq_ignore_ascii_case("update") && !op.eq_ignore_ascii_case("create") =>
            {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!("Unsupported operation {op}"),
                ));
            }
            _ => {}
        }
        let id = input.get("Id").and_then(id_string);
        match id {
            None => {
                let id = self.next_id;
                let entity = self.build(kind, input, None, id, now)?;
                self.next_id += 1;
                self.entities
                    .entry(kind)
                    .or_default()
                    .insert(id, entity.clone());
                self.created.push((kind, id));
                Ok((entity, true))
            }
            Some(id) => {
                let current = self
                    .get(kind, &id)
                    .cloned()
                    .ok_or_else(|| Fault::not_found(&format!("{} Id {id}", kind.name())))?;
                let sync = input
                    .get("SyncToken")
                    .and_then(id_string)
                    .ok_or_else(|| Fault::missing("SyncToken"))?;
                if Some(sync.as_str()) != current.get("SyncToken").and_then(Value::as_str) {
                    return Err(Fault::stale());
                }
                let sparse = input
                    .get("sparse")
                    .and_then(Value::as_bool)
                    .unwrap_or(false);
                let merged = if sparse {
                    let mut m = current.clone();
                    if let (Some(target), Some(src)) = (m.as_object_mut(), input.as_object()) {
                        for (k, v) in src {
                            target.insert(k.clone(), v.clone());
                        }
                    }
                    m
                } else {
                    input.clone()
                };
                let numeric: u64 = id.parse().unwrap_or_default();
                let entity = self.build(kind, &merged, Some(&current), numeric, now)?;
                self.entities
                    .entry(kind)
                    .or_default()
                    .insert(numeric, entity.clone());
                Ok((entity, false))
            }
        }
    }

    fn delete(&mut self, kind: QboEntity, input: &Value) -> Result<Value, Fault> {
        let id = input
            .get("Id")
            .and_then(id_string)
            .ok_or_else(|| Fault::missing("Id"))?;
        let current = self
            .get(kind, &id)
            .cloned()
            .ok_or_else(|| Fault::not_found(&format!("{} Id {id}", kind.name())))?;
        let sync = input
            .get("SyncToken")
            .and_then(id_string)
            .ok_or_else(|| Fault::missing("SyncToken"))?;
        if Some(sync.as_str()) != current.get("SyncToken").and_then(Value::as_str) {
            return Err(Fault::stale());
        }
        if let Ok(n) = id.parse::<u64>()
            && let Some(m) = self.entities.get_mut(&kind)
        {
            m.remove(&n);
        }
        Ok(json!({"domain": "QBO", "status": "Deleted", "Id": id}))
    }

    /// Validates `input` and fills in what QuickBooks adds.
    fn build(
        &mut self,
        kind: QboEntity,
        input: &Value,
        current: Option<&Value>,
        id: u64,
        now: Timestamp,
    ) -> Result<Value, Fault> {
        let mut e: Map<String, Value> = input.as_object().cloned().unwrap_or_default();
        e.remove("sparse");
        let lines = e.get("Line").cloned().unwrap_or(Value::Null);
        let (lines, lines_total) = match kind {
            QboEntity::SalesReceipt => self.sales_lines(&lines)?,
            QboEntity::Purchase => self.expense_lines(&lines)?,
            _ => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!("{} cannot be written in the sandbox", kind.name()),
                ));
            }
        };
        e.insert("Line".into(), Value::Array(lines));
        let tax = match e.get("TxnTaxDetail").and_then(|t| t.get("TotalTax")) {
            None => Decimal::ZERO,
            Some(v) => money(v, "TxnTaxDetail.TotalTax")?,
        };
        e.insert(
            "TxnTaxDetail".into(),
            json!({"TotalTax": decimal_json(tax)}),
        );
        let total = lines_total + tax;
        e.insert("TotalAmt".into(), decimal_json(total));
        match e.get("TxnDate").and_then(Value::as_str) {
            Some(d) if d.parse::<Date>().is_ok() => {}
            Some(d) => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!("TxnDate {d} is not a yyyy-MM-dd date"),
                ));
            }
            None => {
                let today = self.tz.to_datetime(now).date().to_string();
                e.insert("TxnDate".into(), json!(today));
            }
        }
        if let Some(r) = e.get_mut("CustomerRef") {
            self.resolve_ref(r, QboEntity::Customer, "CustomerRef")?;
        }
        match kind {
            QboEntity::SalesReceipt => {
                let deposit = e
                    .entry("DepositToAccountRef")
                    .or_insert_with(|| json!({"value": "4"}));
                self.resolve_ref(deposit, QboEntity::Account, "DepositToAccountRef")?;
                e.insert("Balance".into(), json!(0));
                e.entry("PrintStatus").or_insert(json!("NotSet"));
                e.entry("EmailStatus").or_insert(json!("NotSet"));
                e.entry("ApplyTaxAfterDiscount").or_insert(json!(false));
            }
            QboEntity::Purchase => {
                match e.get("PaymentType").and_then(Value::as_str) {
                    None => return Err(Fault::missing("PaymentType")),
                    Some("Cash" | "Check" | "CreditCard") => {}
                    Some(other) => {
                        return Err(Fault::validation(
                            "2010",
                            "Request has invalid or unsupported property",
                            &format!("PaymentType {other} is not one of Cash, Check, CreditCard"),
                        ));
                    }
                }
                let account = e
                    .get_mut("AccountRef")
                    .ok_or_else(|| Fault::missing("AccountRef"))?;
                self.resolve_ref(account, QboEntity::Account, "AccountRef")?;
                e.entry("Credit").or_insert(json!(false));
            }
            _ => {}
        }
        if !e.contains_key("DocNumber") && kind == QboEntity::SalesReceipt {
            let doc = current
                .and_then(|c| c.get("DocNumber").cloned())
                .unwrap_or_else(|| {
                    let n = self.next_doc;
                    self.next_doc += 1;
                    json!(n.to_string())
                });
            e.insert("DocNumber".into(), doc);
        }
        let sync = current
            .and_then(|c| c.get("SyncToken"))
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .map(|n| n + 1)
            .unwrap_or(0);
        let created = current
            .and_then(|c| c.get("MetaData"))
            .and_then(|m| m.get("CreateTime"))
            .cloned()
            .unwrap_or_else(|| json!(time::qbo(now, &self.tz)));
        e.insert(
            "CurrencyRef".into(),
            json!({"value": "USD", "name": "United States Dollar"}),
        );
        e.entry("CustomField").or_insert(json!([]));
        e.insert("domain".into(), json!("QBO"));
        e.insert("sparse".into(), json!(false));
        e.insert("Id".into(), json!(id.to_string()));
        e.insert("SyncToken".into(), json!(sync.to_string()));
        e.insert(
            "MetaData".into(),
            json!({"CreateTime": created, "LastUpdatedTime": time::qbo(now, &self.tz)}),
        );
        Ok(Value::Object(e))
    }

    fn lines_array(lines: &Value) -> Result<Vec<Value>, Fault> {
        let arr = lines.as_array().ok_or_else(|| Fault::missing("Line"))?;
        let kept: Vec<Value> = arr
            .iter()
            .filter(|l| l.get("DetailType").and_then(Value::as_str) != Some("SubTotalLineDetail"))
            .cloned()
            .collect();
        if kept.is_empty() {
            return Err(Fault::missing("Line"));
        }
        Ok(kept)
    }

    /// Checks `Amount = Qty × UnitPrice` when both are given.
    fn check_qty_price(detail: &Value, amount: Decimal) -> Result<(), Fault> {
        if let (Some(q), Some(p)) = (
            detail.get("Qty").and_then(json_decimal),
            detail.get("UnitPrice").and_then(json_decimal),
        ) && round_cents(q * p) != amount
        {
            return Err(Fault::validation(
                "6070",
                "Amount is not equal to UnitPrice * Qty",
                &format!("Amount is not equal to UnitPrice * Qty. Supplied value:{amount}"),
            ));
        }
        Ok(())
    }

    fn sales_lines(&self, lines: &Value) -> Result<(Vec<Value>, Decimal), Fault> {
        let mut out = Vec::new();
        let mut subtotal = Decimal::ZERO;
        let mut discounts = Decimal::ZERO;
        for (n, mut line) in Self::lines_array(lines)?.into_iter().enumerate() {
            let detail_type = line
                .get("DetailType")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::missing("Line.DetailType"))?
                .to_string();
            match detail_type.as_str() {
                "SalesItemLineDetail" => {
                    let amount = money(line.get("Amount").unwrap_or(&Value::Null), "Line.Amount")?;
                    let detail = line
                        .get_mut("SalesItemLineDetail")
                        .ok_or_else(|| Fault::missing("Line.SalesItemLineDetail"))?;
                    Self::check_qty_price(detail, amount)?;
                    let item = detail
                        .as_object_mut()
                        .ok_or_else(|| Fault::missing("Line.SalesItemLineDetail"))?
                        .entry("ItemRef")
                        .or_insert_with(|| json!({"value": "1"}));
                    self.resolve_ref(item, QboEntity::Item, "ItemRef")?;
                    subtotal += amount;
                }
                "DiscountLineDetail" => {
                    discounts += money(line.get("Amount").unwrap_or(&Value::Null), "Line.Amount")?;
                }
                "DescriptionOnly" => {}
                other => {
                    return Err(Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        &format!(
                            "Line DetailType {other} is not supported on SalesReceipt in the sandbox"
                        ),
                    ));
                }
            }
            if let Some(obj) = line.as_object_mut() {
                obj.insert("Id".into(), json!((n + 1).to_string()));
                obj.insert("LineNum".into(), json!(n + 1));
            }
            out.push(line);
        }
        out.push(json!({"DetailType": "SubTotalLineDetail", "Amount": decimal_json(subtotal), "SubTotalLineDetail": {}}));
        Ok((out, subtotal - discounts))
    }

    fn expense_lines(&self, lines: &Value) -> Result<(Vec<Value>, Decimal), Fault> {
        let mut out = Vec::new();
        let mut total = Decimal::ZERO;
        for (n, mut line) in Self::lines_array(lines)?.into_iter().enumerate() {
            let detail_type = line
                .get("DetailType")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::missing("Line.DetailType"))?
                .to_string();
            let amount = money(line.get("Amount").unwrap_or(&Value::Null), "Line.Amount")?;
            match detail_type.as_str() {
                "AccountBasedExpenseLineDetail" => {
                    let detail = line
                        .get_mut("AccountBasedExpenseLineDetail")
                        .and_then(Value::as_object_mut)
                        .ok_or_else(|| Fault::missing("Line.AccountBasedExpenseLineDetail"))?;
                    let account = detail.get_mut("AccountRef").ok_or_else(|| {
                        Fault::missing("Line.AccountBasedExpenseLineDetail.AccountRef")
                    })?;
                    self.resolve_ref(account, QboEntity::Account, "AccountRef")?;
                    detail
                        .entry("TaxCodeRef")
                        .or_insert(json!({"value": "NON"}));
                    detail
                        .entry("BillableStatus")
                        .or_insert(json!("NotBillable"));
                }
                "ItemBasedExpenseLineDetail" => {
                    let detail = line
                        .get_mut("ItemBasedExpenseLineDetail")
                        .ok_or_else(|| Fault::missing("Line.ItemBasedExpenseLineDetail"))?;
                    Self::check_qty_price(detail, amount)?;
                    let item = detail
                        .get_mut("ItemRef")
                        .ok_or_else(|| Fault::missing("Line.ItemBasedExpenseLineDetail.ItemRef"))?;
                    self.resolve_ref(item, QboEntity::Item, "ItemRef")?;
                }
                other => {
                    return Err(Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        &format!(
                            "Line DetailType {other} is not supported on Purchase in the sandbox"
                        ),
                    ));
                }
            }
            total += amount;
            if let Some(obj) = line.as_object_mut() {
                obj.insert("Id".into(), json!((n + 1).to_string()));
            }
            out.push(line);
        }
        Ok((out, total))
    }
}

/// A reference's `value` as a string (QuickBooks sends strings; numbers are
/// tolerated).
fn ref_value(r: &Value) -> Option<String> {
    r.get("value").and_then(id_string)
}

fn id_string(v: &Value) -> Option<String> {
    match v {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_string()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// A money field: a number (or numeric string) with at most two places.
fn money(v: &Value, field: &str) -> Result<Decimal, Fault> {
    let d = json_decimal(v).ok_or_else(|| Fault::missing(field))?;
    if decimal_cents(d).is_none() {
        return Err(Fault::validation(
            "2170",
            "Invalid Amount",
            &format!("{field} {d} has more than two decimal places"),
        ));
    }
    Ok(d)
}

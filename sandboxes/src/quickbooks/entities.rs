//! The QuickBooks company file of one realm: seeded lists (accounts, items,
//! customers, vendors, tax rates, departments, classes), its Preferences,
//! and the transactions the hub writes (SalesReceipt, RefundReceipt,
//! Purchase, JournalEntry), with the validation faults QuickBooks answers.
//!
//! Rules applied on create and update (providers.md §3.2 and the fixtures):
//! - `AccountRef`, `DepositToAccountRef`, `DepositToAccountRef` of a RefundReceipt (required
//!   on a RefundReceipt), `DiscountAccountRef`, `ItemRef`, `TaxRateRef`,
//!   `CustomerRef` must name an existing entity, else `ValidationFault` 610 "Object Not Found"
//!   (the message of `batch_response.json`).
//! - An update must carry `Id` and the current `SyncToken`, else 5010
//!   "Stale Object Error"; success bumps `SyncToken`. `"sparse": true`
//!   replaces only the fields sent; otherwise the entity is replaced.
//! - A transaction dated on or before `BookCloseDate` cannot be created,
//!   changed, deleted or moved there (6210, `Fault::period_closed`).
//! - JournalEntry lines: see `Realm::journal_lines`; unbalanced is 2300
//!   (`Fault::unbalanced`).
//! - Amounts are decimals with at most two places (sandbox strictness, to
//!   catch float money: code 2170, UNVERIFIED), and a sales line with `Qty`
//!   and `UnitPrice` must have `Amount = Qty × UnitPrice` (6070, as QuickBooks
//!   reports it; from memory, UNVERIFIED). Line amounts may be negative
//!   (Qty 1, negative UnitPrice); a sales form's `TotalAmt` may be zero but
//!   not negative (6000, UNVERIFIED).
//! - Tax: `TxnTaxDetail.TaxLine[]` (`TaxLineDetail.TaxRateRef`, `Amount`)
//!   is stored and `TotalTax` is their sum (a different `TotalTax` sent
//!   with them is 2010, sandbox strictness); without tax lines `TotalTax`
//!   is taken as sent. Tax is not computed from the rates.
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
    /// Refund receipts (written by the hub).
    RefundReceipt,
    /// Purchases / expenses (written by the hub).
    Purchase,
    /// The company.
    CompanyInfo,
    /// Sales tax rates (seeded, read-only).
    TaxRate,
    /// Journal entries (written by the hub: the daily sales journal).
    JournalEntry,
    /// Departments, which QuickBooks shows as "Locations" (seeded,
    /// read-only over the API; [`crate::quickbooks::QuickBooksSandbox::add_department`]).
    Department,
    /// Classes (seeded, read-only over the API;
    /// [`crate::quickbooks::QuickBooksSandbox::add_class`]).
    Class,
    /// The company's preferences: one entity, read at `GET preferences`
    /// (no Id in the path) or by query.
    Preferences,
}

impl QboEntity {
    /// Every entity.
    pub const ALL: [QboEntity; 13] = [
        QboEntity::Account,
        QboEntity::Item,
        QboEntity::Customer,
        QboEntity::Vendor,
        QboEntity::SalesReceipt,
        QboEntity::RefundReceipt,
        QboEntity::Purchase,
        QboEntity::CompanyInfo,
        QboEntity::TaxRate,
        QboEntity::JournalEntry,
        QboEntity::Department,
        QboEntity::Class,
        QboEntity::Preferences,
    ];

    /// The entity's name in JSON and queries.
    pub fn name(self) -> &'static str {
        match self {
            QboEntity::Account => "Account",
            QboEntity::Item => "Item",
            QboEntity::Customer => "Customer",
            QboEntity::Vendor => "Vendor",
            QboEntity::SalesReceipt => "SalesReceipt",
            QboEntity::RefundReceipt => "RefundReceipt",
            QboEntity::Purchase => "Purchase",
            QboEntity::CompanyInfo => "CompanyInfo",
            QboEntity::TaxRate => "TaxRate",
            QboEntity::JournalEntry => "JournalEntry",
            QboEntity::Department => "Department",
            QboEntity::Class => "Class",
            QboEntity::Preferences => "Preferences",
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
        matches!(
            self,
            QboEntity::SalesReceipt
                | QboEntity::RefundReceipt
                | QboEntity::Purchase
                | QboEntity::JournalEntry
        )
    }

    /// Whether it is read at `GET <entity>/{id}` (every entity but
    /// Preferences, which has no Id in its path).
    pub fn read_by_id(self) -> bool {
        self != QboEntity::Preferences
    }

    /// Whether it is a transaction with a `TxnDate` that the closing date
    /// (`BookCloseDate`) protects.
    pub fn transaction(self) -> bool {
        self.writable()
    }

    /// Whether it is a sales form (SalesReceipt, RefundReceipt): the same
    /// lines, tax and validation.
    fn sales_form(self) -> bool {
        matches!(self, QboEntity::SalesReceipt | QboEntity::RefundReceipt)
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

    /// A create, update or delete of a transaction dated on or before the
    /// company's closing date (`Preferences.AccountingInfoPrefs.BookCloseDate`).
    ///
    /// books.md names the error "Account Period Closed" with its code
    /// UNVERIFIED; providers.md has nothing on it. Chosen here: code 6210,
    /// which Intuit's own blog "Top QuickBooks Online API Errors and How to
    /// Handle Them" (developer.intuit.com, 2017-06-08, item 11) gives to
    /// "Account Period Closed", with the Message and Detail as integrators
    /// quote QuickBooks' answer ("Account Period Closed, Cannot Update
    /// Through Services API"; "The account period has closed and the account
    /// books cannot be updated through the QBO Services API. Please use the
    /// QBO website to make these changes.": Recurly, AutoEntry, Synder,
    /// LeanLaw help pages; SECONDARY). Intuit's error-code table ("Review
    /// QuickBooks Online Accounting API Error Codes") lists 6200 "Account
    /// Period Closed Error" and 6210 "Account Period Closed Required Password
    /// Error": a client should treat both as a closed period. The sandbox
    /// appends the dates to the Detail.
    pub(crate) fn period_closed(date: Date, close: Date) -> Self {
        Self::validation(
            "6210",
            "Account Period Closed, Cannot Update Through Services API",
            &format!(
                "The account period has closed and the account books cannot be updated through the QBO Services API. Please use the QBO website to make these changes. (TxnDate {date} is on or before the closing date {close}.)"
            ),
        )
    }

    /// A journal entry whose debits and credits differ. Code 2300 with the
    /// Message and Detail of Intuit's error-code table ("Review QuickBooks
    /// Online Accounting API Error Codes", developer.intuit.com, Validation
    /// Fault Error Codes: "2300 | Amount on debits not equal to credits | A
    /// journal entry you created or updated unbalanced an account. Balance
    /// the debits and credits for the account."); no 6000-series code or
    /// "Debits and credits must be equal" text was found in books.md,
    /// providers.md, the XSDs or Intuit's pages. The sandbox appends the
    /// totals.
    pub(crate) fn unbalanced(debits: Decimal, credits: Decimal) -> Self {
        Self::validation(
            "2300",
            "Amount on debits not equal to credits",
            &format!(
                "A journal entry you created or updated unbalanced an account. Balance the debits and credits for the account. (Debits {debits:.2}, Credits {credits:.2}.)"
            ),
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

/// One posting of a realm's books: a transaction's effect on one account.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Posting {
    pub date: Date,
    pub account: String,
    /// Debit positive.
    pub debit: Decimal,
    /// The Department (location) Id, if the line or transaction names one.
    pub department: Option<String>,
    /// The Class Id, if the line names one.
    pub class: Option<String>,
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
///
/// The restaurant roles (books.md, "The day's journal"), one account each:
/// 79 food sales, 93 beverage sales, 94 service charges (not gratuity),
/// 91 sales tax payable (the liability of both seeded [`TAX_RATES`]),
/// 103 liquor tax payable, 90 tips payable, 95 gratuity payable,
/// 96 gift card liability, 92 discounts and comps, 97 refunds given,
/// 98 card clearing, 99 cash clearing, 100 house account clearing,
/// 101 delivery app clearing, 102 merchant (processing) fees; 4 undeposited
/// funds and 35 checking for deposits.
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
    (
        93,
        "Beverage Sales",
        "Income",
        "SalesOfProductIncome",
        "Revenue",
    ),
    (
        94,
        "Service Charge Income",
        "Income",
        "ServiceFeeIncome",
        "Revenue",
    ),
    (
        95,
        "Gratuity Payable",
        "Other Current Liability",
        "OtherCurrentLiabilities",
        "Liability",
    ),
    (
        96,
        "Gift Card Liability",
        "Other Current Liability",
        "OtherCurrentLiabilities",
        "Liability",
    ),
    (
        97,
        "Refunds Given",
        "Income",
        "DiscountsRefundsGiven",
        "Revenue",
    ),
    (
        98,
        "Card Clearing",
        "Other Current Asset",
        "OtherCurrentAssets",
        "Asset",
    ),
    (
        99,
        "Cash Clearing",
        "Other Current Asset",
        "OtherCurrentAssets",
        "Asset",
    ),
    (
        100,
        "House Account Clearing",
        "Other Current Asset",
        "OtherCurrentAssets",
        "Asset",
    ),
    (
        101,
        "Delivery App Clearing",
        "Other Current Asset",
        "OtherCurrentAssets",
        "Asset",
    ),
    (102, "Merchant Fees", "Expense", "BankCharges", "Expense"),
    (
        103,
        "Liquor Tax Payable",
        "Other Current Liability",
        "OtherCurrentLiabilities",
        "Liability",
    ),
];

/// The seeded items (Type `Service`): (Id, Name, income account Id). Item 10
/// matches the published SalesReceipt example.
///
/// One item per restaurant role, each booking to its role's account (see
/// [`ACCOUNTS`]): 20 food sales → 79, 21 beverage sales → 93, 22 gratuity →
/// 95, 23 sales tax collected → 91, 31 service charges → 94, 33 tips → 90,
/// 34 gift cards → 96, 35 discounts → 92, 36 refunds → 97, 37 card tenders →
/// 98, 38 cash tenders → 99, 39 house account tenders → 100, 40 delivery app
/// tenders → 101, 41 processing fees → 102, 42 liquor tax → 103. Items 21
/// and 22 keep their ids (they were the beverage and gratuity items before,
/// then booked to 79 and 90); there is no 30 or 32, whose roles they hold,
/// since QuickBooks item names are unique.
pub const ITEMS: &[(u64, &str, u64)] = &[
    (1, "Services", 1),
    (10, "Pest Control", 1),
    (20, "Food Sales", 79),
    (21, "Beverage Sales", 93),
    (22, "Gratuity", 95),
    (23, "Sales Tax Collected", 91),
    (31, "Service Charges", 94),
    (33, "Tips", 90),
    (34, "Gift Cards", 96),
    (35, "Discounts", 92),
    (36, "Refunds", 97),
    (37, "Card Tenders", 98),
    (38, "Cash Tenders", 99),
    (39, "House Account Tenders", 100),
    (40, "Delivery App Tenders", 101),
    (41, "Processing Fees", 102),
    (42, "Liquor Tax", 103),
];

/// The seeded sales tax rates: (Id, Name, RateValue in percent, liability
/// account Id). Both belong to the one seeded tax agency, whose liability
/// account is 91 "Sales Tax Payable"; a `TxnTaxDetail.TaxLine` naming a rate
/// credits (on a SalesReceipt) that account. QuickBooks' `TaxRate` carries
/// no account itself (Finance.xsd), so the account is the sandbox's record
/// of the agency's, not a field of the entity.
pub const TAX_RATES: &[(u64, &str, &str, u64)] = &[
    (1, "State Sales Tax", "6.25", 91),
    (2, "City Sales Tax", "2.5", 91),
];

/// The seeded departments (QuickBooks' "Locations"): (Id, Name), one per
/// restaurant of the seeded group. A journal line's `DepartmentRef` names
/// one when `TrackDepartments` is on (the default).
pub const DEPARTMENTS: &[(u64, &str)] = &[(1, "Downtown"), (2, "Uptown"), (3, "Airport")];

/// The seeded classes: (Id, Name), the same restaurants, for a company that
/// tracks locations by class (`ClassTrackingPerTxnLine`, off by default).
pub const CLASSES: &[(u64, &str)] = &[(1, "Downtown"), (2, "Uptown"), (3, "Airport")];

/// A Department or Class (Finance.xsd: `Name`, `Sub<Kind>`,
/// `FullyQualifiedName`, `Active`).
pub(crate) fn tag_entity(id: u64, name: &str, sub: &str, created: &Value) -> Value {
    json!({
        "Name": name, sub: false, "FullyQualifiedName": name, "Active": true,
        "domain": "QBO", "sparse": false, "Id": id.to_string(), "SyncToken": "0",
        "MetaData": created,
    })
}

/// How a company tracks classes (`AccountingInfoPrefs.ClassTrackingPerTxn`
/// / `ClassTrackingPerTxnLine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClassTracking {
    /// No class tracking: a `ClassRef` is refused.
    Off,
    /// One class per transaction (`ClassTrackingPerTxn`).
    PerTransaction,
    /// A class on each line (`ClassTrackingPerTxnLine`).
    PerLine,
}

/// The longest `DocNumber` (books.md: "≤ 21 chars").
pub const MAX_DOC_NUMBER: usize = 21;

/// The account a sales form's discount line books to when it names none.
const DEFAULT_DISCOUNT_ACCOUNT: &str = "92";
/// The account tax books to when a form has `TotalTax` but no tax lines.
const DEFAULT_TAX_ACCOUNT: &str = "91";

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
        let rates = entities.entry(QboEntity::TaxRate).or_default();
        for (rid, name, rate, _) in TAX_RATES {
            let rate: Value = serde_json::from_str(rate).unwrap_or(Value::Null);
            rates.insert(
                *rid,
                json!({
                    "Name": name, "Description": name, "Active": true, "RateValue": rate,
                    "AgencyRef": {"value": "1", "name": "Sales Tax Agency"},
                    "TaxReturnLineRef": {"value": "1"}, "SpecialTaxType": "NONE",
                    "DisplayType": "ReadOnly",
                    "EffectiveTaxRate": [{"RateValue": rate, "EffectiveDate": "2020-01-01T00:00:00Z"}],
                    "domain": "QBO", "sparse": false, "Id": rid.to_string(), "SyncToken": "0",
                    "MetaData": created,
                }),
            );
        }
        let departments = entities.entry(QboEntity::Department).or_default();
        for (did, name) in DEPARTMENTS {
            departments.insert(*did, tag_entity(*did, name, "SubDepartment", &created));
        }
        let classes = entities.entry(QboEntity::Class).or_default();
        for (cid, name) in CLASSES {
            classes.insert(*cid, tag_entity(*cid, name, "SubClass", &created));
        }
        entities.entry(QboEntity::Preferences).or_default().insert(
            1,
            json!({
                "AccountingInfoPrefs": {
                    "UseAccountNumbers": false,
                    "TrackDepartments": true,
                    "DepartmentTerminology": "Location",
                    "ClassTrackingPerTxn": false,
                    "ClassTrackingPerTxnLine": false,
                    "AutoJournalEntryNumber": false,
                    "FirstMonthOfFiscalYear": "January",
                    "TaxYearMonth": "January",
                    "CustomerTerminology": "Customers",
                },
                "ProductAndServicesPrefs": {"ForSales": true, "ForPurchase": true},
                "TaxPrefs": {"UsingSalesTax": true, "PartnerTaxEnabled": true},
                "CurrencyPrefs": {"MultiCurrencyEnabled": false, "HomeCurrency": {"value": "USD"}},
                "domain": "QBO", "sparse": false, "Id": "1", "SyncToken": "0", "MetaData": created,
            }),
        );
        entities.entry(QboEntity::SalesReceipt).or_default();
        entities.entry(QboEntity::RefundReceipt).or_default();
        entities.entry(QboEntity::Purchase).or_default();
        entities.entry(QboEntity::JournalEntry).or_default();
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

    /// `Preferences.AccountingInfoPrefs.<field>`.
    fn accounting_pref(&self, field: &str) -> Option<&Value> {
        self.get(QboEntity::Preferences, "1")?
            .get("AccountingInfoPrefs")?
            .get(field)
    }

    fn accounting_flag(&self, field: &str) -> bool {
        self.accounting_pref(field).and_then(Value::as_bool) == Some(true)
    }

    /// The closing date (`BookCloseDate`), when the books are closed.
    pub(crate) fn book_close_date(&self) -> Option<Date> {
        self.accounting_pref("BookCloseDate")
            .and_then(Value::as_str)
            .and_then(|d| d.parse().ok())
    }

    /// Changes `AccountingInfoPrefs` as a person would in QuickBooks'
    /// settings: the Preferences' `SyncToken` and `LastUpdatedTime` move on.
    pub(crate) fn edit_accounting_prefs(&mut self, f: impl FnOnce(&mut Map<String, Value>)) {
        let now = time::qbo(Timestamp::now(), &self.tz);
        let Some(p) = self
            .entities
            .get_mut(&QboEntity::Preferences)
            .and_then(|m| m.get_mut(&1))
        else {
            return;
        };
        if let Some(prefs) = p
            .get_mut("AccountingInfoPrefs")
            .and_then(Value::as_object_mut)
        {
            f(prefs);
        }
        let sync = p
            .get("SyncToken")
            .and_then(Value::as_str)
            .and_then(|s| s.parse::<u64>().ok())
            .unwrap_or(0)
            + 1;
        p["SyncToken"] = json!(sync.to_string());
        p["MetaData"]["LastUpdatedTime"] = json!(now);
    }

    /// Adds a Department or Class named `name`; returns its Id.
    pub(crate) fn add_tag(&mut self, kind: QboEntity, name: &str) -> String {
        let id = self.next_id;
        self.next_id += 1;
        let created = meta(Timestamp::now(), &self.tz);
        let sub = if kind == QboEntity::Class {
            "SubClass"
        } else {
            "SubDepartment"
        };
        self.entities
            .entry(kind)
            .or_default()
            .insert(id, tag_entity(id, name, sub, &created));
        id.to_string()
    }

    /// Refuses a write touching a transaction dated on or before the
    /// closing date.
    fn check_open(&self, kind: QboEntity, entity: &Value) -> Result<(), Fault> {
        if !kind.transaction() {
            return Ok(());
        }
        let (Some(close), Some(date)) = (
            self.book_close_date(),
            entity
                .get("TxnDate")
                .and_then(Value::as_str)
                .and_then(|d| d.parse::<Date>().ok()),
        ) else {
            return Ok(());
        };
        if date <= close {
            return Err(Fault::period_closed(date, close));
        }
        Ok(())
    }

    /// Fills `{"value": id}` with `name` from the referenced entity, or 610.
    fn resolve_ref(&self, r: &mut Value, kind: QboEntity, field: &str) -> Result<(), Fault> {
        let id = ref_value(r).ok_or_else(|| Fault::missing(&format!("{field}.value")))?;
        let target = self
            .get(kind, &id)
            .filter(|t| t.get("Active").and_then(Value::as_bool) != Some(false))
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
                self.check_open(kind, &entity)?;
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
                // Neither a transaction in a closed period may change, nor
                // may one be moved into it.
                self.check_open(kind, &current)?;
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
                self.check_open(kind, &entity)?;
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
        self.check_open(kind, &current)?;
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
            QboEntity::SalesReceipt | QboEntity::RefundReceipt => self.sales_lines(kind, &lines)?,
            QboEntity::Purchase => self.expense_lines(&lines)?,
            QboEntity::JournalEntry => self.journal_lines(&lines)?,
            _ => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!("{} cannot be written in the sandbox", kind.name()),
                ));
            }
        };
        e.insert("Line".into(), Value::Array(lines));
        match e.get("GlobalTaxCalculation") {
            None | Some(Value::Null) => {}
            Some(Value::String(g)) if g == "TaxExcluded" || g == "NotApplicable" => {}
            Some(Value::String(g)) if g == "TaxInclusive" => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    "GlobalTaxCalculation TaxInclusive is not supported in the sandbox",
                ));
            }
            Some(other) => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!(
                        "GlobalTaxCalculation {other} is not one of TaxExcluded, TaxInclusive, NotApplicable"
                    ),
                ));
            }
        }
        let tax = if kind == QboEntity::JournalEntry {
            // A journal entry's tax (non-US: TxnTaxDetail, TaxCodeRef on the
            // lines) is not modelled; an empty detail is accepted.
            match e.get("TxnTaxDetail") {
                None | Some(Value::Null) => {}
                Some(Value::Object(m)) if m.is_empty() => {}
                Some(_) => {
                    return Err(Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        "TxnTaxDetail on a JournalEntry (non-US tax) is not modelled in the sandbox",
                    ));
                }
            }
            Decimal::ZERO
        } else {
            let (tax_detail, tax) = self.tax_detail(e.get("TxnTaxDetail"))?;
            e.insert("TxnTaxDetail".into(), tax_detail);
            tax
        };
        let total = lines_total + tax;
        if kind.sales_form() && total < Decimal::ZERO {
            return Err(Fault::validation(
                "6000",
                "A business validation error has occurred while processing your request",
                &format!(
                    "Business Validation Error: The {} total can't be negative (TotalAmt {total}).",
                    kind.name()
                ),
            ));
        }
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
            QboEntity::SalesReceipt | QboEntity::RefundReceipt => {
                if kind == QboEntity::SalesReceipt {
                    let deposit = e
                        .entry("DepositToAccountRef")
                        .or_insert_with(|| json!({"value": "4"}));
                    self.resolve_ref(deposit, QboEntity::Account, "DepositToAccountRef")?;
                } else {
                    // A RefundReceipt is a SalesTransaction (Finance.xsd):
                    // the account refunded from is its `DepositToAccountRef`,
                    // required here (UNVERIFIED: QuickBooks' own default).
                    let from = e
                        .get_mut("DepositToAccountRef")
                        .filter(|r| !r.is_null())
                        .ok_or_else(|| Fault::missing("DepositToAccountRef"))?;
                    self.resolve_ref(from, QboEntity::Account, "DepositToAccountRef")?;
                }
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
            QboEntity::JournalEntry => {
                if let Some(r) = e.get_mut("DepartmentRef").filter(|r| !r.is_null()) {
                    self.location_ref(r, QboEntity::Department, "DepartmentRef")?;
                }
                e.entry("Adjustment").or_insert(json!(false));
            }
            _ => {}
        }
        match e.get("DocNumber") {
            None | Some(Value::Null) => {}
            Some(Value::String(d)) if d.chars().count() <= MAX_DOC_NUMBER => {}
            Some(Value::String(d)) => {
                return Err(Fault::validation(
                    "2050",
                    "Invalid String Length",
                    &format!(
                        "DocNumber: String length is either shorter or longer than supported by specification. Min:0 Max:{MAX_DOC_NUMBER} supplied:{}",
                        d.chars().count()
                    ),
                ));
            }
            Some(other) => {
                return Err(Fault::validation(
                    "2010",
                    "Request has invalid or unsupported property",
                    &format!("DocNumber {other} is not a string"),
                ));
            }
        }
        if !e.contains_key("DocNumber") && kind.sales_form() {
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

    fn sales_lines(&self, kind: QboEntity, lines: &Value) -> Result<(Vec<Value>, Decimal), Fault> {
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
                    let detail = line
                        .as_object_mut()
                        .ok_or_else(|| Fault::missing("Line"))?
                        .entry("DiscountLineDetail")
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                        .ok_or_else(|| Fault::missing("Line.DiscountLineDetail"))?;
                    let account = detail
                        .entry("DiscountAccountRef")
                        .or_insert_with(|| json!({"value": DEFAULT_DISCOUNT_ACCOUNT}));
                    self.resolve_ref(account, QboEntity::Account, "DiscountAccountRef")?;
                }
                "DescriptionOnly" => {}
                other => {
                    return Err(Fault::validation(
                        "2010",
                        "Request has invalid or unsupported property",
                        &format!(
                            "Line DetailType {other} is not supported on {} in the sandbox",
                            kind.name()
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

    /// Validates `TxnTaxDetail`: each `TaxLine` (`DetailType`
    /// `TaxLineDetail`) needs an `Amount` and a `TaxLineDetail.TaxRateRef`
    /// naming a seeded rate; `TotalTax` is their sum (a `TotalTax` sent with
    /// tax lines must equal it), or as sent when there are none. Returns the
    /// stored detail and the tax.
    fn tax_detail(&self, input: Option<&Value>) -> Result<(Value, Decimal), Fault> {
        let invalid = |detail: &str| {
            Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                detail,
            )
        };
        let mut detail = match input {
            None | Some(Value::Null) => Map::new(),
            Some(Value::Object(m)) => m.clone(),
            Some(_) => return Err(invalid("TxnTaxDetail must be an object")),
        };
        let given = match detail.get("TotalTax") {
            None | Some(Value::Null) => None,
            Some(v) => Some(money(v, "TxnTaxDetail.TotalTax")?),
        };
        let lines = match detail.get("TaxLine") {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::Array(a)) => a.clone(),
            Some(_) => return Err(invalid("TxnTaxDetail.TaxLine must be an array")),
        };
        let tax = if lines.is_empty() {
            given.unwrap_or(Decimal::ZERO)
        } else {
            let mut sum = Decimal::ZERO;
            let mut out = Vec::new();
            for mut line in lines {
                let amount = money(
                    line.get("Amount").unwrap_or(&Value::Null),
                    "TxnTaxDetail.TaxLine.Amount",
                )?;
                let obj = line
                    .as_object_mut()
                    .ok_or_else(|| Fault::missing("TxnTaxDetail.TaxLine"))?;
                let detail_type = obj
                    .entry("DetailType")
                    .or_insert_with(|| json!("TaxLineDetail"));
                if detail_type != "TaxLineDetail" {
                    return Err(invalid(&format!(
                        "TxnTaxDetail.TaxLine DetailType {detail_type} is not TaxLineDetail"
                    )));
                }
                let rate = obj
                    .get_mut("TaxLineDetail")
                    .and_then(Value::as_object_mut)
                    .ok_or_else(|| Fault::missing("TxnTaxDetail.TaxLine.TaxLineDetail"))?
                    .get_mut("TaxRateRef")
                    .ok_or_else(|| {
                        Fault::missing("TxnTaxDetail.TaxLine.TaxLineDetail.TaxRateRef")
                    })?;
                self.resolve_ref(rate, QboEntity::TaxRate, "TaxRateRef")?;
                sum += amount;
                out.push(line);
            }
            if let Some(g) = given
                && g != sum
            {
                return Err(invalid(&format!(
                    "TxnTaxDetail.TotalTax {g} is not the sum of its TaxLine amounts {sum}"
                )));
            }
            detail.insert("TaxLine".into(), Value::Array(out));
            sum
        };
        detail.insert("TotalTax".into(), decimal_json(tax));
        Ok((Value::Object(detail), tax))
    }

    /// An item's account: its `ExpenseAccountRef` (`expense`, falling back
    /// to the income account, the only one the seeded items name) or its
    /// `IncomeAccountRef`.
    fn item_account(&self, item: Option<&Value>, expense: bool) -> Option<String> {
        let item = self.get(QboEntity::Item, &ref_value(item?)?)?;
        expense
            .then(|| item.get("ExpenseAccountRef").and_then(ref_value))
            .flatten()
            .or_else(|| item.get("IncomeAccountRef").and_then(ref_value))
    }

    /// The (account, amount) pairs of a form's tax: each tax line to its
    /// rate's liability account, or `TotalTax` to 91 when there are none.
    fn tax_postings(e: &Value) -> Vec<(String, Decimal)> {
        let detail = e.get("TxnTaxDetail");
        let lines: Vec<(String, Decimal)> = detail
            .and_then(|d| d.get("TaxLine"))
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|l| {
                let rate = l
                    .get("TaxLineDetail")
                    .and_then(|d| d.get("TaxRateRef"))
                    .and_then(ref_value)
                    .and_then(|r| r.parse::<u64>().ok());
                let account = TAX_RATES
                    .iter()
                    .find(|t| Some(t.0) == rate)
                    .map_or(DEFAULT_TAX_ACCOUNT.to_string(), |t| t.3.to_string());
                (account, amount_of(l))
            })
            .collect();
        if !lines.is_empty() {
            return lines;
        }
        let total = detail
            .and_then(|d| d.get("TotalTax"))
            .and_then(json_decimal)
            .unwrap_or_default();
        vec![(DEFAULT_TAX_ACCOUNT.to_string(), total)]
    }

    /// The books' postings, debit positive, of every stored transaction,
    /// each with its location (the line's `DepartmentRef` / `ClassRef`,
    /// else the transaction's `DepartmentRef`). SalesReceipt: item lines
    /// credit their item's income account, discount lines debit their
    /// discount account, tax credits
    /// its liability, `DepositToAccountRef` is debited `TotalAmt`.
    /// RefundReceipt: the mirror, its `DepositToAccountRef` credited.
    /// Purchase: lines debit their account (an item line its item's
    /// account), tax is debited to its liability (reclaimable tax), and
    /// `AccountRef` is credited `TotalAmt`; a `Credit` purchase (a card
    /// refund) is the mirror. JournalEntry: each line debits (`PostingType`
    /// Debit) or credits its `AccountRef` by its `Amount`.
    pub(crate) fn postings(&self) -> Vec<Posting> {
        let mut postings = Vec::new();
        for kind in [
            QboEntity::SalesReceipt,
            QboEntity::RefundReceipt,
            QboEntity::Purchase,
            QboEntity::JournalEntry,
        ] {
            for e in self
                .entities
                .get(&kind)
                .into_iter()
                .flat_map(BTreeMap::values)
            {
                // The sandbox stores every entity with its TxnDate and
                // TotalAmt (`create` fills them in); one it cannot read is
                // a broken sandbox, never a zero.
                let unreadable = |field: &str| -> ! {
                    panic!(
                        "the QuickBooks sandbox holds {kind:?} {} with an unreadable {field}",
                        e.get("Id").unwrap_or(&Value::Null)
                    )
                };
                let date = e
                    .get("TxnDate")
                    .and_then(Value::as_str)
                    .and_then(|d| d.parse::<Date>().ok())
                    .unwrap_or_else(|| unreadable("TxnDate"));
                let header_department = e.get("DepartmentRef").and_then(ref_value);
                let mut post =
                    |account: Option<String>, debit: Decimal, dept: Option<String>, class| {
                        if let Some(account) = account {
                            postings.push(Posting {
                                date,
                                account,
                                debit,
                                department: dept.or_else(|| header_department.clone()),
                                class,
                            });
                        }
                    };
                let lines = e
                    .get("Line")
                    .and_then(Value::as_array)
                    .map(Vec::as_slice)
                    .unwrap_or_default();
                let total = e
                    .get("TotalAmt")
                    .and_then(json_decimal)
                    .unwrap_or_else(|| unreadable("TotalAmt"));
                let detail_ref = |l: &Value, detail: &str, field: &str| {
                    l.get(detail).and_then(|d| d.get(field)).cloned()
                };
                let line_class = |l: &Value, detail: &str| {
                    detail_ref(l, detail, "ClassRef")
                        .as_ref()
                        .and_then(ref_value)
                };
                if kind == QboEntity::JournalEntry {
                    for l in lines {
                        let detail = "JournalEntryLineDetail";
                        let side = match detail_ref(l, detail, "PostingType")
                            .as_ref()
                            .and_then(Value::as_str)
                        {
                            Some("Debit") => Decimal::ONE,
                            Some("Credit") => Decimal::NEGATIVE_ONE,
                            _ => unreadable("Line.JournalEntryLineDetail.PostingType"),
                        };
                        post(
                            detail_ref(l, detail, "AccountRef")
                                .as_ref()
                                .and_then(ref_value),
                            side * amount_of(l),
                            detail_ref(l, detail, "DepartmentRef")
                                .as_ref()
                                .and_then(ref_value),
                            line_class(l, detail),
                        );
                    }
                } else if kind.sales_form() {
                    // The side the lines are on: credit for a sale, debit for a refund.
                    let s = if kind == QboEntity::SalesReceipt {
                        Decimal::ONE
                    } else {
                        Decimal::NEGATIVE_ONE
                    };
                    for l in lines {
                        match l.get("DetailType").and_then(Value::as_str) {
                            Some("SalesItemLineDetail") => post(
                                self.item_account(
                                    detail_ref(l, "SalesItemLineDetail", "ItemRef").as_ref(),
                                    false,
                                ),
                                -s * amount_of(l),
                                None,
                                line_class(l, "SalesItemLineDetail"),
                            ),
                            Some("DiscountLineDetail") => post(
                                Some(
                                    detail_ref(l, "DiscountLineDetail", "DiscountAccountRef")
                                        .as_ref()
                                        .and_then(ref_value)
                                        .unwrap_or(DEFAULT_DISCOUNT_ACCOUNT.into()),
                                ),
                                s * amount_of(l),
                                None,
                                None,
                            ),
                            _ => {}
                        }
                    }
                    for (account, tax) in Self::tax_postings(e) {
                        post(Some(account), -s * tax, None, None);
                    }
                    post(
                        e.get("DepositToAccountRef").and_then(ref_value),
                        s * total,
                        None,
                        None,
                    );
                } else {
                    let p = if e.get("Credit").and_then(Value::as_bool) == Some(true) {
                        Decimal::NEGATIVE_ONE
                    } else {
                        Decimal::ONE
                    };
                    for l in lines {
                        let account = match l.get("DetailType").and_then(Value::as_str) {
                            Some("AccountBasedExpenseLineDetail") => {
                                detail_ref(l, "AccountBasedExpenseLineDetail", "AccountRef")
                                    .as_ref()
                                    .and_then(ref_value)
                            }
                            Some("ItemBasedExpenseLineDetail") => self.item_account(
                                detail_ref(l, "ItemBasedExpenseLineDetail", "ItemRef").as_ref(),
                                true,
                            ),
                            _ => None,
                        };
                        let class = line_class(l, "AccountBasedExpenseLineDetail")
                            .or_else(|| line_class(l, "ItemBasedExpenseLineDetail"));
                        post(account, p * amount_of(l), None, class);
                    }
                    for (account, tax) in Self::tax_postings(e) {
                        post(Some(account), p * tax, None, None);
                    }
                    post(
                        e.get("AccountRef").and_then(ref_value),
                        -p * total,
                        None,
                        None,
                    );
                }
            }
        }
        postings
    }

    /// The books' per-day, per-account net (debit positive) of every stored
    /// transaction ([`Self::postings`]); nets of zero are left out.
    pub(crate) fn account_totals(&self) -> BTreeMap<(Date, String), Decimal> {
        let mut totals: BTreeMap<(Date, String), Decimal> = BTreeMap::new();
        for p in self.postings() {
            *totals.entry((p.date, p.account)).or_default() += p.debit;
        }
        totals.retain(|_, v| !v.is_zero());
        totals
    }

    /// Resolves a `DepartmentRef` or `ClassRef`: the company must track
    /// that dimension (`TrackDepartments`; `ClassTrackingPerTxn` or
    /// `ClassTrackingPerTxnLine`), else 2010 (sandbox strictness,
    /// UNVERIFIED: what QuickBooks does with a ref it does not track), and
    /// the ref must name an active one (610).
    fn location_ref(&self, r: &mut Value, kind: QboEntity, field: &str) -> Result<(), Fault> {
        let tracked = if kind == QboEntity::Class {
            self.accounting_flag("ClassTrackingPerTxn")
                || self.accounting_flag("ClassTrackingPerTxnLine")
        } else {
            self.accounting_flag("TrackDepartments")
        };
        if !tracked {
            let pref = if kind == QboEntity::Class {
                "ClassTrackingPerTxn / ClassTrackingPerTxnLine are"
            } else {
                "TrackDepartments is"
            };
            return Err(Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                &format!(
                    "{field}: the company does not track {}es (Preferences.AccountingInfoPrefs.{pref} off)",
                    if kind == QboEntity::Class {
                        "class"
                    } else {
                        "location"
                    }
                ),
            ));
        }
        self.resolve_ref(r, kind, field)
    }

    /// Validates a JournalEntry's lines: each `DetailType`
    /// `JournalEntryLineDetail` with a non-negative `Amount` (2290),
    /// `PostingType` `Debit` or `Credit` (2260 when missing, 2170 otherwise),
    /// an `AccountRef` naming an account (610) and optional `DepartmentRef`
    /// / `ClassRef` (see [`Self::location_ref`]); line tax is not modelled.
    /// The debits must equal the credits (2300). Returns the lines and the
    /// total debits (the entry's `TotalAmt`).
    fn journal_lines(&self, lines: &Value) -> Result<(Vec<Value>, Decimal), Fault> {
        let invalid = |detail: &str| {
            Fault::validation(
                "2010",
                "Request has invalid or unsupported property",
                detail,
            )
        };
        let mut out = Vec::new();
        let (mut debits, mut credits) = (Decimal::ZERO, Decimal::ZERO);
        for (n, mut line) in Self::lines_array(lines)?.into_iter().enumerate() {
            let detail_type = line
                .get("DetailType")
                .and_then(Value::as_str)
                .ok_or_else(|| Fault::missing("Line.DetailType"))?
                .to_string();
            if detail_type != "JournalEntryLineDetail" {
                return Err(invalid(&format!(
                    "Line DetailType {detail_type} is not supported on JournalEntry in the sandbox"
                )));
            }
            let amount = money(line.get("Amount").unwrap_or(&Value::Null), "Line.Amount")?;
            if amount < Decimal::ZERO {
                return Err(Fault::validation(
                    "2290",
                    "NegativeAmount",
                    &format!(
                        "Negative amounts aren't supported on transaction lines. Supplied value: {amount}"
                    ),
                ));
            }
            let detail = line
                .get_mut("JournalEntryLineDetail")
                .and_then(Value::as_object_mut)
                .ok_or_else(|| Fault::missing("Line.JournalEntryLineDetail"))?;
            let debit = match detail.get("PostingType") {
                None | Some(Value::Null) => {
                    return Err(Fault::validation(
                        "2260",
                        "MissingPostingType",
                        "A posting type is required. Valid values are Credit or Debit.",
                    ));
                }
                Some(Value::String(p)) if p == "Debit" => true,
                Some(Value::String(p)) if p == "Credit" => false,
                Some(other) => {
                    return Err(Fault::validation(
                        "2170",
                        "Invalid Enumeration",
                        &format!("PostingType {other} is not one of Debit, Credit"),
                    ));
                }
            };
            for field in [
                "TaxCodeRef",
                "TaxRateRef",
                "TaxApplicableOn",
                "TaxAmount",
                "TaxInclusiveAmt",
            ] {
                if detail.get(field).is_some_and(|v| !v.is_null()) {
                    return Err(invalid(&format!(
                        "JournalEntryLineDetail.{field}: journal-entry tax (non-US) is not modelled in the sandbox"
                    )));
                }
            }
            let account = detail
                .get_mut("AccountRef")
                .filter(|r| !r.is_null())
                .ok_or_else(|| Fault::missing("Line.JournalEntryLineDetail.AccountRef"))?;
            self.resolve_ref(account, QboEntity::Account, "AccountRef")?;
            if let Some(r) = detail.get_mut("DepartmentRef").filter(|r| !r.is_null()) {
                self.location_ref(r, QboEntity::Department, "DepartmentRef")?;
            }
            if let Some(r) = detail.get_mut("ClassRef").filter(|r| !r.is_null()) {
                self.location_ref(r, QboEntity::Class, "ClassRef")?;
            }
            if debit {
                debits += amount;
            } else {
                credits += amount;
            }
            if let Some(obj) = line.as_object_mut() {
                obj.insert("Id".into(), json!(n.to_string()));
            }
            out.push(line);
        }
        if debits != credits {
            return Err(Fault::unbalanced(debits, credits));
        }
        Ok((out, debits))
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

/// A line's `Amount` (zero when absent).
fn amount_of(line: &Value) -> Decimal {
    line.get("Amount")
        .and_then(json_decimal)
        .unwrap_or_default()
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

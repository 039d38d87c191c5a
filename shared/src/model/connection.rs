//! Tenants, connections, and the business-day rule each connection carries.

use crate::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
use jiff::civil::{Date, Time};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

/// An outside system the hub talks to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Toast POS.
    Toast,
    /// Square POS and payments.
    Square,
    /// MarketMan inventory and purchasing.
    MarketMan,
    /// QuickBooks Online accounting.
    QuickBooks,
    /// Xero accounting.
    Xero,
    /// The time-tracking system shifts are sent to (a generic REST API).
    #[serde(rename = "timetracking")]
    TimeTracking,
}

impl Provider {
    /// Every provider, in a stable order.
    pub const ALL: [Provider; 6] = [
        Provider::Toast,
        Provider::Square,
        Provider::MarketMan,
        Provider::QuickBooks,
        Provider::Xero,
        Provider::TimeTracking,
    ];

    /// The lowercase name used in URLs, keys and configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Provider::Toast => "toast",
            Provider::Square => "square",
            Provider::MarketMan => "marketman",
            Provider::QuickBooks => "quickbooks",
            Provider::Xero => "xero",
            Provider::TimeTracking => "timetracking",
        }
    }

    /// Whether records are booked into this provider (an accounting destination).
    pub fn is_accounting(self) -> bool {
        matches!(self, Provider::QuickBooks | Provider::Xero)
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A provider name the hub does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown provider {0:?}: expected one of toast, square, marketman, quickbooks, xero, timetracking"
)]
pub struct UnknownProvider(pub String);

impl FromStr for Provider {
    type Err = UnknownProvider;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Provider::ALL
            .into_iter()
            .find(|p| p.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownProvider(s.to_string()))
    }
}

/// A restaurant group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tenant {
    /// The tenant's id.
    pub id: TenantId,
    /// A name for people.
    pub name: String,
}

/// An IANA time zone name that is known to the bundled time zone database.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct TimeZoneName(String);

impl TimeZoneName {
    /// Checks `name` against the time zone database.
    pub fn new(name: impl Into<String>) -> Result<Self, jiff::Error> {
        let name = name.into();
        TimeZone::get(&name)?;
        Ok(Self(name))
    }

    /// The zone itself.
    pub fn zone(&self) -> TimeZone {
        // Checked in `new`; the bundled database does not change at run time.
        TimeZone::get(&self.0).unwrap_or(TimeZone::UTC)
    }

    /// The IANA name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for TimeZoneName {
    type Error = jiff::Error;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<TimeZoneName> for String {
    fn from(value: TimeZoneName) -> Self {
        value.0
    }
}

/// When a restaurant's business day ends, in local wall-clock time. Sales
/// before this time belong to the previous business day (a bar open until 2 am
/// books its 1 am sales on the night before). `00:00` means the calendar day.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct BusinessDayClose(pub Time);

impl Default for BusinessDayClose {
    fn default() -> Self {
        BusinessDayClose(Time::midnight())
    }
}

/// Where one destination's records are booked: account and item ids in that
/// destination's chart of accounts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountMapping {
    /// Income account for sales.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_account: Option<String>,
    /// Account money is deposited to (undeposited funds, a bank account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deposit_account: Option<String>,
    /// Expense account for refunds, purchases and other debits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expense_account: Option<String>,
    /// The item a sales line is booked against (QuickBooks needs one).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sales_item: Option<String>,
    /// Tax code or tax type to apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tax_code: Option<String>,
    /// Deposit account per payment method (`CREDIT`, `CASH`, ...), overriding
    /// `deposit_account`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub by_payment_method: BTreeMap<String, String>,
    /// Each part's account (Xero: an account code) or item (QuickBooks: an
    /// item whose account takes the part) by role: `sales:<category>`,
    /// `discounts`, `service_charges`, `gratuity`, `tax:<rate>`, `tips`,
    /// `gift_cards_sold`, `gift_cards_redeemed`, `refunds`, `tender:<type>`,
    /// `fees`; a key may end in `:*` to cover a family (`sales:*`). A part
    /// with no mapping holds its record; it is never booked to a guess.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub parts: BTreeMap<String, String>,
}

/// One tenant's link to one provider account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    /// The connection's id, unique within the tenant.
    pub id: ConnectionId,
    /// Whose connection it is.
    pub tenant: TenantId,
    /// Which provider.
    pub provider: Provider,
    /// The provider's id of the account (restaurant GUID, merchant id, realm id,
    /// Xero tenant id). One provider account belongs to one connection.
    pub account_id: ProviderAccountId,
    /// The restaurant's time zone.
    pub time_zone: TimeZoneName,
    /// When the restaurant's business day ends.
    #[serde(default)]
    pub business_day_close: BusinessDayClose,
    /// The secret holding this connection's credentials.
    pub credentials: SecretName,
    /// For a source connection: where its records are booked, per destination.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub mappings: BTreeMap<Provider, AccountMapping>,
    /// The back office's ids to this provider's codes: `supplier:<id>` → a
    /// MarketMan vendor GUID, `item:<id>` → a catalog item code.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub codes: BTreeMap<String, String>,
    /// The currency the account's money is in where its records do not say
    /// (Toast orders carry none: the restaurant's `currencyCode`, learned
    /// from the restaurants API the first time the hub reads its sales).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub currency: Option<crate::model::Currency>,
    /// For an accounting destination: how it books (daily summary or per
    /// order), its journal mapping by version, its locations' tracking.
    #[serde(
        default,
        skip_serializing_if = "crate::model::journal::DestinationBooks::is_default"
    )]
    pub books: crate::model::journal::DestinationBooks,
}

impl Connection {
    /// The secret a connection's credentials live in unless named otherwise:
    /// `tenants/<tenant>/<id>`, under their own prefix so no tenant's name can
    /// collide with the hub's own secrets (`apps/`, `webhooks/`, `links/`).
    pub fn default_secret(
        tenant: &crate::ids::TenantId,
        id: &crate::ids::ConnectionId,
    ) -> Result<crate::ids::SecretName, crate::ids::InvalidId> {
        crate::ids::SecretName::new(format!("tenants/{tenant}/{id}"))
    }

    /// The business date an instant belongs to at this restaurant.
    pub fn business_date(&self, at: Timestamp) -> Date {
        business_date(at, &self.time_zone.zone(), self.business_day_close)
    }
}

/// The business date of `at` for a restaurant in `zone` whose day closes at
/// `close` local time. The comparison is on wall-clock time, so it is right on
/// the nights clocks change.
pub fn business_date(at: Timestamp, zone: &TimeZone, close: BusinessDayClose) -> Date {
    let local = zone.to_datetime(at);
    let date = local.date();
    if local.time() < close.0 {
        date.checked_sub(1.day()).unwrap_or(date)
    } else {
        date
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiff::civil::{date, time};

    fn at(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn business_date_uses_local_time_not_utc() {
        let ny = TimeZone::get("America/New_York").unwrap();
        // 02:30 UTC on the 15th is 22:30 on the 14th in New York.
        let d = business_date(at("2026-03-15T02:30:00Z"), &ny, BusinessDayClose::default());
        assert_eq!(d, date(2026, 3, 14));
    }

    #[test]
    fn sales_before_close_belong_to_the_previous_day() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let close = BusinessDayClose(time(4, 0, 0, 0));
        // 01:30 local on the 14th, before the 04:00 close.
        let d = business_date(at("2026-01-14T06:30:00Z"), &ny, close);
        assert_eq!(d, date(2026, 1, 13));
        // 04:00 local exactly opens the new day.
        let d = business_date(at("2026-01-14T09:00:00Z"), &ny, close);
        assert_eq!(d, date(2026, 1, 14));
    }

    #[test]
    fn an_order_at_2330_on_the_night_clocks_change_lands_on_that_night() {
        let ny = TimeZone::get("America/New_York").unwrap();
        let close = BusinessDayClose(time(4, 0, 0, 0));
        // 2026-11-01 is the US fall-back night; 23:30 EST on Oct 31 is 03:30Z Nov 1 (EDT).
        let d = business_date(at("2026-11-01T03:30:00Z"), &ny, close);
        assert_eq!(d, date(2026, 10, 31));
        // 2026-03-08 is spring-forward; 23:30 EDT on Mar 8 is 03:30Z Mar 9.
        let d = business_date(at("2026-03-09T03:30:00Z"), &ny, close);
        assert_eq!(d, date(2026, 3, 8));
    }

    #[test]
    fn provider_names_round_trip() {
        for p in Provider::ALL {
            assert_eq!(p.as_str().parse::<Provider>().unwrap(), p);
            let json = serde_json::to_string(&p).unwrap();
            assert_eq!(json, format!("\"{}\"", p.as_str()));
        }
        assert!("paypal".parse::<Provider>().is_err());
    }

    #[test]
    fn time_zone_names_are_checked() {
        assert!(TimeZoneName::new("Europe/London").is_ok());
        assert!(TimeZoneName::new("Mars/Olympus").is_err());
    }
}

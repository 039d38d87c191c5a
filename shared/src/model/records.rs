//! Normalized records: what every provider's payloads become. Money is
//! `Decimal`, never a float; dates are the restaurant's business date.

use crate::ids::{ConnectionId, ExternalId, TenantId};
use crate::model::Provider;
use jiff::Timestamp;
use jiff::civil::Date;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use std::fmt;

/// An ISO 4217 currency code (three upper-case letters).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Currency(String);

impl Currency {
    /// Checks the code's shape: three ASCII letters, upper-cased.
    pub fn new(code: &str) -> Result<Self, String> {
        if code.len() == 3 && code.chars().all(|c| c.is_ascii_alphabetic()) {
            Ok(Self(code.to_ascii_uppercase()))
        } else {
            Err(format!(
                "invalid currency code {code:?}: expected three letters"
            ))
        }
    }

    /// US dollars.
    pub fn usd() -> Self {
        Self("USD".into())
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Currency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Currency {
    type Error = String;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(&value)
    }
}

impl From<Currency> for String {
    fn from(value: Currency) -> Self {
        value.0
    }
}

/// Money in (credit: a sale) or out (debit: a refund or an expense), seen from
/// the restaurant's books.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// Money received.
    Credit,
    /// Money paid out.
    Debit,
}

/// One line of a transaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineItem {
    /// What was sold.
    pub description: String,
    /// The provider's id of the item, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ExternalId>,
    /// How many.
    pub quantity: Decimal,
    /// Price of one.
    pub unit_price: Decimal,
    /// The line's total.
    pub amount: Decimal,
}

/// A sale, refund or expense, ready to be booked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transaction {
    /// Whose it is.
    pub tenant: TenantId,
    /// The source connection it came from.
    pub connection: ConnectionId,
    /// The source provider.
    pub source: Provider,
    /// The provider's id of the record (order guid, payment id).
    pub external_id: ExternalId,
    /// The amount, never negative; `direction` says which way it moves.
    pub amount: Decimal,
    /// Its currency.
    pub currency: Currency,
    /// Credit (sale) or debit (refund, expense).
    pub direction: Direction,
    /// Text for the books ("Toast Order #42").
    pub description: String,
    /// The restaurant's business date it belongs to.
    pub business_date: Date,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// A reference people search for ("TOAST-42").
    pub reference: String,
    /// How it was paid (`CREDIT`, `CASH`, ...), where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_method: Option<String>,
    /// Its lines.
    #[serde(default)]
    pub line_items: Vec<LineItem>,
    /// Its money by role (see [`crate::model::parts`]): what is booked.
    /// Empty only for rows stored before parts existed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parts: Vec<crate::model::Part>,
    /// Why it must not be booked as it is (its parts do not balance, say),
    /// naming the fields; a held record is parked, never posted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold: Option<String>,
}

/// An ingredient of a menu item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ingredient {
    /// Its name.
    pub name: String,
    /// The provider's id, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub item_id: Option<ExternalId>,
    /// How much goes into one serving.
    pub quantity: Decimal,
    /// In which unit.
    pub unit: String,
}

/// An item on a restaurant's menu.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MenuItem {
    /// Whose menu.
    pub tenant: TenantId,
    /// The source connection.
    pub connection: ConnectionId,
    /// The provider's id.
    pub external_id: ExternalId,
    /// Its name.
    pub name: String,
    /// Its menu group or category.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    /// Its base price, where it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Decimal>,
    /// What goes into it.
    #[serde(default)]
    pub ingredients: Vec<Ingredient>,
}

/// How much of an item a location has.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InventoryLevel {
    /// Whose stock.
    pub tenant: TenantId,
    /// The source connection.
    pub connection: ConnectionId,
    /// The provider's id of the item.
    pub item_id: ExternalId,
    /// The item's name, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The location (Square location id, MarketMan buyer).
    pub location: String,
    /// How much is on hand.
    pub quantity: Decimal,
    /// In which unit.
    pub unit: String,
    /// When it was counted.
    pub counted_at: Timestamp,
}

/// One line of a purchase order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseOrderLine {
    /// The hub's (the back office's) item id; mapped to the vendor's on the way out.
    pub item_id: String,
    /// How much is ordered.
    pub quantity: Decimal,
    /// In which unit.
    pub unit: String,
    /// Agreed price of one unit.
    pub unit_cost: Decimal,
}

/// An order to a supplier.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PurchaseOrder {
    /// Whose order.
    pub tenant: TenantId,
    /// The back office's id of the order.
    pub id: ExternalId,
    /// The back office's supplier id.
    pub supplier_id: String,
    /// Which location receives it.
    pub location: String,
    /// When it is expected.
    pub delivery_date: Date,
    /// What is ordered.
    pub lines: Vec<PurchaseOrderLine>,
    /// Free text for the supplier.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

/// One line of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryLine {
    /// The back office's item id.
    pub item_id: String,
    /// How much arrived.
    pub quantity_received: Decimal,
    /// In which unit.
    pub unit: String,
    /// Invoiced price of one unit.
    pub unit_cost: Decimal,
}

/// Goods received against a purchase order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Delivery {
    /// Whose delivery.
    pub tenant: TenantId,
    /// The back office's id of the delivery.
    pub id: ExternalId,
    /// The order it fills, where known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purchase_order: Option<ExternalId>,
    /// The supplier's invoice number, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub invoice_number: Option<String>,
    /// When it was received.
    pub received_at: Timestamp,
    /// What arrived.
    pub lines: Vec<DeliveryLine>,
}

/// A break within a shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Break {
    /// When it began.
    pub start: Timestamp,
    /// When it ended; open while the break goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub end: Option<Timestamp>,
    /// Paid breaks are not deducted from worked hours.
    #[serde(default)]
    pub paid: bool,
}

/// An employee's shift.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimeEntry {
    /// Whose employee.
    pub tenant: TenantId,
    /// The back office's id of the entry.
    pub id: ExternalId,
    /// The employee.
    pub employee_id: String,
    /// Where they worked.
    pub location: String,
    /// Their role or job code, where given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub job: Option<String>,
    /// Clock-in.
    pub clock_in: Timestamp,
    /// Clock-out; open while the shift goes on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clock_out: Option<Timestamp>,
    /// Breaks taken.
    #[serde(default)]
    pub breaks: Vec<Break>,
}

/// What kind of record a ledger row holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordKind {
    /// A [`Transaction`].
    Transaction,
    /// A [`MenuItem`].
    MenuItem,
    /// An [`InventoryLevel`].
    InventoryLevel,
    /// A [`PurchaseOrder`].
    PurchaseOrder,
    /// A [`Delivery`].
    Delivery,
    /// A [`TimeEntry`].
    TimeEntry,
}

impl RecordKind {
    /// The snake-case name used in keys and JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Transaction => "transaction",
            RecordKind::MenuItem => "menu_item",
            RecordKind::InventoryLevel => "inventory_level",
            RecordKind::PurchaseOrder => "purchase_order",
            RecordKind::Delivery => "delivery",
            RecordKind::TimeEntry => "time_entry",
        }
    }
}

/// Any normalized record, tagged with its kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", content = "record", rename_all = "snake_case")]
pub enum Record {
    /// A sale, refund or expense.
    Transaction(Transaction),
    /// A menu item.
    MenuItem(MenuItem),
    /// An inventory level.
    InventoryLevel(InventoryLevel),
    /// A purchase order.
    PurchaseOrder(PurchaseOrder),
    /// A delivery.
    Delivery(Delivery),
    /// A time entry.
    TimeEntry(TimeEntry),
}

impl Record {
    /// Its kind.
    pub fn kind(&self) -> RecordKind {
        match self {
            Record::Transaction(_) => RecordKind::Transaction,
            Record::MenuItem(_) => RecordKind::MenuItem,
            Record::InventoryLevel(_) => RecordKind::InventoryLevel,
            Record::PurchaseOrder(_) => RecordKind::PurchaseOrder,
            Record::Delivery(_) => RecordKind::Delivery,
            Record::TimeEntry(_) => RecordKind::TimeEntry,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::str::FromStr;

    #[test]
    fn money_serializes_as_exact_decimal_strings() {
        let line = LineItem {
            description: "Burger".into(),
            item_id: None,
            quantity: Decimal::from(3),
            unit_price: Decimal::from_str("0.10").unwrap(),
            amount: Decimal::from_str("0.30").unwrap(),
        };
        let json = serde_json::to_value(&line).unwrap();
        assert_eq!(json["amount"], "0.30");
        let back: LineItem = serde_json::from_value(json).unwrap();
        // 0.1 * 3 is exactly 0.3 in decimal, unlike in binary floating point.
        assert_eq!(back.unit_price * back.quantity, back.amount);
    }

    #[test]
    fn currency_codes_are_checked_and_upper_cased() {
        assert_eq!(Currency::new("usd").unwrap().as_str(), "USD");
        assert!(Currency::new("US").is_err());
        assert!(Currency::new("U$D").is_err());
    }
}

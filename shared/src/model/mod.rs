//! The hub's internal model: tenants and their connections, and the normalized
//! records every provider's payloads are turned into. Nothing here knows about
//! HTTP, AWS or a provider's wire format.

mod connection;
pub mod journal;
pub mod parts;
mod records;

pub use connection::{
    AccountMapping, BusinessDayClose, Connection, Provider, Tenant, TimeZoneName, UnknownProvider,
};
pub use parts::Part;
pub use records::{
    Break, Currency, Delivery, DeliveryLine, Direction, Ingredient, InventoryLevel, LineItem,
    MenuItem, PurchaseOrder, PurchaseOrderLine, Record, RecordKind, TimeEntry, Transaction,
};

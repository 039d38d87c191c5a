//! MarketMan inventory to the internal model: each item's on-hand quantity
//! (`GetInventoryItems`) becomes an inventory level at the buyer. Field names
//! follow the Postman collection's examples (UNVERIFIED against a live
//! account; see providers.md §5): `ID`, `Name`, `OnHand` (or `OnHandQty` /
//! `Quantity`), `UOMName` (or `Unit`), `LastCountDateUTC`.

use crate::ids::ExternalId;
use crate::model::{Connection, InventoryLevel, Provider};
use crate::transforms::{TransformError, decimal, parse_timestamp};
use jiff::Timestamp;
use serde_json::Value;

fn first<'a>(v: &'a Value, keys: &[&str]) -> &'a Value {
    keys.iter()
        .map(|k| &v[*k])
        .find(|x| !x.is_null())
        .unwrap_or(&Value::Null)
}

/// A MarketMan inventory item to a level; `read_at` stands in for the count
/// time when the item carries none.
pub fn item_to_level(
    item: &Value,
    connection: &Connection,
    read_at: Timestamp,
) -> Result<InventoryLevel, TransformError> {
    let id = match first(item, &["ID", "ItemID", "Id"]) {
        Value::String(s) => s.clone(),
        Value::Number(n) => n.to_string(),
        _ => {
            return Err(TransformError::new(
                Provider::MarketMan,
                "?",
                "ID",
                "missing",
            ));
        }
    };
    let quantity = decimal(first(item, &["OnHand", "OnHandQty", "Quantity"]))
        .map_err(|e| TransformError::new(Provider::MarketMan, &id, "OnHand", e))?
        .unwrap_or_default();
    let counted_at = match first(item, &["LastCountDateUTC", "CountDateUTC"]).as_str() {
        Some(s) => parse_timestamp(s)
            .map_err(|e| TransformError::new(Provider::MarketMan, &id, "LastCountDateUTC", e))?,
        None => read_at,
    };
    Ok(InventoryLevel {
        tenant: connection.tenant.clone(),
        connection: connection.id.clone(),
        item_id: ExternalId::new(&id)
            .map_err(|e| TransformError::new(Provider::MarketMan, &id, "ID", e.to_string()))?,
        name: first(item, &["Name", "ItemName"])
            .as_str()
            .map(str::to_string),
        location: connection.account_id.to_string(),
        quantity,
        unit: first(item, &["UOMName", "Unit", "UOM"])
            .as_str()
            .unwrap_or("each")
            .to_string(),
        counted_at,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::{ConnectionId, ProviderAccountId, SecretName, TenantId};
    use crate::model::TimeZoneName;
    use rust_decimal::Decimal;
    use std::str::FromStr;

    #[test]
    fn items_become_levels_at_the_buyer() {
        let c = Connection {
            id: ConnectionId::new("mm").unwrap(),
            tenant: TenantId::new("bistro").unwrap(),
            provider: Provider::MarketMan,
            account_id: ProviderAccountId::new("buyer-1").unwrap(),
            time_zone: TimeZoneName::new("UTC").unwrap(),
            business_day_close: Default::default(),
            credentials: SecretName::new("bistro/mm").unwrap(),
            mappings: Default::default(),
            codes: Default::default(),
            currency: None,
            books: Default::default(),
        };
        let now = Timestamp::now();
        let item = serde_json::json!({"ID": 42, "Name": "Flour", "OnHand": 12.75, "UOMName": "kg", "LastCountDateUTC": "2026/11/28 06:00:00"});
        let l = item_to_level(&item, &c, now).unwrap();
        assert_eq!(
            (
                l.item_id.as_str(),
                l.quantity,
                l.unit.as_str(),
                l.location.as_str()
            ),
            ("42", Decimal::from_str("12.75").unwrap(), "kg", "buyer-1")
        );
        assert_eq!(
            l.counted_at,
            "2026-11-28T06:00:00Z".parse::<Timestamp>().unwrap()
        );
        let bare = serde_json::json!({"ID": "7", "Quantity": "3"});
        assert_eq!(item_to_level(&bare, &c, now).unwrap().counted_at, now);
        assert_eq!(
            item_to_level(&serde_json::json!({"Name": "x"}), &c, now)
                .unwrap_err()
                .field,
            "ID"
        );
    }
}

//! Square's streams: payments by update time over every location, inventory
//! counts changed since the last run.

use super::client::SquareClient;
use super::transform;
use crate::model::{Connection, Record};
use crate::providers::kit::{Page, PageToken, PullError, SnapshotStream, WindowedStream};
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// Square sales: payments by update time (`ListPayments` with
/// `updated_at_begin_time`/`updated_at_end_time`, `sort_field=UPDATED_AT`),
/// every location of the merchant (`ListLocations`; a request without
/// `location_id` lists the main location only), each page completed with
/// its orders, the orders' other payments, refunds and return orders
/// ([`SquareClient::sales_for`]) and turned into one record per order and
/// per completed refund (`transform::sales_to_transactions`).
/// The page token is a cursor holding the locations still to read and
/// Square's cursor within the first of them.
#[derive(Debug)]
pub struct SquarePayments {
    /// The merchant's client.
    pub client: SquareClient,
    /// Its connection.
    pub connection: Connection,
}

/// Where a Square sales walk is: the locations left (the first being read)
/// and Square's cursor in it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
struct SquareWalk {
    locations: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    cursor: Option<String>,
}

#[async_trait]
impl WindowedStream for SquarePayments {
    fn name(&self) -> &'static str {
        "payments"
    }

    fn max_slice(&self) -> SignedDuration {
        SignedDuration::from_hours(24 * 7)
    }

    async fn page(
        &self,
        start: Timestamp,
        end: Timestamp,
        token: &PageToken,
    ) -> Result<Page, PullError> {
        let walk = match token {
            PageToken::Cursor(c) => serde_json::from_str::<SquareWalk>(c).unwrap_or_else(|_| {
                // A bare Square cursor (checkpointed before locations were
                // walked): the main location.
                SquareWalk {
                    locations: Vec::new(),
                    cursor: Some(c.clone()),
                }
            }),
            _ => SquareWalk {
                locations: self
                    .client
                    .list_locations()
                    .await?
                    .iter()
                    .filter_map(|l| l["id"].as_str().map(str::to_string))
                    .collect(),
                cursor: None,
            },
        };
        let location = walk.locations.first().map(String::as_str);
        let page = self
            .client
            .list_payments_updated(start, end, location, walk.cursor.as_deref())
            .await?;
        let batch = self.client.sales_for(page.items).await?;
        let records = transform::sales_to_transactions(
            &batch.payments,
            &batch.orders,
            &batch.refunds,
            &self.connection,
        )?
        .into_iter()
        .map(Record::Transaction)
        .collect();
        let next = match page.cursor {
            Some(c) => Some(SquareWalk {
                locations: walk.locations,
                cursor: Some(c),
            }),
            None if walk.locations.len() > 1 => Some(SquareWalk {
                locations: walk.locations[1..].to_vec(),
                cursor: None,
            }),
            None => None,
        };
        Ok(Page {
            records,
            // Strings only: serializing cannot fail.
            next: next.map(|w| PageToken::Cursor(serde_json::to_string(&w).unwrap_or_default())),
        })
    }
}

/// Square inventory counts changed since the last run.
#[derive(Debug)]
pub struct SquareInventory {
    /// The merchant's client.
    pub client: SquareClient,
    /// Its connection.
    pub connection: Connection,
}

#[async_trait]
impl SnapshotStream for SquareInventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn page(&self, since: Option<Timestamp>, token: &PageToken) -> Result<Page, PullError> {
        let cursor = match token {
            PageToken::Cursor(c) => Some(c.as_str()),
            _ => None,
        };
        let page = self
            .client
            .batch_retrieve_inventory_counts(&[], since, cursor)
            .await?;
        let mut records = Vec::new();
        for c in &page.items {
            if let Some(level) = transform::count_to_level(c, &self.connection)? {
                records.push(Record::InventoryLevel(level));
            }
        }
        Ok(Page {
            records,
            next: page.cursor.map(PageToken::Cursor),
        })
    }
}

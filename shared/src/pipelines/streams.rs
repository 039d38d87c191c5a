//! The provider streams the pulls read, each a client plus a transform.

use super::pull::{Page, PageToken, PullError, SnapshotStream, WindowedStream};
use crate::model::{Connection, Record};
use crate::providers::marketman::MarketManClient;
use crate::providers::square::SquareClient;
use crate::providers::toast::{MAX_PAGE_SIZE, MAX_WINDOW, ToastClient};
use crate::transforms;
use async_trait::async_trait;
use jiff::{SignedDuration, Timestamp};

/// Toast orders by modified time (`ordersBulk`).
#[derive(Debug)]
pub struct ToastOrders {
    /// The restaurant's client.
    pub client: ToastClient,
    /// Its connection.
    pub connection: Connection,
}

#[async_trait]
impl WindowedStream for ToastOrders {
    fn name(&self) -> &'static str {
        "orders"
    }

    fn max_slice(&self) -> SignedDuration {
        MAX_WINDOW
    }

    async fn page(
        &self,
        start: Timestamp,
        end: Timestamp,
        token: &PageToken,
    ) -> Result<Page, PullError> {
        let n = match token {
            PageToken::Page(n) => *n,
            _ => 1,
        };
        let page = self
            .client
            .orders_bulk_page(start, end, n, MAX_PAGE_SIZE)
            .await?;
        let records = page
            .orders
            .iter()
            .map(|o| {
                transforms::toast::order_to_transaction(o, &self.connection)
                    .map(Record::Transaction)
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page {
            records,
            next: page.has_next.then_some(PageToken::Page(n + 1)),
        })
    }
}

/// Square payments by creation time (`ListPayments`).
#[derive(Debug)]
pub struct SquarePayments {
    /// The merchant's client.
    pub client: SquareClient,
    /// Its connection.
    pub connection: Connection,
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
        let cursor = match token {
            PageToken::Cursor(c) => Some(c.as_str()),
            _ => None,
        };
        let page = self.client.list_payments(start, end, None, cursor).await?;
        let mut records = Vec::new();
        for p in &page.items {
            records.extend(
                transforms::square::payment_to_transactions(p, &self.connection)?
                    .into_iter()
                    .map(Record::Transaction),
            );
        }
        Ok(Page {
            records,
            next: page.cursor.map(PageToken::Cursor),
        })
    }
}

/// Toast menus, whole.
#[derive(Debug)]
pub struct ToastMenus {
    /// The restaurant's client.
    pub client: ToastClient,
    /// Its connection.
    pub connection: Connection,
}

#[async_trait]
impl SnapshotStream for ToastMenus {
    fn name(&self) -> &'static str {
        "menus"
    }

    async fn page(&self, _since: Option<Timestamp>, _token: &PageToken) -> Result<Page, PullError> {
        let menus = self.client.menus().await?;
        let records = transforms::toast::menus_to_items(&menus, &self.connection)?
            .into_iter()
            .map(Record::MenuItem)
            .collect();
        Ok(Page {
            records,
            next: None,
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
            if let Some(level) = transforms::square::count_to_level(c, &self.connection)? {
                records.push(Record::InventoryLevel(level));
            }
        }
        Ok(Page {
            records,
            next: page.cursor.map(PageToken::Cursor),
        })
    }
}

/// MarketMan inventory items, `Take`/`Skip` page by page.
#[derive(Debug)]
pub struct MarketManInventory {
    /// The buyer's client.
    pub client: MarketManClient,
    /// Its connection.
    pub connection: Connection,
}

/// Items per MarketMan page (the documented example's `Take`).
pub const MARKETMAN_PAGE: u32 = 100;

#[async_trait]
impl SnapshotStream for MarketManInventory {
    fn name(&self) -> &'static str {
        "inventory"
    }

    async fn page(&self, _since: Option<Timestamp>, token: &PageToken) -> Result<Page, PullError> {
        let skip = match token {
            PageToken::Page(n) => *n,
            _ => 0,
        };
        let items = self.client.items_page(MARKETMAN_PAGE, skip).await?;
        let now = Timestamp::now();
        let records = items
            .iter()
            .map(|i| {
                transforms::marketman::item_to_level(i, &self.connection, now)
                    .map(Record::InventoryLevel)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let next = (items.len() as u32 == MARKETMAN_PAGE)
            .then_some(PageToken::Page(skip + MARKETMAN_PAGE));
        Ok(Page { records, next })
    }
}

//! MarketMan's stream: inventory items, `Take`/`Skip` page by page.

use super::client::MarketManClient;
use super::transform;
use crate::model::{Connection, Record};
use crate::providers::kit::{Page, PageToken, PullError, SnapshotStream};
use async_trait::async_trait;
use jiff::Timestamp;

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
            .map(|i| transform::item_to_level(i, &self.connection, now).map(Record::InventoryLevel))
            .collect::<Result<Vec<_>, _>>()?;
        let next = (items.len() as u32 == MARKETMAN_PAGE)
            .then_some(PageToken::Page(skip + MARKETMAN_PAGE));
        Ok(Page { records, next })
    }
}

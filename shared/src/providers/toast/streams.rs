//! Toast's streams: orders by modified time, menus whole.

use super::client::{MAX_PAGE_SIZE, MAX_WINDOW, ToastClient};
use super::transform;
use crate::model::{Connection, Record};
use crate::providers::kit::{Page, PageToken, PullError, SnapshotStream, WindowedStream};
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
        let mut records = Vec::new();
        for o in &page.orders {
            records.extend(
                transform::order_to_transactions(o, &self.connection)?
                    .into_iter()
                    .map(Record::Transaction),
            );
        }
        Ok(Page {
            records,
            next: page.has_next.then_some(PageToken::Page(n + 1)),
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
        let records = transform::menus_to_items(&menus, &self.connection)?
            .into_iter()
            .map(Record::MenuItem)
            .collect();
        Ok(Page {
            records,
            next: None,
        })
    }
}

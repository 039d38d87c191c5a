//! Machinery every sandbox shares: serving with droppable connections,
//! faults, rate limits, counters, tokens, and the wire formats of money and
//! time.

pub mod data;
pub mod faults;
pub(crate) mod gate;
pub(crate) mod http;
pub mod limits;
pub mod money;
pub mod record;
pub mod server;
pub mod stats;
pub mod time;
pub mod tokens;
pub mod truth;

pub use faults::Faults;
pub use limits::{Limit, WindowKind};
pub use server::{ServerHandle, StartError};
pub use stats::Counters;
pub use tokens::IssuedTokens;
pub use truth::Truth;

use std::time::Duration;

/// Largest request body the sandboxes read (Xero has its own, smaller cap).
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// The default observation window for [`Counters::max_calls_per_window`].
pub const OBSERVE_WINDOW: Duration = Duration::from_secs(60);

/// Implements the methods every sandbox handle has, for a handle with fields
/// `server: ServerHandle` and `app: Arc<App>` where `App` has `gate: Gate`.
macro_rules! common_handle {
    ($handle:ty) => {
        impl $handle {
            /// `http://127.0.0.1:<port>`, without a trailing slash.
            pub fn base_url(&self) -> String {
                self.server.base_url()
            }

            /// The bound address.
            pub fn addr(&self) -> std::net::SocketAddr {
                self.server.addr()
            }

            /// Replaces the injected faults.
            pub fn set_faults(&self, faults: $crate::common::Faults) {
                self.app.gate.set_faults(faults);
            }

            /// The injected faults now in force.
            pub fn faults(&self) -> $crate::common::Faults {
                self.app.gate.faults()
            }

            /// A snapshot of the counters.
            pub fn counters(&self) -> $crate::common::Counters {
                self.app.gate.counters()
            }

            /// Zeroes the counters and starts every rate window over.
            pub fn reset_counters(&self) {
                self.app.gate.reset();
            }

            /// Stops serving and waits for open connections to close.
            pub async fn shutdown(self) {
                self.server.shutdown().await;
            }
        }
    };
}
pub(crate) use common_handle;

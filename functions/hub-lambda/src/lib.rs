//! The Lambda side of the hub: turns Lambda events into library calls and
//! library answers into Lambda responses. Every function binary is a line
//! calling into here; everything else lives in `shared`.

pub mod connect;
pub mod events;
pub mod health;
pub mod intake;
pub mod pull;
pub mod push;
pub mod webhook;

use shared::{Config, Stores};

/// Cold start: read and validate the configuration, start logging, open the
/// stores. Fails with a message naming a bad or missing variable.
pub async fn cold_start() -> anyhow::Result<(Config, Stores)> {
    let config = Config::from_env()?;
    shared::telemetry::init(config.log_format);
    let stores = Stores::from_config(&config).await?;
    Ok((config, stores))
}

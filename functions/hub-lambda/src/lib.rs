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

/// An SQS record of a Lambda event as the queue port's received message.
pub fn sqs_message(record: &serde_json::Value) -> shared::ports::ReceivedMessage {
    use shared::ids::{MessageId, ReceiptHandle};
    let id = record["messageId"]
        .as_str()
        .filter(|i| !i.is_empty())
        .unwrap_or("unknown");
    shared::ports::ReceivedMessage {
        id: MessageId::new(id)
            .unwrap_or_else(|_| MessageId::new("unknown").unwrap_or_else(|_| unreachable!())),
        receipt: ReceiptHandle(
            record["receiptHandle"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        ),
        body: record["body"].as_str().unwrap_or_default().to_string(),
        receive_count: record["attributes"]["ApproximateReceiveCount"]
            .as_str()
            .and_then(|c| c.parse().ok())
            .unwrap_or(1),
        first_received_at: record["attributes"]["ApproximateFirstReceiveTimestamp"]
            .as_str()
            .and_then(|t| t.parse::<i64>().ok())
            .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok()),
    }
}

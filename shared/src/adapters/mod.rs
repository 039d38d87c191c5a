//! Adapters: the ports' implementations. `sqlite` and `file_secrets` are the
//! embedded backend (one process, one database file), compiled with the
//! `embedded` feature only (`hub` and the tests; the Lambda functions leave
//! it out); `aws` is production (DynamoDB, SQS, Secrets Manager).

pub mod aws;
#[cfg(feature = "embedded")]
pub mod file_secrets;
#[cfg(feature = "embedded")]
pub mod sqlite;

pub(crate) fn millis(ts: jiff::Timestamp) -> i64 {
    ts.as_millisecond()
}

pub(crate) fn from_millis(ms: i64) -> Result<jiff::Timestamp, crate::ports::StoreError> {
    jiff::Timestamp::from_millisecond(ms)
        .map_err(|e| crate::ports::StoreError::corrupt("timestamp", e))
}

//! Identifier newtypes. Every id the hub passes around has its own type, so a
//! tenant id cannot be handed where a realm id is expected.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Why a string was refused as an identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid {kind}: {reason}")]
pub struct InvalidId {
    /// Which identifier type refused it.
    pub kind: &'static str,
    /// What is wrong with it.
    pub reason: String,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// Checks and wraps `value`: it must be non-empty, at most 256 bytes,
            /// and free of control characters and `#` (the store's key separator).
            pub fn new(value: impl Into<String>) -> Result<Self, InvalidId> {
                let value = value.into();
                let reason = if value.is_empty() {
                    Some("empty".to_string())
                } else if value.len() > 256 {
                    Some(format!("{} bytes, at most 256", value.len()))
                } else if value.chars().any(|c| c.is_control() || c == '#') {
                    Some("contains a control character or '#'".to_string())
                } else {
                    None
                };
                match reason {
                    Some(reason) => Err(InvalidId { kind: stringify!($name), reason }),
                    None => Ok(Self(value)),
                }
            }

            /// The identifier as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidId;
            fn try_from(value: String) -> Result<Self, Self::Error> {
                Self::new(value)
            }
        }

        impl From<$name> for String {
            fn from(value: $name) -> String {
                value.0
            }
        }

        impl std::str::FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::new(s)
            }
        }
    };
}

string_id!(
    /// A restaurant group using the hub.
    TenantId
);
string_id!(
    /// One connection of a tenant to one provider account.
    ConnectionId
);
string_id!(
    /// The provider's own account id: Toast restaurant GUID, Square merchant id,
    /// QuickBooks realm id, Xero tenant id, MarketMan buyer GUID.
    ProviderAccountId
);
string_id!(
    /// The id of a record in the provider's system (order guid, payment id, ...).
    ExternalId
);
string_id!(
    /// The provider's id of one webhook event, or the hub's derived key where the
    /// provider gives none.
    EventId
);
string_id!(
    /// The name of a secret, relative to the hub's secret prefix.
    SecretName
);
string_id!(
    /// A named stream of a provider that a pull walks with its own cursor
    /// (`orders`, `payments`, `menus`, ...).
    StreamName
);
string_id!(
    /// A key claimed in the idempotency store.
    IdempotencyKey
);
string_id!(
    /// A queue message id, as given by the queue.
    MessageId
);

/// The handle a receiver uses to delete or delay the message it received.
/// It changes with every receive, so it is not an identifier of the message.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ReceiptHandle(pub String);

impl ReceiptHandle {
    /// The handle as a string slice.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_refuse_empty_separator_and_control_characters() {
        assert!(TenantId::new("").is_err());
        assert!(TenantId::new("a#b").is_err());
        assert!(TenantId::new("a\nb").is_err());
        assert!(TenantId::new("x".repeat(257)).is_err());
        assert_eq!(
            TenantId::new("bistro-group").unwrap().as_str(),
            "bistro-group"
        );
    }

    #[test]
    fn ids_deserialize_through_validation() {
        let ok: TenantId = serde_json::from_str("\"t1\"").unwrap();
        assert_eq!(ok.to_string(), "t1");
        let err = serde_json::from_str::<TenantId>("\"\"").unwrap_err();
        assert!(err.to_string().contains("TenantId"), "{err}");
    }
}

//! Identifiers: client-chosen strings matching `[A-Za-z0-9_-]{1,64}`.

use serde::{Deserialize, Serialize};
use std::fmt;
// Ids are shared, not copied: a payment's id travels through its events, steps,
// replies and records, and cloning an `Arc<str>` is a counter increment where a
// `String` was an allocation and a copy (a quarter of a payment's CPU).
use std::sync::Arc;

/// Longest identifier accepted, in bytes (docs/API.md: `[A-Za-z0-9_-]{1,64}`).
pub const ID_LENGTH_MAX: usize = 64;

/// Why a string is not a valid identifier.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdError {
    #[error("must not be empty")]
    Empty,
    #[error("must be at most {ID_LENGTH_MAX} characters")]
    TooLong,
    #[error("may only contain A-Z, a-z, 0-9, '_' and '-'")]
    InvalidCharacter,
}

fn check_id(raw: &str) -> Result<(), IdError> {
    if raw.is_empty() {
        return Err(IdError::Empty);
    }
    if raw.len() > ID_LENGTH_MAX {
        return Err(IdError::TooLong);
    }
    if !raw
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    {
        return Err(IdError::InvalidCharacter);
    }
    Ok(())
}

macro_rules! id_type {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses a client-supplied identifier.
            pub fn parse(raw: &str) -> Result<Self, IdError> {
                check_id(raw)?;
                Ok(Self(raw.into()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({:?})", stringify!($name), self.0)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}

id_type!(
    /// An account's id; routes the account to its shard.
    AccountId
);
id_type!(
    /// A payment's id; routes the payment (and its saga) to its shard.
    PaymentId
);
id_type!(
    /// An item's stock-keeping unit; routes the item and its reservations.
    Sku
);
id_type!(
    /// A reservation's id, unique within its item.
    ReservationId
);
impl ReservationId {
    /// The reservation an order holds for one of its lines. The `~` cannot occur in
    /// a client's id, so it never collides with a client's own reservation, and a
    /// client cannot name (and so cannot commit or release) an order's stock.
    pub fn for_order_line(order: &OrderId, line: u16) -> Self {
        Self(format!("{order}~{line}").into())
    }
}

id_type!(
    /// An order's id; routes the order (and its saga) to its shard.
    OrderId
);
id_type!(
    /// The id of a non-creating operation (deposit, withdrawal, capture, ...), used for
    /// idempotent replay.
    OpId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_accept_the_documented_alphabet_and_length() {
        assert!(AccountId::parse("acc_1-A").is_ok());
        assert!(AccountId::parse(&"a".repeat(64)).is_ok());
        assert_eq!(AccountId::parse(""), Err(IdError::Empty));
        assert_eq!(AccountId::parse(&"a".repeat(65)), Err(IdError::TooLong));
        assert_eq!(AccountId::parse("a b"), Err(IdError::InvalidCharacter));
        assert_eq!(AccountId::parse("é"), Err(IdError::InvalidCharacter));
    }
}

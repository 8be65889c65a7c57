//! Domain types parsed at the edge: the shard never sees a raw string or a JSON value.
//!
//! Every type here has a `parse` that fails with a message a client can act on, so
//! that once a value exists it is known to be valid ("parse, don't validate").

mod ids;
mod money;
mod quantity;

pub use ids::{AccountId, IdError, OpId, OrderId, PaymentId, ReservationId, Sku, ID_LENGTH_MAX};
pub use money::{format_money, parse_non_negative, Amount, Currency, MoneyError};
pub use quantity::{Quantity, QuantityError};

/// Milliseconds since the Unix epoch, as read from the shard's injected clock.
pub type TimestampMs = u64;

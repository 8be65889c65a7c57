//! Business outcomes that refuse a command: expected, never logged as errors.

use serde::{Deserialize, Serialize};

/// Every way a shard can refuse a command. Each variant is an error code of
/// docs/API.md; the HTTP front maps it to a status with [`Rejection::http_status`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Rejection {
    AccountNotFound,
    AccountExists,
    CurrencyMismatch,
    InsufficientFunds,
    SameAccount,
    PaymentNotFound,
    PaymentNotAuthorized,
    AmountExceedsAuthorization,
    ItemNotFound,
    ItemExists,
    OutOfStock,
    ReservationNotFound,
    ReservationExpired,
    ReservationReleased,
    ReservationCommitted,
    OrderNotFound,
    /// The order is final (or its outcome is already decided) and cannot be cancelled.
    OrderAlreadyFinal,
    /// The same operation id (or idempotency key) was used with a different body.
    IdempotencyConflict,
    /// The amount has more decimals than the account's or item's currency allows
    /// (only knowable on the shard, since the request names no currency).
    InvalidAmount,
    /// A balance or stock counter would leave its representable range.
    LimitExceeded,
}

impl Rejection {
    /// The binding error code of docs/API.md.
    pub fn code(self) -> &'static str {
        match self {
            Rejection::AccountNotFound => "account_not_found",
            Rejection::AccountExists => "account_exists",
            Rejection::CurrencyMismatch => "currency_mismatch",
            Rejection::InsufficientFunds => "insufficient_funds",
            Rejection::SameAccount => "same_account",
            Rejection::PaymentNotFound => "payment_not_found",
            Rejection::PaymentNotAuthorized => "payment_not_authorized",
            Rejection::AmountExceedsAuthorization => "amount_exceeds_authorization",
            Rejection::ItemNotFound => "item_not_found",
            Rejection::ItemExists => "item_exists",
            Rejection::OutOfStock => "out_of_stock",
            Rejection::ReservationNotFound => "reservation_not_found",
            Rejection::ReservationExpired => "reservation_expired",
            Rejection::ReservationReleased => "reservation_released",
            Rejection::ReservationCommitted => "reservation_committed",
            Rejection::OrderNotFound => "order_not_found",
            Rejection::OrderAlreadyFinal => "order_already_final",
            Rejection::IdempotencyConflict => "idempotency_conflict",
            Rejection::InvalidAmount => "invalid_amount",
            Rejection::LimitExceeded => "limit_exceeded",
        }
    }

    /// The HTTP status docs/API.md gives this outcome.
    pub fn http_status(self) -> u16 {
        match self {
            Rejection::AccountNotFound
            | Rejection::PaymentNotFound
            | Rejection::ItemNotFound
            | Rejection::ReservationNotFound
            | Rejection::OrderNotFound => 404,
            Rejection::AccountExists
            | Rejection::ItemExists
            | Rejection::OutOfStock
            | Rejection::PaymentNotAuthorized
            | Rejection::ReservationExpired
            | Rejection::ReservationReleased
            | Rejection::ReservationCommitted
            | Rejection::OrderAlreadyFinal
            | Rejection::IdempotencyConflict => 409,
            Rejection::CurrencyMismatch
            | Rejection::InsufficientFunds
            | Rejection::SameAccount
            | Rejection::AmountExceedsAuthorization
            | Rejection::LimitExceeded
            // Well formed, but more decimals than the currency of the account
            // or payment on the shard allows.
            | Rejection::InvalidAmount => 422,
        }
    }

    /// A short human-readable sentence for the problem's `title`.
    pub fn title(self) -> &'static str {
        match self {
            Rejection::AccountNotFound => "Account not found",
            Rejection::AccountExists => "An account with this id exists with different fields",
            Rejection::CurrencyMismatch => "Currency does not match the account or item",
            Rejection::InsufficientFunds => "Insufficient funds",
            Rejection::SameAccount => "A payment needs two different accounts",
            Rejection::PaymentNotFound => "Payment not found",
            Rejection::PaymentNotAuthorized => "Payment is not in the authorized state",
            Rejection::AmountExceedsAuthorization => "Amount exceeds the authorized amount",
            Rejection::ItemNotFound => "Item not found",
            Rejection::ItemExists => "An item with this sku exists with different fields",
            Rejection::OutOfStock => "Not enough stock available",
            Rejection::ReservationNotFound => "Reservation not found",
            Rejection::ReservationExpired => "Reservation has expired",
            Rejection::ReservationReleased => "Reservation was released",
            Rejection::ReservationCommitted => "Reservation was already committed",
            Rejection::OrderNotFound => "Order not found",
            Rejection::OrderAlreadyFinal => "Order is already final",
            Rejection::IdempotencyConflict => {
                "This id or idempotency key was already used with a different body"
            }
            Rejection::InvalidAmount => "Amount has more decimals than the currency allows",
            Rejection::LimitExceeded => "The result would exceed a configured limit",
        }
    }
}

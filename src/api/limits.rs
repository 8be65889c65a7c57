//! Input limits the HTTP front enforces before anything reaches a shard.

use rust_decimal::Decimal;

/// Most payments in one `POST /v1/payments/batch` (docs/API.md: up to 8190 items).
/// The one definition of this limit: the server's default (`ApiLimits`,
/// `limits.payments_batch_max` in `config/default.toml`, checked against it by a
/// test) and the bench client's largest `--batch-size` both come from here. The
/// engine itself has no such limit; it is the API's.
pub const PAYMENTS_PER_BATCH_MAX: usize = 8190;

/// Bounds on what a request may ask for; each is a configuration setting.
#[derive(Debug, Clone)]
pub struct ApiLimits {
    /// Largest amount (payment, deposit, price, overdraft) accepted.
    pub amount_max: Decimal,
    /// Largest quantity in one reservation or restock.
    pub quantity_max: u32,
    /// Largest initial stock of an item.
    pub stock_max: u64,
    pub hold_timeout_ms_default: u64,
    pub hold_timeout_ms_max: u64,
    pub reservation_ttl_ms_default: u64,
    pub reservation_ttl_ms_max: u64,
    /// Most payments in one `POST /v1/payments/batch` (default
    /// [`PAYMENTS_PER_BATCH_MAX`]).
    pub payments_batch_max: usize,
    /// How long `POST /v1/orders` waits for a final state when the client says not.
    pub order_wait_ms_default: u64,
    /// Longest `wait_ms` a client may ask for (below the engine's reply timeout).
    pub order_wait_ms_max: u64,
}

impl Default for ApiLimits {
    fn default() -> Self {
        Self {
            amount_max: Decimal::from(1_000_000_000u64),
            quantity_max: 1_000_000,
            stock_max: 1_000_000_000,
            hold_timeout_ms_default: 7 * 24 * 60 * 60 * 1000,
            hold_timeout_ms_max: 30 * 24 * 60 * 60 * 1000,
            reservation_ttl_ms_default: 15 * 60 * 1000,
            reservation_ttl_ms_max: 24 * 60 * 60 * 1000,
            payments_batch_max: PAYMENTS_PER_BATCH_MAX,
            order_wait_ms_default: 2_000,
            order_wait_ms_max: 5_000,
        }
    }
}

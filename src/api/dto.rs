//! The JSON (and MessagePack) shapes of docs/API.md, and their parsing into engine
//! commands. Everything a client sends is turned into domain types here; a field
//! that does not parse is a 400 naming that field.

use super::limits::ApiLimits;
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use surge_actors::command::{
    AccountView, BalanceChangeView, ItemView, OrderView, PaymentView, ReservationView,
};
use surge_actors::domain::{
    format_money, parse_non_negative, AccountId, Amount, Currency, OpId, OrderId, PaymentId,
    Quantity, ReservationId, Sku,
};
use surge_actors::order::{OrderLine, OrderTerms, ORDER_LINES_MAX};
use surge_actors::Command;
use utoipa::ToSchema;

/// A field of the request that is wrong, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub param: String,
    pub detail: String,
}

impl FieldError {
    pub fn new(param: &str, detail: impl std::fmt::Display) -> Self {
        Self {
            param: param.to_owned(),
            detail: format!("{param}: {detail}"),
        }
    }
}

pub type Parsed<T> = Result<T, FieldError>;

fn field<T, E: std::fmt::Display>(param: &str, result: Result<T, E>) -> Parsed<T> {
    result.map_err(|error| FieldError::new(param, error))
}

/// Parses an id, or makes one (a UUID without dashes) when the client sent none.
fn id_or_new<T>(
    param: &str,
    raw: &Option<String>,
    parse: fn(&str) -> Result<T, surge_actors::domain::IdError>,
) -> Parsed<T> {
    match raw {
        Some(raw) => field(param, parse(raw)),
        None => {
            let generated = uuid::Uuid::new_v4().simple().to_string();
            // A UUID's hex form always matches the id alphabet.
            Ok(parse(&generated).unwrap_or_else(|_| unreachable!("uuid is a valid id")))
        }
    }
}

/// Counts and durations as JSON Schema has integers: a number without a
/// fraction, however it is written. `3`, `3.0` and `3e0` are the integer 3 to
/// the OpenAPI document and so to the server; `3.5`, `-1` and what does not fit
/// a `u64` are refused.
mod whole {
    use serde::de::{self, Deserializer, Unexpected, Visitor};
    use serde::Deserialize;

    /// Above every `u64` (2^64, exact as an `f64`).
    const U64_END: f64 = 18_446_744_073_709_551_616.0;

    pub fn number<'de, D: Deserializer<'de>>(deserializer: D) -> Result<u64, D::Error> {
        deserializer.deserialize_any(WholeVisitor)
    }

    pub fn optional<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<u64>, D::Error> {
        Ok(Option::<Whole>::deserialize(deserializer)?.map(|whole| whole.0))
    }

    struct Whole(u64);

    impl<'de> Deserialize<'de> for Whole {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
            deserializer.deserialize_any(WholeVisitor).map(Whole)
        }
    }

    struct WholeVisitor;

    impl Visitor<'_> for WholeVisitor {
        type Value = u64;

        fn expecting(&self, formatter: &mut std::fmt::Formatter) -> std::fmt::Result {
            formatter.write_str("a whole number from 0 to 18446744073709551615")
        }

        fn visit_u64<E: de::Error>(self, value: u64) -> Result<u64, E> {
            Ok(value)
        }

        fn visit_i64<E: de::Error>(self, value: i64) -> Result<u64, E> {
            u64::try_from(value).map_err(|_| E::invalid_value(Unexpected::Signed(value), &self))
        }

        fn visit_f64<E: de::Error>(self, value: f64) -> Result<u64, E> {
            if value.fract() == 0.0 && (0.0..U64_END).contains(&value) {
                Ok(value as u64)
            } else {
                Err(E::invalid_value(Unexpected::Float(value), &self))
            }
        }
    }
}

pub fn format_time(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Millis, true)
}

// ---------------------------------------------------------------- accounts

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateAccountRequest {
    pub id: Option<String>,
    /// ISO 4217 code, e.g. "USD".
    pub currency: String,
    /// Decimal string; defaults to "0".
    pub overdraft_limit: Option<String>,
}

impl CreateAccountRequest {
    pub fn parse(&self, limits: &ApiLimits) -> Parsed<Command> {
        let currency = field("currency", Currency::parse(&self.currency))?;
        let overdraft_limit = match &self.overdraft_limit {
            Some(raw) => field(
                "overdraft_limit",
                parse_non_negative(raw, currency, limits.amount_max),
            )?,
            None => rust_decimal::Decimal::ZERO,
        };
        Ok(Command::CreateAccount {
            id: id_or_new("id", &self.id, AccountId::parse)?,
            currency,
            overdraft_limit,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AccountJson {
    pub id: String,
    pub currency: String,
    pub balance: String,
    pub held: String,
    pub available: String,
    pub overdraft_limit: String,
    pub version: u64,
    pub created_at: String,
}

impl From<&AccountView> for AccountJson {
    fn from(view: &AccountView) -> Self {
        let money = |value| format_money(value, view.currency);
        Self {
            id: view.id.to_string(),
            currency: view.currency.code().to_owned(),
            balance: money(view.balance),
            held: money(view.held),
            available: money(view.available),
            overdraft_limit: money(view.overdraft_limit),
            version: view.version,
            created_at: format_time(view.created_at),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BalanceChangeRequest {
    pub id: Option<String>,
    /// Positive decimal string in the account's currency.
    pub amount: String,
    /// Optional: when given, must be the account's currency.
    pub currency: Option<String>,
}

impl BalanceChangeRequest {
    /// `key_id` is the id derived from an `Idempotency-Key` header, if any.
    pub fn parse(
        &self,
        account: AccountId,
        key_id: Option<OpId>,
        withdraw: bool,
        limits: &ApiLimits,
    ) -> Parsed<Command> {
        let amount = field("amount", Amount::parse(&self.amount, limits.amount_max))?;
        let currency = match &self.currency {
            Some(code) => Some(field("currency", Currency::parse(code))?),
            None => None,
        };
        let replayable = self.id.is_some() || key_id.is_some();
        let id = match key_id {
            Some(id) if self.id.is_none() => id,
            _ => id_or_new("id", &self.id, OpId::parse)?,
        };
        Ok(if withdraw {
            Command::Withdraw {
                account,
                id,
                amount,
                currency,
                replayable,
            }
        } else {
            Command::Deposit {
                account,
                id,
                amount,
                currency,
                replayable,
            }
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct BalanceChangeJson {
    pub id: String,
    pub account: String,
    pub amount: String,
    pub balance: String,
}

impl From<&BalanceChangeView> for BalanceChangeJson {
    fn from(view: &BalanceChangeView) -> Self {
        Self {
            id: view.id.to_string(),
            account: view.account.to_string(),
            amount: format_money(view.amount, view.currency),
            balance: format_money(view.balance, view.currency),
        }
    }
}

// ---------------------------------------------------------------- payments

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePaymentRequest {
    pub id: Option<String>,
    pub from: String,
    pub to: String,
    pub amount: String,
    pub currency: String,
    /// true (default): settle now; false: authorize (hold) for a later capture.
    pub capture: Option<bool>,
    #[serde(default, deserialize_with = "whole::optional")]
    pub hold_timeout_ms: Option<u64>,
}

impl CreatePaymentRequest {
    pub fn parse(&self, key_id: Option<PaymentId>, limits: &ApiLimits) -> Parsed<Command> {
        let currency = field("currency", Currency::parse(&self.currency))?;
        let amount = field("amount", Amount::parse(&self.amount, limits.amount_max))?;
        field("amount", amount.check_scale(currency))?;
        let hold_timeout_ms = self
            .hold_timeout_ms
            .unwrap_or(limits.hold_timeout_ms_default);
        if hold_timeout_ms == 0 || hold_timeout_ms > limits.hold_timeout_ms_max {
            return Err(FieldError::new(
                "hold_timeout_ms",
                format!("must be between 1 and {}", limits.hold_timeout_ms_max),
            ));
        }
        let id = match key_id {
            Some(id) if self.id.is_none() => id,
            _ => id_or_new("id", &self.id, PaymentId::parse)?,
        };
        if id.as_str() == super::constraints::RESERVED_PAYMENT_ID {
            return Err(FieldError::new(
                "id",
                "\"batch\" is reserved: GET /v1/payments/batch is not a payment's path",
            ));
        }
        Ok(Command::CreatePayment {
            id,
            from: field("from", AccountId::parse(&self.from))?,
            to: field("to", AccountId::parse(&self.to))?,
            amount,
            currency,
            capture: self.capture.unwrap_or(true),
            hold_timeout_ms,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CaptureRequest {
    /// At most the authorized amount; the rest is released. Default: all of it.
    pub amount: Option<String>,
}

#[derive(Debug, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PaymentsBatchRequest {
    pub payments: Vec<CreatePaymentRequest>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct PaymentsBatchResponse {
    pub results: Vec<BatchResult>,
}

/// One payment's outcome in a batch, in request order.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct BatchResult {
    pub id: Option<String>,
    /// A payment status, or "error" when this item was not processed.
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentJson {
    pub id: String,
    pub from: String,
    pub to: String,
    pub amount: String,
    pub captured_amount: String,
    pub currency: String,
    /// settled | authorized | captured | voided | expired | rejected
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub code: Option<String>,
    pub created_at: String,
    pub updated_at: String,
}

impl From<&PaymentView> for PaymentJson {
    fn from(view: &PaymentView) -> Self {
        let money = |value| format_money(value, view.currency);
        Self {
            id: view.id.to_string(),
            from: view.from.to_string(),
            to: view.to.to_string(),
            amount: money(view.amount),
            captured_amount: money(view.captured_amount),
            currency: view.currency.code().to_owned(),
            status: view.status.as_str().to_owned(),
            code: view.code.map(|c| c.code().to_owned()),
            created_at: format_time(view.created_at),
            updated_at: format_time(view.updated_at),
        }
    }
}

// ---------------------------------------------------------------- items

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateItemRequest {
    pub sku: String,
    pub price: String,
    pub currency: String,
    /// Initial stock (may be 0).
    #[serde(deserialize_with = "whole::number")]
    pub stock: u64,
}

impl CreateItemRequest {
    pub fn parse(&self, limits: &ApiLimits) -> Parsed<Command> {
        let currency = field("currency", Currency::parse(&self.currency))?;
        let price = field("price", Amount::parse(&self.price, limits.amount_max))?;
        field("price", price.check_scale(currency))?;
        if self.stock > limits.stock_max {
            return Err(FieldError::new(
                "stock",
                format!("must be at most {}", limits.stock_max),
            ));
        }
        Ok(Command::CreateItem {
            sku: field("sku", Sku::parse(&self.sku))?,
            price,
            currency,
            stock: self.stock,
        })
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RestockRequest {
    #[serde(deserialize_with = "whole::number")]
    pub quantity: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReserveRequest {
    pub id: Option<String>,
    #[serde(deserialize_with = "whole::number")]
    pub quantity: u64,
    /// How long the hold lasts; the engine releases it after that.
    #[serde(default, deserialize_with = "whole::optional")]
    pub ttl_ms: Option<u64>,
}

impl ReserveRequest {
    pub fn parse(
        &self,
        sku: Sku,
        key_id: Option<ReservationId>,
        limits: &ApiLimits,
    ) -> Parsed<Command> {
        let quantity = field(
            "quantity",
            Quantity::parse(self.quantity, limits.quantity_max),
        )?;
        let ttl_ms = self.ttl_ms.unwrap_or(limits.reservation_ttl_ms_default);
        if ttl_ms == 0 || ttl_ms > limits.reservation_ttl_ms_max {
            return Err(FieldError::new(
                "ttl_ms",
                format!("must be between 1 and {}", limits.reservation_ttl_ms_max),
            ));
        }
        let id = match key_id {
            Some(id) if self.id.is_none() => id,
            _ => id_or_new("id", &self.id, ReservationId::parse)?,
        };
        Ok(Command::Reserve {
            sku,
            id,
            quantity,
            ttl_ms,
        })
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ItemJson {
    pub sku: String,
    pub price: String,
    pub currency: String,
    pub on_hand: u64,
    pub reserved: u64,
    pub available: u64,
    pub version: u64,
}

impl From<&ItemView> for ItemJson {
    fn from(view: &ItemView) -> Self {
        Self {
            sku: view.sku.to_string(),
            price: format_money(view.price, view.currency),
            currency: view.currency.code().to_owned(),
            on_hand: view.on_hand,
            reserved: view.reserved,
            available: view.available,
            version: view.version,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ReservationJson {
    pub id: String,
    pub sku: String,
    pub quantity: u32,
    /// held | committed | released | expired
    pub status: String,
    pub expires_at: String,
}

impl From<&ReservationView> for ReservationJson {
    fn from(view: &ReservationView) -> Self {
        Self {
            id: view.id.to_string(),
            sku: view.sku.to_string(),
            quantity: view.quantity,
            status: view.status.as_str().to_owned(),
            expires_at: format_time(view.expires_at),
        }
    }
}

// ---------------------------------------------------------------- orders

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct OrderLineRequest {
    pub sku: String,
    #[serde(deserialize_with = "whole::number")]
    pub quantity: u64,
}

#[derive(Debug, Clone, Deserialize, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateOrderRequest {
    pub id: Option<String>,
    /// The payer.
    pub account: String,
    /// Who receives the total once the order is confirmed.
    pub merchant: String,
    /// 1 to 50 lines.
    pub lines: Vec<OrderLineRequest>,
    /// How long to wait for a final state before answering 202 with the order as
    /// it stands (default and maximum from configuration).
    #[serde(default, deserialize_with = "whole::optional")]
    pub wait_ms: Option<u64>,
}

impl CreateOrderRequest {
    pub fn parse(&self, key_id: Option<OrderId>, limits: &ApiLimits) -> Parsed<Command> {
        let account = field("account", AccountId::parse(&self.account))?;
        let merchant = field("merchant", AccountId::parse(&self.merchant))?;
        if self.lines.is_empty() || self.lines.len() > ORDER_LINES_MAX {
            return Err(FieldError::new(
                "lines",
                format!("an order has 1 to {ORDER_LINES_MAX} lines"),
            ));
        }
        let lines = self
            .lines
            .iter()
            .enumerate()
            .map(|(index, line)| {
                Ok(OrderLine {
                    sku: field(&format!("lines[{index}].sku"), Sku::parse(&line.sku))?,
                    quantity: field(
                        &format!("lines[{index}].quantity"),
                        Quantity::parse(line.quantity, limits.quantity_max),
                    )?,
                })
            })
            .collect::<Parsed<Vec<_>>>()?;
        let wait_ms = self.wait_ms.unwrap_or(limits.order_wait_ms_default);
        if wait_ms > limits.order_wait_ms_max {
            return Err(FieldError::new(
                "wait_ms",
                format!("must be at most {}", limits.order_wait_ms_max),
            ));
        }
        let id = match key_id {
            Some(id) if self.id.is_none() => id,
            _ => id_or_new("id", &self.id, OrderId::parse)?,
        };
        Ok(Command::CreateOrder {
            id,
            terms: OrderTerms {
                account,
                merchant,
                lines,
            },
            wait_ms,
        })
    }
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderLineJson {
    pub sku: String,
    pub quantity: u32,
    /// The item's price; null until the item's shard has answered.
    pub unit_price: Option<String>,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderHistoryJson {
    pub status: String,
    pub at: String,
}

#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct OrderJson {
    pub id: String,
    pub account: String,
    pub merchant: String,
    pub lines: Vec<OrderLineJson>,
    /// Sum of the lines; null until every line is reserved and priced.
    pub total: Option<String>,
    /// The items' currency; null until an item has answered.
    pub currency: Option<String>,
    /// pending | reserved | authorized | confirmed | rejected | cancelled | expired
    pub status: String,
    /// Why a rejected order was rejected: out_of_stock, insufficient_funds,
    /// account_not_found, item_not_found, currency_mismatch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    pub history: Vec<OrderHistoryJson>,
    pub created_at: String,
}

impl From<&OrderView> for OrderJson {
    fn from(view: &OrderView) -> Self {
        let money = |value| match view.currency {
            Some(currency) => format_money(value, currency),
            None => value.to_string(),
        };
        Self {
            id: view.id.to_string(),
            account: view.account.to_string(),
            merchant: view.merchant.to_string(),
            lines: view
                .lines
                .iter()
                .map(|line| OrderLineJson {
                    sku: line.sku.to_string(),
                    quantity: line.quantity,
                    unit_price: line.unit_price.map(money),
                })
                .collect(),
            total: view.total.map(money),
            currency: view.currency.map(|c| c.code().to_owned()),
            status: view.status.as_str().to_owned(),
            reason: view.reason.map(|r| r.code().to_owned()),
            history: view
                .history
                .iter()
                .map(|(status, at)| OrderHistoryJson {
                    status: status.as_str().to_owned(),
                    at: format_time(*at),
                })
                .collect(),
            created_at: format_time(view.created_at),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_whole_numbers_however_written() {
        let reserve = |body: &str| serde_json::from_str::<ReserveRequest>(body);
        for (body, quantity, ttl_ms) in [
            (r#"{"quantity": 3}"#, 3, None),
            (r#"{"quantity": 3.0, "ttl_ms": 60000.0}"#, 3, Some(60_000)),
            (r#"{"quantity": 3e0, "ttl_ms": null}"#, 3, None),
            (r#"{"quantity": 18446744073709551615}"#, u64::MAX, None),
        ] {
            let parsed = reserve(body).unwrap_or_else(|e| panic!("{body}: {e}"));
            assert_eq!(
                (parsed.quantity, parsed.ttl_ms),
                (quantity, ttl_ms),
                "{body}"
            );
        }
        for body in [
            r#"{"quantity": 3.5}"#,
            r#"{"quantity": -1}"#,
            r#"{"quantity": 18446744073709551616}"#,
            r#"{"quantity": 1e20}"#,
            r#"{"quantity": "3"}"#,
            r#"{"quantity": 1, "ttl_ms": -1.0}"#,
        ] {
            assert!(reserve(body).is_err(), "{body} must be refused");
        }
        let packed = rmp_serde::to_vec_named(&serde_json::json!({"quantity": 4.0})).unwrap();
        let parsed: ReserveRequest = rmp_serde::from_slice(&packed).unwrap();
        assert_eq!(parsed.quantity, 4);
    }
}

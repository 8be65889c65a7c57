//! What the server refuses, written into the served OpenAPI document, so that a
//! client generated from it knows before sending a request whether it will be
//! taken. Each constraint mirrors a check made elsewhere (`dto.rs`, the
//! handlers, `surge_actors::domain`), with the configured limits: ids and SKUs,
//! ISO 4217 currencies with minor units, money as a plain decimal string with
//! at most the currency's decimals and at most `limits.amount_max`, quantities,
//! timeouts, lines per order and payments per batch, `Idempotency-Key`, the
//! feed's handshake headers and the audit trail's query.
//!
//! Where the decimals allowed depend on the currency named in the same body (a
//! payment, an item's price, an account's overdraft limit), the body's schema
//! is a `oneOf` with one variant per number of decimals, each listing its
//! currencies. Where only the account or payment on the shard knows the
//! currency (deposits, withdrawals, captures), the pattern allows the most
//! decimals any currency has, and the shard answers 422 `invalid_amount`.
//!
//! The items of a batch keep only their JSON types: a value that is the right
//! type but not valid is refused per item (`rejected`, `invalid_request`) in a
//! 200, not with a 400 for the batch (docs/API.md, "Batch results").

use super::limits::ApiLimits;
use serde_json::{json, Map, Value};
use surge_actors::domain::{Currency, ID_LENGTH_MAX};
use surge_actors::order::ORDER_LINES_MAX;

/// The one payment id that `GET /v1/payments/{id}` cannot read: the concrete
/// path `/v1/payments/batch` is matched before the template (OpenAPI's rule),
/// so the server refuses it as the id of a payment.
pub const RESERVED_PAYMENT_ID: &str = "batch";

/// Operations that take `Idempotency-Key` (docs/API.md, "Idempotency").
const IDEMPOTENT: [(&str, &str); 12] = [
    ("post", "/v1/accounts"),
    ("post", "/v1/accounts/{id}/deposits"),
    ("post", "/v1/accounts/{id}/withdrawals"),
    ("post", "/v1/payments"),
    ("post", "/v1/payments/{id}/capture"),
    ("post", "/v1/payments/{id}/void"),
    ("post", "/v1/items/{sku}/restock"),
    ("post", "/v1/items/{sku}/reservations"),
    ("post", "/v1/items/{sku}/reservations/{id}/commit"),
    ("post", "/v1/items/{sku}/reservations/{id}/release"),
    ("post", "/v1/orders"),
    ("post", "/v1/orders/{id}/cancel"),
];

/// The media types every request body may be sent as (`body::Encoding`).
const MESSAGE_PACK: &str = "application/msgpack";

/// `document` with every constraint the server enforces made explicit.
pub fn with_constraints(mut document: Value, limits: &ApiLimits) -> Value {
    if let Some(schemas) = document
        .pointer_mut("/components/schemas")
        .and_then(Value::as_object_mut)
    {
        constrain_bodies(schemas, limits);
    }
    if let Some(paths) = document.get_mut("paths").and_then(Value::as_object_mut) {
        for (path, item) in paths.iter_mut() {
            let Some(item) = item.as_object_mut() else {
                continue;
            };
            for (method, operation) in item.iter_mut() {
                constrain_operation(path, method, operation);
            }
        }
    }
    document
}

// ------------------------------------------------------------------ bodies

/// What each field of each request body accepts beyond its JSON type; money
/// whose scale follows a currency in the same body is left to `by_scale`.
fn field_constraints(limits: &ApiLimits) -> Vec<(&'static str, &'static str, Value)> {
    let id = id_schema;
    let all = Currency::all();
    let currency = || json!({"enum": codes(all.iter().copied())});
    let scale_max = scale_max();
    let any_scale_amount = || money(scale_max, limits, false);
    let between = |low: u64, high: u64| json!({"minimum": low, "maximum": high});
    let mut payment_id = id();
    payment_id["not"] = json!({"const": RESERVED_PAYMENT_ID});
    vec![
        ("CreateAccountRequest", "id", id()),
        ("BalanceChangeRequest", "id", id()),
        ("BalanceChangeRequest", "amount", any_scale_amount()),
        ("BalanceChangeRequest", "currency", currency()),
        ("CreatePaymentRequest", "id", payment_id),
        ("CreatePaymentRequest", "from", id()),
        ("CreatePaymentRequest", "to", id()),
        (
            "CreatePaymentRequest",
            "hold_timeout_ms",
            between(1, limits.hold_timeout_ms_max),
        ),
        ("CaptureRequest", "amount", any_scale_amount()),
        ("CreateItemRequest", "sku", id()),
        ("CreateItemRequest", "stock", between(0, limits.stock_max)),
        (
            "RestockRequest",
            "quantity",
            between(1, u64::from(limits.quantity_max)),
        ),
        ("ReserveRequest", "id", id()),
        (
            "ReserveRequest",
            "quantity",
            between(1, u64::from(limits.quantity_max)),
        ),
        (
            "ReserveRequest",
            "ttl_ms",
            between(1, limits.reservation_ttl_ms_max),
        ),
        ("OrderLineRequest", "sku", id()),
        (
            "OrderLineRequest",
            "quantity",
            between(1, u64::from(limits.quantity_max)),
        ),
        ("CreateOrderRequest", "id", id()),
        ("CreateOrderRequest", "account", id()),
        ("CreateOrderRequest", "merchant", id()),
        (
            "CreateOrderRequest",
            "lines",
            json!({"minItems": 1, "maxItems": ORDER_LINES_MAX}),
        ),
        (
            "CreateOrderRequest",
            "wait_ms",
            between(0, limits.order_wait_ms_max),
        ),
        (
            "PaymentsBatchRequest",
            "payments",
            json!({"minItems": 1, "maxItems": limits.payments_batch_max,
                   "items": {"$ref": "#/components/schemas/PaymentsBatchItem"}}),
        ),
        ("FaultRequest", "kind", json!({"enum": ["panic"]})),
    ]
}

/// The bodies whose money field's scale is the currency's in the same body:
/// (schema, money field, whether zero is allowed).
const BY_SCALE: [(&str, &str, bool); 3] = [
    ("CreateAccountRequest", "overdraft_limit", true),
    ("CreatePaymentRequest", "amount", false),
    ("CreateItemRequest", "price", false),
];

fn constrain_bodies(schemas: &mut Map<String, Value>, limits: &ApiLimits) {
    // The batch's items as the types decode them, before the single payment's
    // schema is constrained.
    if let Some(payment) = schemas.get("CreatePaymentRequest").cloned() {
        schemas.insert("PaymentsBatchItem".into(), batch_item(payment));
    }
    for (schema, field, constraint) in field_constraints(limits) {
        let property = schemas
            .get_mut(schema)
            .and_then(|s| s.pointer_mut(&format!("/properties/{field}")));
        match property {
            Some(property) => merge(property, constraint),
            None => tracing::error!(schema, field, "OpenAPI: no such field to constrain"),
        }
    }
    for (schema, field, zero) in BY_SCALE {
        if let Some(schema) = schemas.get_mut(schema) {
            by_scale(schema, field, zero, limits);
        }
    }
}

/// One payment of a batch: `payment`'s fields with their JSON types only. An
/// integer is any `u64`: what does not fit fails the whole batch.
fn batch_item(mut payment: Value) -> Value {
    if let Some(timeout) = payment.pointer_mut("/properties/hold_timeout_ms") {
        if let Some(timeout) = timeout.as_object_mut() {
            timeout.remove("format");
        }
        merge(timeout, json!({"minimum": 0, "maximum": u64::MAX}));
    }
    payment["description"] = json!(
        "A payment as for POST /v1/payments. A value of the right type that is not \
         valid (a bad id, amount or currency, a timeout out of range) rejects this \
         item alone: `rejected` with `invalid_request`."
    );
    payment
}

/// Turns an object schema into one variant per number of decimals: each
/// variant's `currency` lists the currencies with that many, and its `field`
/// is money with at most that many decimals.
fn by_scale(schema: &mut Value, field: &str, zero: bool, limits: &ApiLimits) {
    let base = schema.take();
    let description = base.get("description").cloned();
    let variants: Vec<Value> = scales()
        .into_iter()
        .map(|(scale, currencies)| {
            let mut variant = base.clone();
            if let Some(object) = variant.as_object_mut() {
                object.remove("description");
                object.insert("title".into(), json!(format!("{scale} decimals")));
            }
            if let Some(currency) = variant.pointer_mut("/properties/currency") {
                merge(currency, json!({"enum": codes(currencies.into_iter())}));
            }
            if let Some(money_field) = variant.pointer_mut(&format!("/properties/{field}")) {
                merge(money_field, money(scale, limits, zero));
            }
            variant
        })
        .collect();
    *schema = json!({"oneOf": variants});
    if let Some(description) = description {
        schema["description"] = description;
    }
}

// -------------------------------------------------------------- parameters

fn constrain_operation(path: &str, method: &str, operation: &mut Value) {
    let Some(operation) = operation.as_object_mut() else {
        return;
    };
    add_parameters(path, method, operation);
    add_answers(path, method, operation);
    // Every body may be MessagePack as well (`body::Encoding`).
    if let Some(content) = operation
        .get_mut("requestBody")
        .and_then(|body| body.get_mut("content"))
        .and_then(Value::as_object_mut)
    {
        also_message_pack(content);
    }
}

/// Constrains the operation's parameters and adds the headers it reads.
fn add_parameters(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let parameters = operation.entry("parameters").or_insert_with(|| json!([]));
    if let Some(parameters) = parameters.as_array_mut() {
        for parameter in parameters.iter_mut() {
            constrain_parameter(path, parameter);
        }
        if IDEMPOTENT.contains(&(method, path)) {
            parameters.push(header(
                "Idempotency-Key",
                false,
                "Names the operation, so that a retry replays its first answer \
                 (docs/API.md, Idempotency): 1 to 255 printable ASCII characters. \
                 Spaces and tabs around them are not part of a header's value.",
                json!({"type": "string",
                       "pattern": "^[ \\t]*[!-~](?:[ -~]{0,253}[!-~])?[ \\t]*$"}),
            ));
        }
        if path == "/v1/feed" {
            parameters.extend(handshake());
        }
    }
    if operation
        .get("parameters")
        .and_then(Value::as_array)
        .is_some_and(Vec::is_empty)
    {
        operation.remove("parameters");
    }
}

/// The answers the annotations cannot know: a reused key's 409, the 405 of
/// `GET /v1/payments/batch`, and the batch's MessagePack answer.
fn add_answers(path: &str, method: &str, operation: &mut Map<String, Value>) {
    let Some(responses) = operation
        .get_mut("responses")
        .and_then(Value::as_object_mut)
    else {
        return;
    };
    // An account's id is its key: a reuse with other fields is `account_exists`.
    if IDEMPOTENT.contains(&(method, path)) && path != "/v1/accounts" {
        add_code(
            responses,
            "409",
            "`idempotency_conflict`: the key or id was used with another body",
        );
    }
    if (method, path) == ("get", "/v1/payments/{id}") {
        responses.entry("405").or_insert_with(|| {
            super::openapi::problem(
                "`method_not_allowed`: `batch` is not a payment's id but the batch \
                 endpoint's path, which takes POST (`Allow: POST`)",
            )
        });
    }
    if path == "/v1/payments/batch" {
        if let Some(content) = responses
            .get_mut("200")
            .and_then(|answer| answer.get_mut("content"))
            .and_then(Value::as_object_mut)
        {
            also_message_pack(content);
        }
    }
}

/// The JSON body of `content` offered as MessagePack too, same schema.
fn also_message_pack(content: &mut Map<String, Value>) {
    if let Some(json_body) = content.get("application/json").cloned() {
        content.insert(MESSAGE_PACK.into(), json_body);
    }
}

fn constrain_parameter(path: &str, parameter: &mut Value) {
    let name = parameter["name"].as_str().unwrap_or("").to_owned();
    let constraint = match (parameter["in"].as_str(), name.as_str()) {
        (Some("path"), "id") if path.starts_with("/admin/shards/") => {
            json!({"type": "integer", "minimum": 0, "maximum": u32::MAX})
        }
        (Some("path"), "id") if path == "/v1/payments/{id}" => {
            let mut id = id_schema();
            id["not"] = json!({"const": RESERVED_PAYMENT_ID});
            id
        }
        (Some("path"), "id" | "sku") => id_schema(),
        (Some("query"), "limit") => {
            json!({"minimum": 1, "maximum": super::admin::AUDIT_PAGE_ROWS_MAX})
        }
        (Some("query"), "cursor") => json!({"pattern": i64_pattern()}),
        (Some("query"), "since" | "until") => json!({"format": "date-time"}),
        _ => return,
    };
    if let Some(schema) = parameter.get_mut("schema") {
        merge(schema, constraint);
    }
}

/// The headers of a WebSocket opening handshake (RFC 6455, 4.1) that the feed
/// requires; without them it answers 400.
fn handshake() -> Vec<Value> {
    vec![
        header(
            "Upgrade",
            true,
            "websocket",
            json!({"type": "string", "enum": ["websocket"]}),
        ),
        header(
            "Connection",
            true,
            "Upgrade",
            json!({"type": "string", "enum": ["Upgrade"]}),
        ),
        header(
            "Sec-WebSocket-Version",
            true,
            "13",
            json!({"type": "string", "enum": ["13"]}),
        ),
        header(
            "Sec-WebSocket-Key",
            true,
            "16 random bytes in base64",
            json!({"type": "string", "pattern": "^[A-Za-z0-9+/]{21}[AQgw]==$"}),
        ),
    ]
}

/// Adds `code` to the problem answer `status` of `responses`, making that
/// answer if there is none.
fn add_code(responses: &mut Map<String, Value>, status: &str, code: &str) {
    let answer = responses
        .entry(status.to_owned())
        .or_insert_with(|| super::openapi::problem(code));
    let described = answer["description"].as_str().unwrap_or("").to_owned();
    let name = code.split('`').nth(1).unwrap_or(code);
    if !described.contains(name) {
        answer["description"] = json!(format!("{described}; {code}"));
    }
}

fn header(name: &str, required: bool, description: &str, schema: Value) -> Value {
    json!({"name": name, "in": "header", "required": required,
           "description": description, "schema": schema})
}

// ------------------------------------------------------------------ values

/// An id or SKU (`surge_actors::domain::ids`); the field keeps its type, which
/// may allow `null`.
fn id_schema() -> Value {
    json!({"minLength": 1, "maxLength": ID_LENGTH_MAX,
           "pattern": format!("^[A-Za-z0-9_-]{{1,{ID_LENGTH_MAX}}}$")})
}

fn codes(currencies: impl Iterator<Item = Currency>) -> Vec<&'static str> {
    currencies.map(Currency::code).collect()
}

/// The currencies by number of decimals, fewest first.
fn scales() -> Vec<(u32, Vec<Currency>)> {
    let mut scales: Vec<(u32, Vec<Currency>)> = Vec::new();
    for currency in Currency::all() {
        match scales
            .iter_mut()
            .find(|(scale, _)| *scale == currency.scale())
        {
            Some((_, currencies)) => currencies.push(currency),
            None => scales.push((currency.scale(), vec![currency])),
        }
    }
    scales.sort_by_key(|(scale, _)| *scale);
    scales
}

/// The most decimals any currency allows.
fn scale_max() -> u32 {
    Currency::all().iter().map(|c| c.scale()).max().unwrap_or(0)
}

/// Money as `Amount::parse` and `parse_non_negative` take it: a plain decimal
/// string, at most 40 characters, at most `limits.amount_max`, with at most
/// `scale` decimals that are not trailing zeros, above zero unless `zero`.
fn money(scale: u32, limits: &ApiLimits, zero: bool) -> Value {
    json!({"maxLength": 40, "pattern": money_pattern(scale, whole_max(limits), zero)})
}

/// `limits.amount_max` as a whole number (configuration refuses any other).
fn whole_max(limits: &ApiLimits) -> u64 {
    use rust_decimal::prelude::ToPrimitive;
    limits.amount_max.trunc().to_u64().unwrap_or(u64::MAX)
}

/// A pattern for the plain decimal strings (digits, optionally a point and at
/// least one digit) whose value is above zero (or zero too, when `zero`), at
/// most `max` and has at most `scale` decimals before its trailing zeros.
pub fn money_pattern(scale: u32, max: u64, zero: bool) -> String {
    let fraction = if scale == 0 {
        r"\.0+".to_owned()
    } else {
        format!(r"\.[0-9]{{1,{scale}}}0*")
    };
    let mut alternatives = Vec::new();
    // A whole part from 1 to max - 1, any allowed fraction.
    if let Some(below) = integers_up_to(max.saturating_sub(1)) {
        alternatives.push(format!("0*(?:{below})(?:{fraction})?"));
    }
    // A zero whole part and a fraction with a digit that is not zero among
    // its first `scale`.
    if scale > 0 {
        let first_non_zero: Vec<String> = (0..scale)
            .map(|zeros| format!("0{{{zeros}}}[1-9][0-9]{{0,{}}}", scale - 1 - zeros))
            .collect();
        alternatives.push(format!(r"0+\.(?:{})0*", first_non_zero.join("|")));
    }
    if max > 0 {
        alternatives.push(format!(r"0*{max}(?:\.0+)?"));
    }
    if zero {
        alternatives.push(r"0+(?:\.0+)?".to_owned());
    }
    format!("^(?:{})$", alternatives.join("|"))
}

/// A pattern for the integers from 1 to `limit` written without leading zeros
/// (none when `limit` is 0).
fn integers_up_to(limit: u64) -> Option<String> {
    if limit == 0 {
        return None;
    }
    let digits: Vec<u8> = limit.to_string().bytes().map(|b| b - b'0').collect();
    let length = digits.len();
    let mut alternatives = Vec::new();
    if length > 1 {
        alternatives.push(format!("[1-9][0-9]{{0,{}}}", length - 2));
    }
    for (i, &digit) in digits.iter().enumerate() {
        let low = u8::from(i == 0);
        if digit > low {
            let prefix: String = digits[..i].iter().map(|d| char::from(b'0' + d)).collect();
            let rest = length - i - 1;
            alternatives.push(format!("{prefix}[{low}-{}][0-9]{{{rest}}}", digit - 1));
        }
    }
    alternatives.push(limit.to_string());
    Some(alternatives.join("|"))
}

/// What `str::parse::<i64>` takes: a sign, then digits within range.
fn i64_pattern() -> String {
    let positive = integers_up_to(i64::MAX as u64).unwrap_or_default();
    let negative = integers_up_to(i64::MAX as u64 + 1).unwrap_or_default();
    format!(r"^(?:\+?0*(?:0|{positive})|-0*(?:0|{negative}))$")
}

/// Adds `constraint`'s keys to `schema` (an object), replacing any there.
fn merge(schema: &mut Value, constraint: Value) {
    if let (Some(schema), Value::Object(constraint)) = (schema.as_object_mut(), constraint) {
        schema.extend(constraint);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full(pattern: &str, text: &str) -> bool {
        regex::Regex::new(pattern).unwrap().is_match(text)
    }

    #[test]
    fn integers_up_to_a_limit_are_exactly_those() {
        for limit in [1u64, 9, 10, 19, 100, 999, 1_000, 4_096, 999_999_999] {
            let pattern = format!("^(?:{})$", integers_up_to(limit).unwrap());
            for n in 0..=limit.min(5_000) + 20 {
                assert_eq!(
                    full(&pattern, &n.to_string()),
                    (1..=limit).contains(&n),
                    "{limit} {n}"
                );
            }
        }
        let pattern = format!("^(?:{})$", integers_up_to(999_999_999).unwrap());
        assert!(full(&pattern, "999999999") && !full(&pattern, "1000000000"));
    }

    #[test]
    fn money_patterns_take_what_the_parser_takes() {
        use rust_decimal::Decimal;
        use surge_actors::domain::{parse_non_negative, Amount};
        let max = Decimal::from(1_000_000_000u64);
        let samples = [
            "1",
            "0",
            "0.0",
            "00",
            "1.5",
            "1.50",
            "1.500",
            "1.505",
            "0.01",
            "0.001",
            "0.10",
            "12.345",
            "1.",
            ".5",
            "-1",
            "+1",
            "1e3",
            " 1",
            "1,000",
            "999999999.99",
            "1000000000",
            "1000000000.00",
            "1000000000.01",
            "1000000001",
            "0001000000000",
            "00000.5",
            "5.0000",
            "12.3456",
            "0.0001",
            "0.00001",
            "",
        ];
        for currency in ["JPY", "USD", "BHD", "CLF"] {
            let currency = Currency::parse(currency).unwrap();
            let positive = money_pattern(currency.scale(), 1_000_000_000, false);
            let non_negative = money_pattern(currency.scale(), 1_000_000_000, true);
            for raw in samples {
                let amount = Amount::parse(raw, max).and_then(|a| a.check_scale(currency));
                assert_eq!(full(&positive, raw), amount.is_ok(), "{currency} {raw:?}");
                let limit = parse_non_negative(raw, currency, max);
                assert_eq!(
                    full(&non_negative, raw),
                    limit.is_ok(),
                    "{currency} {raw:?} (zero)"
                );
            }
        }
    }

    #[test]
    fn the_cursor_pattern_is_what_an_i64_parses() {
        let pattern = i64_pattern();
        for raw in [
            "0",
            "-0",
            "+5",
            "007",
            "-9223372036854775808",
            "9223372036854775807",
            "9223372036854775808",
            "-9223372036854775809",
            "",
            "+",
            "-",
            "1.0",
            "abc",
        ] {
            assert_eq!(full(&pattern, raw), raw.parse::<i64>().is_ok(), "{raw:?}");
        }
    }
}

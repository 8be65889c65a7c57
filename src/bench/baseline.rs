//! The baseline: Surge's operations written the way a competent team would
//! without Surge — plain PostgreSQL transactions with row locks, synchronous
//! commit, prepared statements, a sized pool — behind a minimal actix-web server
//! with the same paths, bodies, auth and body parsing as Surge's API, so both
//! sides pay the same HTTP, JSON and JWT costs and the bench's client cannot
//! tell them apart.
//!
//! * A payment locks both accounts (`SELECT … ORDER BY id FOR UPDATE`: a global
//!   lock order, so no deadlocks), checks the balance, moves the money and
//!   records the payment in one transaction.
//! * A batch of payments is cut into chunks of [`PAYMENTS_PER_TRANSACTION`];
//!   each chunk is one transaction that locks all its accounts in id order,
//!   applies the payments in request order in memory, and writes balances and
//!   payment rows back with one `UPDATE … FROM UNNEST` and one
//!   `INSERT … SELECT FROM UNNEST`: one commit (one fsync) per chunk, chunks in
//!   parallel over the pool.
//! * An order takes stock with a conditional `UPDATE items SET on_hand =
//!   on_hand - q WHERE sku = $1 AND on_hand >= q` per line (SKUs in order), then
//!   locks buyer and merchant, moves the total and records the order, all in one
//!   transaction; a refusal rolls back and records the rejected order.
//!
//! The bench creates a fresh database for it and drops it afterwards.

use crate::api::auth::{AuthKeys, Caller};
use crate::api::body::{self, Encoding};
use crate::api::dto::{
    BatchResult, CreatePaymentRequest, PaymentsBatchRequest, PaymentsBatchResponse,
};
use crate::configuration::Settings;
use actix_web::dev::ServerHandle;
use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use rust_decimal::Decimal;
use secrecy::ExposeSecret;
use serde::Deserialize;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{ConnectOptions, Connection, PgPool, Row};
use std::str::FromStr;
// Most lines in an order: the engine's limit, which Surge's API enforces too.
use surge_actors::order::ORDER_LINES_MAX;

/// Connections to PostgreSQL across all HTTP workers (BENCHMARKS.md's baseline
/// figures were measured at 32 clients; more only adds lock queueing).
pub const POOL_CONNECTIONS_MAX: u32 = 32;
/// Payments per transaction when a batch is applied.
pub const PAYMENTS_PER_TRANSACTION: usize = 512;
/// Largest batch body, as Surge's default.
const BATCH_BODY_LIMIT_BYTES: usize = 4 * 1024 * 1024;
/// Largest single-object body.
const BODY_LIMIT_BYTES: usize = 64 * 1024;

const SCHEMA: &str = r#"
CREATE TABLE accounts (
    id text PRIMARY KEY,
    currency text NOT NULL,
    balance_cents bigint NOT NULL DEFAULT 0,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE deposits (
    id text PRIMARY KEY,
    account text NOT NULL REFERENCES accounts (id),
    amount_cents bigint NOT NULL
);
CREATE TABLE items (
    sku text PRIMARY KEY,
    price_cents bigint NOT NULL,
    currency text NOT NULL,
    on_hand bigint NOT NULL CHECK (on_hand >= 0)
);
CREATE TABLE payments (
    id text PRIMARY KEY,
    from_account text NOT NULL,
    to_account text NOT NULL,
    amount_cents bigint NOT NULL,
    currency text NOT NULL,
    status text NOT NULL,
    code text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE orders (
    id text PRIMARY KEY,
    account text NOT NULL,
    merchant text NOT NULL,
    total_cents bigint NOT NULL,
    status text NOT NULL,
    reason text,
    created_at timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE order_lines (
    order_id text NOT NULL REFERENCES orders (id),
    sku text NOT NULL,
    quantity bigint NOT NULL,
    unit_price_cents bigint NOT NULL,
    PRIMARY KEY (order_id, sku)
);
"#;

/// A running baseline: its database and its HTTP server.
pub struct Baseline {
    admin: PgConnectOptions,
    database: String,
    port: u16,
    server: ServerHandle,
}

impl Baseline {
    /// Creates a fresh database on the server of `database_url`, its schema, and
    /// starts the HTTP server on a free port. Must run inside the actix System.
    pub async fn start(database_url: &str, settings: &Settings) -> anyhow::Result<Self> {
        let admin = PgConnectOptions::from_str(database_url)?;
        let database = format!("surge_bench_{:08x}", fastrand::u32(..));
        let mut connection = admin.connect().await?;
        sqlx::query(&format!("CREATE DATABASE {database}"))
            .execute(&mut connection)
            .await?;
        connection.close().await?;
        let options = admin
            .clone()
            .database(&database)
            .options([("synchronous_commit", "on")])
            // Lock waits on the hot rows are the point of the baseline, not news:
            // sqlx's slow-statement warnings would only drown the progress bar.
            .disable_statement_logging();
        let mut connection = options.connect().await?;
        sqlx::raw_sql(SCHEMA).execute(&mut connection).await?;
        connection.close().await?;

        let workers = match settings.http.workers {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let per_worker = (POOL_CONNECTIONS_MAX / workers as u32).max(1);
        let keys = web::Data::new(AuthKeys::from_secret(
            settings.auth.jwt_secret.expose_secret().as_bytes(),
        ));
        let listener = crate::startup::listen("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let server = HttpServer::new(move || {
            // Each worker has its own runtime, so each gets its own pool: its
            // connections live on the runtime that polls them.
            let pool = PgPoolOptions::new()
                .max_connections(per_worker)
                .connect_lazy_with(options.clone());
            App::new()
                .app_data(keys.clone())
                .app_data(web::Data::new(pool))
                .route("/health", web::get().to(health))
                .route("/v1/accounts", web::post().to(create_account))
                .route("/v1/accounts/{id}", web::get().to(get_account))
                .route("/v1/accounts/{id}/deposits", web::post().to(deposit))
                .route("/v1/payments", web::post().to(create_payment))
                .route("/v1/payments/batch", web::post().to(payments_batch))
                .route("/v1/items", web::post().to(create_item))
                .route("/v1/items/{sku}", web::get().to(get_item))
                .route("/v1/orders", web::post().to(create_order))
                .route("/v1/orders/{id}", web::get().to(get_order))
        })
        .workers(workers)
        .disable_signals()
        .listen(listener)?
        .run();
        let handle = server.handle();
        actix_web::rt::spawn(server);
        Ok(Self {
            admin,
            database,
            port,
            server: handle,
        })
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn database(&self) -> &str {
        &self.database
    }

    /// Stops the server (dropping its pools) and drops the database it created.
    pub async fn stop(self) {
        self.server.stop(true).await;
        let dropped = async {
            let mut connection = self.admin.connect().await?;
            sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.database
            ))
            .execute(&mut connection)
            .await?;
            connection.close().await
        }
        .await;
        if let Err(error) = dropped {
            tracing::warn!(database = %self.database, %error, "could not drop the baseline database");
        }
    }
}

// ---------------------------------------------------------------- helpers

fn problem(status: u16, code: &str, detail: impl std::fmt::Display) -> HttpResponse {
    HttpResponse::build(
        actix_web::http::StatusCode::from_u16(status)
            .unwrap_or(actix_web::http::StatusCode::INTERNAL_SERVER_ERROR),
    )
    .content_type("application/problem+json")
    .json(json!({
        "type": format!("/errors/{code}"), "title": code, "status": status,
        "detail": detail.to_string(), "code": code,
    }))
}

/// A database failure: the outcome is unknown, as Surge's 503 `retry`.
fn unavailable(error: sqlx::Error) -> HttpResponse {
    problem(503, "retry", error)
}

/// Parses a positive amount with at most 2 decimals (USD) into cents.
fn parse_cents(raw: &str) -> Option<i64> {
    let amount = Decimal::from_str(raw).ok()?;
    if amount <= Decimal::ZERO || amount.scale() > 2 {
        return None;
    }
    i64::try_from((amount * Decimal::ONE_HUNDRED).trunc().mantissa()).ok()
}

fn format_cents(cents: i64) -> String {
    Decimal::new(cents, 2).to_string()
}

// The error is the handler's finished answer, returned at once; boxing it would
// only add an allocation to the refusal path.
#[allow(clippy::result_large_err)]
/// Reads a single-object request body and parses it as JSON, or answers the
/// problem as Surge would.
async fn json_body<T: serde::de::DeserializeOwned>(
    payload: web::Payload,
) -> Result<T, HttpResponse> {
    let bytes = read_body(payload, BODY_LIMIT_BYTES).await?;
    body::decode(&bytes, Encoding::Json).map_err(|p| problem(400, "invalid_request", p.detail))
}

async fn read_body(
    payload: web::Payload,
    limit_bytes: usize,
) -> Result<web::BytesMut, HttpResponse> {
    body::read(payload, limit_bytes)
        .await
        .map_err(|p| problem(p.status, p.code, p.detail))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

// ---------------------------------------------------------------- accounts

#[derive(Deserialize)]
struct CreateAccount {
    id: String,
    currency: String,
}

async fn create_account(
    _caller: Caller,
    pool: web::Data<PgPool>,
    payload: web::Payload,
) -> HttpResponse {
    let account: CreateAccount = match json_body(payload).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let inserted = sqlx::query(
        "INSERT INTO accounts (id, currency) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING",
    )
    .bind(&account.id)
    .bind(&account.currency)
    .execute(pool.get_ref())
    .await;
    match inserted {
        Ok(done) => {
            let status = if done.rows_affected() == 1 { 201 } else { 200 };
            account_response(&pool, &account.id, status).await
        }
        Err(error) => unavailable(error),
    }
}

async fn account_response(pool: &PgPool, id: &str, status: u16) -> HttpResponse {
    let row = sqlx::query("SELECT currency, balance_cents FROM accounts WHERE id = $1")
        .bind(id)
        .fetch_optional(pool)
        .await;
    match row {
        Ok(Some(row)) => {
            let balance = format_cents(row.get("balance_cents"));
            HttpResponse::build(
                actix_web::http::StatusCode::from_u16(status)
                    .unwrap_or(actix_web::http::StatusCode::OK),
            )
            .json(json!({
                "id": id, "currency": row.get::<String, _>("currency"), "balance": balance,
                "held": "0.00", "available": balance, "overdraft_limit": "0.00",
            }))
        }
        Ok(None) => problem(404, "account_not_found", id),
        Err(error) => unavailable(error),
    }
}

async fn get_account(
    _caller: Caller,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> HttpResponse {
    account_response(&pool, &id, 200).await
}

#[derive(Deserialize)]
struct Deposit {
    id: String,
    amount: String,
}

async fn deposit(
    _caller: Caller,
    pool: web::Data<PgPool>,
    account: web::Path<String>,
    payload: web::Payload,
) -> HttpResponse {
    let deposit: Deposit = match json_body(payload).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let Some(cents) = parse_cents(&deposit.amount) else {
        return problem(400, "invalid_request", "amount");
    };
    let result: Result<Option<i64>, sqlx::Error> = async {
        let mut tx = pool.begin().await?;
        let inserted = sqlx::query(
            "INSERT INTO deposits (id, account, amount_cents) VALUES ($1, $2, $3) \
             ON CONFLICT (id) DO NOTHING",
        )
        .bind(&deposit.id)
        .bind(account.as_str())
        .bind(cents)
        .execute(&mut *tx)
        .await?;
        let balance: Option<i64> = if inserted.rows_affected() == 1 {
            sqlx::query_scalar(
                "UPDATE accounts SET balance_cents = balance_cents + $2 WHERE id = $1 \
                 RETURNING balance_cents",
            )
            .bind(account.as_str())
            .bind(cents)
            .fetch_optional(&mut *tx)
            .await?
        } else {
            sqlx::query_scalar("SELECT balance_cents FROM accounts WHERE id = $1")
                .bind(account.as_str())
                .fetch_optional(&mut *tx)
                .await?
        };
        tx.commit().await?;
        Ok(balance)
    }
    .await;
    match result {
        Ok(Some(balance)) => HttpResponse::Created().json(json!({
            "id": deposit.id, "account": account.as_str(), "amount": format_cents(cents),
            "balance": format_cents(balance),
        })),
        // The foreign key refuses a deposit into an unknown account.
        Ok(None) | Err(sqlx::Error::Database(_)) => {
            problem(404, "account_not_found", account.as_str())
        }
        Err(error) => unavailable(error),
    }
}

// ---------------------------------------------------------------- payments

/// A payment to apply: parsed, or refused at parse time.
struct PaymentInput {
    id: String,
    from: String,
    to: String,
    amount_cents: i64,
}

fn parse_payment(
    request: &CreatePaymentRequest,
    index: usize,
) -> Result<PaymentInput, &'static str> {
    if request.currency != "USD" {
        return Err("currency_mismatch");
    }
    if request.from == request.to {
        return Err("same_account");
    }
    let amount_cents = parse_cents(&request.amount).ok_or("invalid_request")?;
    Ok(PaymentInput {
        id: request
            .id
            .clone()
            .unwrap_or_else(|| format!("{}-{index}", uuid::Uuid::new_v4().simple())),
        from: request.from.clone(),
        to: request.to.clone(),
        amount_cents,
    })
}

/// Applies payments in one transaction: locks every account they touch in id
/// order, decides each payment in request order against the locked balances,
/// and writes balances and payment rows back in one statement each. Returns each
/// payment's code: `None` settled, `Some(code)` rejected.
async fn apply_payments(
    pool: &PgPool,
    payments: &[PaymentInput],
) -> Result<Vec<Option<&'static str>>, sqlx::Error> {
    let mut ids: Vec<&str> = payments
        .iter()
        .flat_map(|p| [p.from.as_str(), p.to.as_str()])
        .collect();
    ids.sort_unstable();
    ids.dedup();
    let mut tx = pool.begin().await?;
    let rows = sqlx::query(
        "SELECT id, balance_cents FROM accounts WHERE id = ANY($1) ORDER BY id FOR UPDATE",
    )
    .bind(&ids)
    .fetch_all(&mut *tx)
    .await?;
    let mut balances: std::collections::HashMap<String, i64> = rows
        .iter()
        .map(|row| (row.get("id"), row.get("balance_cents")))
        .collect();
    let mut outcomes = Vec::with_capacity(payments.len());
    for payment in payments {
        let outcome = match (balances.get(&payment.from), balances.get(&payment.to)) {
            (Some(&from), Some(_)) if from >= payment.amount_cents => {
                *balances.get_mut(&payment.from).expect("present") -= payment.amount_cents;
                *balances.get_mut(&payment.to).expect("present") += payment.amount_cents;
                None
            }
            (Some(_), Some(_)) => Some("insufficient_funds"),
            _ => Some("account_not_found"),
        };
        outcomes.push(outcome);
    }
    let (changed_ids, changed_balances): (Vec<String>, Vec<i64>) = balances.into_iter().unzip();
    sqlx::query(
        "UPDATE accounts SET balance_cents = changed.balance \
         FROM UNNEST($1::text[], $2::bigint[]) AS changed (id, balance) \
         WHERE accounts.id = changed.id",
    )
    .bind(&changed_ids)
    .bind(&changed_balances)
    .execute(&mut *tx)
    .await?;
    let ids: Vec<&str> = payments.iter().map(|p| p.id.as_str()).collect();
    let froms: Vec<&str> = payments.iter().map(|p| p.from.as_str()).collect();
    let tos: Vec<&str> = payments.iter().map(|p| p.to.as_str()).collect();
    let amounts: Vec<i64> = payments.iter().map(|p| p.amount_cents).collect();
    let statuses: Vec<&str> = outcomes
        .iter()
        .map(|o| if o.is_none() { "settled" } else { "rejected" })
        .collect();
    let codes: Vec<Option<&str>> = outcomes.clone();
    sqlx::query(
        "INSERT INTO payments (id, from_account, to_account, amount_cents, currency, status, code) \
         SELECT id, from_account, to_account, amount_cents, 'USD', status, code \
         FROM UNNEST($1::text[], $2::text[], $3::text[], $4::bigint[], $5::text[], $6::text[]) \
           AS p (id, from_account, to_account, amount_cents, status, code)",
    )
    .bind(&ids)
    .bind(&froms)
    .bind(&tos)
    .bind(&amounts)
    .bind(&statuses)
    .bind(&codes)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(outcomes)
}

/// Within `tx`: locks both accounts in id order (one global lock order, so no
/// deadlocks), checks the payer, and moves `amount_cents` when it can. Returns
/// the refusal code, if any; nothing is moved then.
async fn transfer(
    tx: &mut sqlx::Transaction<'_, sqlx::Postgres>,
    from: &str,
    to: &str,
    amount_cents: i64,
) -> Result<Option<&'static str>, sqlx::Error> {
    let (first, second) = if from < to { (from, to) } else { (to, from) };
    let rows = sqlx::query(
        "SELECT id, balance_cents FROM accounts WHERE id IN ($1, $2) ORDER BY id FOR UPDATE",
    )
    .bind(first)
    .bind(second)
    .fetch_all(&mut **tx)
    .await?;
    let from_balance = rows
        .iter()
        .find(|row| row.get::<&str, _>("id") == from)
        .map(|row| row.get::<i64, _>("balance_cents"));
    let code = match from_balance {
        _ if rows.len() < 2 => Some("account_not_found"),
        Some(balance) if balance >= amount_cents => None,
        _ => Some("insufficient_funds"),
    };
    if code.is_none() {
        sqlx::query(
            "UPDATE accounts SET balance_cents = balance_cents \
               + CASE WHEN id = $1 THEN -$3::bigint ELSE $3::bigint END \
             WHERE id IN ($1, $2)",
        )
        .bind(from)
        .bind(to)
        .bind(amount_cents)
        .execute(&mut **tx)
        .await?;
    }
    Ok(code)
}

/// One payment: lock both accounts in id order, check, move, record, commit.
async fn apply_payment(
    pool: &PgPool,
    payment: &PaymentInput,
) -> Result<Option<&'static str>, sqlx::Error> {
    let mut tx = pool.begin().await?;
    let code = transfer(&mut tx, &payment.from, &payment.to, payment.amount_cents).await?;
    sqlx::query(
        "INSERT INTO payments (id, from_account, to_account, amount_cents, currency, status, code) \
         VALUES ($1, $2, $3, $4, 'USD', $5, $6)",
    )
    .bind(&payment.id)
    .bind(&payment.from)
    .bind(&payment.to)
    .bind(payment.amount_cents)
    .bind(if code.is_none() { "settled" } else { "rejected" })
    .bind(code)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(code)
}

async fn create_payment(
    _caller: Caller,
    pool: web::Data<PgPool>,
    payload: web::Payload,
) -> HttpResponse {
    let request: CreatePaymentRequest = match json_body(payload).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let payment = match parse_payment(&request, 0) {
        Ok(p) => p,
        Err("invalid_request") => return problem(400, "invalid_request", "amount"),
        Err(code) => return problem(422, code, "refused"),
    };
    match apply_payment(&pool, &payment).await {
        Ok(None) => HttpResponse::Created().json(json!({
            "id": payment.id, "from": payment.from, "to": payment.to,
            "amount": format_cents(payment.amount_cents),
            "captured_amount": format_cents(payment.amount_cents),
            "currency": "USD", "status": "settled",
        })),
        Ok(Some(code)) => problem(422, code, "payment rejected"),
        Err(error) => unavailable(error),
    }
}

async fn payments_batch(
    _caller: Caller,
    pool: web::Data<PgPool>,
    request: HttpRequest,
    payload: web::Payload,
) -> HttpResponse {
    let encoding = match Encoding::of_request(&request) {
        Ok(e) => e,
        Err(p) => return problem(p.status, p.code, p.detail),
    };
    let bytes = match read_body(payload, BATCH_BODY_LIMIT_BYTES).await {
        Ok(b) => b,
        Err(r) => return r,
    };
    let batch: PaymentsBatchRequest = match body::decode(&bytes, encoding) {
        Ok(b) => b,
        Err(p) => return problem(400, "invalid_request", p.detail),
    };
    let mut results: Vec<BatchResult> = Vec::with_capacity(batch.payments.len());
    let mut valid = Vec::with_capacity(batch.payments.len());
    let mut slots = Vec::with_capacity(batch.payments.len());
    for (index, payment) in batch.payments.iter().enumerate() {
        results.push(BatchResult {
            id: payment.id.clone(),
            status: "rejected".into(),
            code: None,
        });
        match parse_payment(payment, index) {
            Ok(parsed) => {
                valid.push(parsed);
                slots.push(index);
            }
            Err(code) => results[index].code = Some(code.into()),
        }
    }
    let chunks = valid
        .chunks(PAYMENTS_PER_TRANSACTION)
        .map(|chunk| apply_payments(&pool, chunk));
    let outcomes = futures::future::join_all(chunks).await;
    let mut slot = slots.into_iter();
    for (chunk, outcome) in valid.chunks(PAYMENTS_PER_TRANSACTION).zip(outcomes) {
        for (i, payment) in chunk.iter().enumerate() {
            // One slot per valid payment, in the same order as `valid`.
            let index = slot.next().expect("a slot per valid payment");
            results[index] = match &outcome {
                Ok(codes) => BatchResult {
                    id: Some(payment.id.clone()),
                    status: if codes[i].is_none() {
                        "settled"
                    } else {
                        "rejected"
                    }
                    .into(),
                    code: codes[i].map(str::to_owned),
                },
                Err(_) => BatchResult {
                    id: Some(payment.id.clone()),
                    status: "error".into(),
                    code: Some("retry".into()),
                },
            };
        }
    }
    let response = PaymentsBatchResponse { results };
    match Encoding::accepted(&request) {
        Encoding::MessagePack => match rmp_serde::to_vec_named(&response) {
            Ok(bytes) => HttpResponse::Ok()
                .content_type("application/msgpack")
                .body(bytes),
            Err(error) => problem(500, "internal", error),
        },
        Encoding::Json => HttpResponse::Ok().json(&response),
    }
}

// ---------------------------------------------------------------- items

#[derive(Deserialize)]
struct CreateItem {
    sku: String,
    price: String,
    currency: String,
    stock: i64,
}

async fn create_item(
    _caller: Caller,
    pool: web::Data<PgPool>,
    payload: web::Payload,
) -> HttpResponse {
    let item: CreateItem = match json_body(payload).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let Some(price) = parse_cents(&item.price) else {
        return problem(400, "invalid_request", "price");
    };
    let inserted = sqlx::query(
        "INSERT INTO items (sku, price_cents, currency, on_hand) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (sku) DO NOTHING",
    )
    .bind(&item.sku)
    .bind(price)
    .bind(&item.currency)
    .bind(item.stock)
    .execute(pool.get_ref())
    .await;
    match inserted {
        Ok(done) if done.rows_affected() == 1 => HttpResponse::Created().json(json!({
            "sku": item.sku, "price": item.price, "currency": item.currency,
            "on_hand": item.stock, "reserved": 0, "available": item.stock,
        })),
        Ok(_) => problem(409, "item_exists", item.sku),
        Err(error) => unavailable(error),
    }
}

async fn get_item(
    _caller: Caller,
    pool: web::Data<PgPool>,
    sku: web::Path<String>,
) -> HttpResponse {
    let row = sqlx::query("SELECT price_cents, currency, on_hand FROM items WHERE sku = $1")
        .bind(sku.as_str())
        .fetch_optional(pool.get_ref())
        .await;
    match row {
        Ok(Some(row)) => {
            let on_hand: i64 = row.get("on_hand");
            HttpResponse::Ok().json(json!({
                "sku": sku.as_str(), "price": format_cents(row.get("price_cents")),
                "currency": row.get::<String, _>("currency"),
                "on_hand": on_hand, "reserved": 0, "available": on_hand,
            }))
        }
        Ok(None) => problem(404, "item_not_found", sku.as_str()),
        Err(error) => unavailable(error),
    }
}

// ---------------------------------------------------------------- orders

#[derive(Deserialize)]
struct OrderLineRequest {
    sku: String,
    quantity: i64,
}

#[derive(Deserialize)]
struct CreateOrder {
    id: String,
    account: String,
    merchant: String,
    lines: Vec<OrderLineRequest>,
    #[serde(default)]
    #[allow(dead_code)] // Accepted for contract parity: the baseline always answers terminal.
    wait_ms: Option<u64>,
}

/// Places an order in one transaction; `Ok(Err(reason))` is a business refusal
/// (the transaction rolled back, nothing taken).
async fn place_order(
    pool: &PgPool,
    order: &CreateOrder,
) -> Result<Result<(i64, Vec<i64>), &'static str>, sqlx::Error> {
    let mut lines: Vec<&OrderLineRequest> = order.lines.iter().collect();
    // Items are locked in SKU order, then accounts in id order: one global lock
    // order, so concurrent orders queue instead of deadlocking.
    lines.sort_by(|a, b| a.sku.cmp(&b.sku));
    let mut tx = pool.begin().await?;
    let mut total = 0i64;
    let mut prices = std::collections::HashMap::new();
    for line in &lines {
        let price: Option<i64> = sqlx::query_scalar(
            "UPDATE items SET on_hand = on_hand - $2 WHERE sku = $1 AND on_hand >= $2 \
             RETURNING price_cents",
        )
        .bind(&line.sku)
        .bind(line.quantity)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(price) = price else {
            tx.rollback().await?;
            return Ok(Err("out_of_stock"));
        };
        total += price * line.quantity;
        prices.insert(line.sku.as_str(), price);
    }
    if let Some(reason) = transfer(&mut tx, &order.account, &order.merchant, total).await? {
        tx.rollback().await?;
        return Ok(Err(reason));
    }
    sqlx::query(
        "INSERT INTO orders (id, account, merchant, total_cents, status) \
         VALUES ($1, $2, $3, $4, 'confirmed')",
    )
    .bind(&order.id)
    .bind(&order.account)
    .bind(&order.merchant)
    .bind(total)
    .execute(&mut *tx)
    .await?;
    let skus: Vec<&str> = order.lines.iter().map(|l| l.sku.as_str()).collect();
    let quantities: Vec<i64> = order.lines.iter().map(|l| l.quantity).collect();
    let unit_prices: Vec<i64> = order.lines.iter().map(|l| prices[l.sku.as_str()]).collect();
    sqlx::query(
        "INSERT INTO order_lines (order_id, sku, quantity, unit_price_cents) \
         SELECT $1, sku, quantity, price FROM UNNEST($2::text[], $3::bigint[], $4::bigint[]) \
           AS l (sku, quantity, price)",
    )
    .bind(&order.id)
    .bind(&skus)
    .bind(&quantities)
    .bind(&unit_prices)
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Ok((total, unit_prices)))
}

async fn create_order(
    _caller: Caller,
    pool: web::Data<PgPool>,
    payload: web::Payload,
) -> HttpResponse {
    let order: CreateOrder = match json_body(payload).await {
        Ok(parsed) => parsed,
        Err(r) => return r,
    };
    let mut skus: Vec<&str> = order.lines.iter().map(|l| l.sku.as_str()).collect();
    skus.sort_unstable();
    skus.dedup();
    if order.lines.is_empty()
        || order.lines.len() > ORDER_LINES_MAX
        || skus.len() != order.lines.len()
        || order.lines.iter().any(|l| l.quantity <= 0)
    {
        return problem(400, "invalid_request", "lines");
    }
    match place_order(&pool, &order).await {
        Ok(Ok((total, unit_prices))) => HttpResponse::Created().json(json!({
            "id": order.id, "account": order.account, "merchant": order.merchant,
            "lines": order.lines.iter().zip(unit_prices).map(|(l, p)| json!({
                "sku": l.sku, "quantity": l.quantity, "unit_price": format_cents(p),
            })).collect::<Vec<_>>(),
            "total": format_cents(total), "currency": "USD", "status": "confirmed",
        })),
        Ok(Err(reason)) => {
            // The refusal is recorded too, as Surge records rejected orders.
            let recorded = sqlx::query(
                "INSERT INTO orders (id, account, merchant, total_cents, status, reason) \
                 VALUES ($1, $2, $3, 0, 'rejected', $4) ON CONFLICT (id) DO NOTHING",
            )
            .bind(&order.id)
            .bind(&order.account)
            .bind(&order.merchant)
            .bind(reason)
            .execute(pool.get_ref())
            .await;
            match recorded {
                Ok(_) => HttpResponse::Created().json(json!({
                    "id": order.id, "account": order.account, "merchant": order.merchant,
                    "lines": order.lines.iter().map(|l| json!({"sku": l.sku, "quantity": l.quantity}))
                        .collect::<Vec<_>>(),
                    "total": "0.00", "currency": "USD", "status": "rejected", "reason": reason,
                })),
                Err(error) => unavailable(error),
            }
        }
        Err(error) => unavailable(error),
    }
}

async fn get_order(
    _caller: Caller,
    pool: web::Data<PgPool>,
    id: web::Path<String>,
) -> HttpResponse {
    let order = sqlx::query(
        "SELECT account, merchant, total_cents, status, reason FROM orders WHERE id = $1",
    )
    .bind(id.as_str())
    .fetch_optional(pool.get_ref())
    .await;
    let order = match order {
        Ok(Some(order)) => order,
        Ok(None) => return problem(404, "order_not_found", id.as_str()),
        Err(error) => return unavailable(error),
    };
    let lines = sqlx::query(
        "SELECT sku, quantity, unit_price_cents FROM order_lines WHERE order_id = $1 ORDER BY sku",
    )
    .bind(id.as_str())
    .fetch_all(pool.get_ref())
    .await;
    let lines = match lines {
        Ok(lines) => lines,
        Err(error) => return unavailable(error),
    };
    HttpResponse::Ok().json(json!({
        "id": id.as_str(),
        "account": order.get::<String, _>("account"),
        "merchant": order.get::<String, _>("merchant"),
        "lines": lines.iter().map(|l| json!({
            "sku": l.get::<String, _>("sku"), "quantity": l.get::<i64, _>("quantity"),
            "unit_price": format_cents(l.get("unit_price_cents")),
        })).collect::<Vec<_>>(),
        "total": format_cents(order.get("total_cents")),
        "currency": "USD",
        "status": order.get::<String, _>("status"),
        "reason": order.get::<Option<String>, _>("reason"),
    }))
}

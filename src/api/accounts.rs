//! `/v1/accounts`: create, read, deposit, withdraw.

use super::auth::Caller;
use super::body::{self, Encoding};
use super::dto::{AccountJson, BalanceChangeJson, BalanceChangeRequest, CreateAccountRequest};
use super::idempotency::key_id;
use super::problem::Problem;
use super::respond::{respond, Verb};
use super::ApiState;
use actix_web::{web, HttpRequest, HttpResponse};
use surge_actors::domain::{AccountId, OpId};
use surge_actors::{Query, Rejection};

fn account_path(raw: &str) -> Result<AccountId, Problem> {
    AccountId::parse(raw)
        .map_err(|_| Problem::rejection(Rejection::AccountNotFound, format!("no account {raw:?}")))
}

/// Create an account (operator).
#[utoipa::path(post, path = "/v1/accounts", operation_id = "create_account", tag = "accounts",
    request_body = CreateAccountRequest,
    responses((status = 201, body = AccountJson), (status = 200, body = AccountJson, description = "already exists with the same fields"),
              (status = 409, body = super::problem::ProblemDocument, description = "`account_exists`: it exists with another currency or overdraft limit")))]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: CreateAccountRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    let mut command = body.parse(&state.limits)?;
    // A bad key is refused even when the body's id makes it unused.
    let key = key_id(&request, &caller.sub, "account", AccountId::parse)?;
    if body.id.is_none() {
        if let Some(id) = key {
            if let surge_actors::Command::CreateAccount { id: account, .. } = &mut command {
                *account = id;
            }
        }
    }
    let target = if let surge_actors::Command::CreateAccount { id, .. } = &command {
        format!("account:{id}")
    } else {
        String::new()
    };
    let response = respond(state.engine.execute(command).await, Verb::Create);
    state
        .audit
        .answer(&caller.sub, "account.create", &target, response)
        .await
}

/// Read an account.
#[utoipa::path(get, path = "/v1/accounts/{id}", operation_id = "get_account", tag = "accounts",
    responses((status = 200, body = AccountJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_account(&id)?;
    let id = account_path(&id)?;
    Ok(respond(
        state.engine.query(Query::Account(id)).await,
        Verb::Act,
    ))
}

async fn change(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    account: String,
    withdraw: bool,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let account = account_path(&account)?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: BalanceChangeRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    let scope = if withdraw { "withdrawal" } else { "deposit" };
    let key = key_id(&request, &caller.sub, scope, OpId::parse)?;
    let target = format!("account:{account}");
    let command = body.parse(account, key, withdraw, &state.limits)?;
    let response = respond(state.engine.execute(command).await, Verb::Create);
    let action = if withdraw {
        "account.withdraw"
    } else {
        "account.deposit"
    };
    state
        .audit
        .answer(&caller.sub, action, &target, response)
        .await
}

/// Deposit money into an account (operator).
#[utoipa::path(post, path = "/v1/accounts/{id}/deposits", operation_id = "deposit", tag = "accounts",
    request_body = BalanceChangeRequest,
    responses((status = 201, body = BalanceChangeJson), (status = 404, body = super::problem::ProblemDocument),
              (status = 422, body = super::problem::ProblemDocument, description = "`currency_mismatch`, `invalid_amount`, `limit_exceeded`: not the account's currency, more decimals than it has, a balance out of range")))]
pub async fn deposit(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    change(state, caller, request, payload, id.into_inner(), false).await
}

/// Withdraw money from an account (operator).
#[utoipa::path(post, path = "/v1/accounts/{id}/withdrawals", operation_id = "withdraw", tag = "accounts",
    request_body = BalanceChangeRequest,
    responses((status = 201, body = BalanceChangeJson),
              (status = 422, body = super::problem::ProblemDocument, description = "`insufficient_funds`, `currency_mismatch`, `invalid_amount`, `limit_exceeded`: above `available`, not the account's currency, more decimals than it has, a balance out of range")))]
pub async fn withdraw(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    change(state, caller, request, payload, id.into_inner(), true).await
}

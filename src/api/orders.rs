//! `/v1/orders`: create (waiting up to `wait_ms` for a final state), read, cancel.

use super::auth::Caller;
use super::body::{self, Encoding};
use super::dto::{CreateOrderRequest, OrderJson};
use super::idempotency::key_id;
use super::problem::Problem;
use super::respond::{respond, Verb};
use super::ApiState;
use actix_web::{web, HttpRequest, HttpResponse};
use surge_actors::domain::{OpId, OrderId};
use surge_actors::{Command, EngineError, Query, Rejection, Reply};

fn order_path(raw: &str) -> Result<OrderId, Problem> {
    OrderId::parse(raw)
        .map_err(|_| Problem::rejection(Rejection::OrderNotFound, format!("no order {raw:?}")))
}

/// Place an order: reserve every line, hold the total on `account`, then commit the
/// stock and pay `merchant`. Answers 201 with the order once it is final (a
/// rejected order is a 201 with status `rejected`), or 202 with the order as it
/// stands when `wait_ms` passes first.
#[utoipa::path(post, path = "/v1/orders", operation_id = "create_order", tag = "orders",
    request_body = CreateOrderRequest,
    responses((status = 201, body = OrderJson, description = "The order reached a final state"),
              (status = 202, body = OrderJson, description = "The order is still in progress"),
              (status = 400, body = super::problem::ProblemDocument),
              (status = 403, body = super::problem::ProblemDocument),
              (status = 422, body = super::problem::ProblemDocument, description = "`same_account`: the merchant is the payer")))]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: CreateOrderRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    caller.require_account(&body.account)?;
    let key = key_id(&request, &caller.sub, "order", OrderId::parse)?;
    let command = body.parse(key, &state.limits)?;
    if body.account == body.merchant {
        // Well formed, as a payment from an account to itself is.
        return Err(Problem::rejection(
            Rejection::SameAccount,
            "an order's merchant must be another account than its payer",
        )
        .with_param("merchant"));
    }
    Ok(respond(state.engine.execute(command).await, Verb::Create))
}

/// Read an order.
#[utoipa::path(get, path = "/v1/orders/{id}", operation_id = "get_order", tag = "orders",
    responses((status = 200, body = OrderJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = order_path(&id)?;
    let result = state.engine.query(Query::Order(id)).await;
    check_scope(&caller, &result)?;
    Ok(respond(result, Verb::Act))
}

/// A client limited to some accounts may only see and cancel orders it pays for.
fn check_scope(caller: &Caller, result: &Result<Reply, EngineError>) -> Result<(), Problem> {
    if let Ok(Reply::Order { order, .. }) = result {
        caller.require_account(order.account.as_str())?;
    }
    Ok(())
}

/// Cancel an order that is not final yet: everything it holds is given back.
#[utoipa::path(post, path = "/v1/orders/{id}/cancel", operation_id = "cancel_order", tag = "orders",
    responses((status = 200, body = OrderJson),
              (status = 404, body = super::problem::ProblemDocument, description = "`order_not_found`: no such order"),
              (status = 409, body = super::problem::ProblemDocument, description = "`order_already_final`: the order's outcome is decided")))]
pub async fn cancel(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = order_path(&id)?;
    if caller.accounts.is_some() && caller.require_operator().is_err() {
        let result = state.engine.query(Query::Order(id.clone())).await;
        match &result {
            Ok(Reply::Order { .. }) => check_scope(&caller, &result)?,
            _ => return Ok(respond(result, Verb::Act)),
        }
    }
    let op = key_id(&request, &caller.sub, "cancel", OpId::parse)?;
    let command = Command::CancelOrder { id, op };
    Ok(respond(state.engine.execute(command).await, Verb::Act))
}

//! `/v1/payments`: create (single and batch), read, capture, void.

use super::auth::Caller;
use super::body::{self, Encoding};
use super::dto::{
    BatchResult, CaptureRequest, CreatePaymentRequest, PaymentJson, PaymentsBatchRequest,
    PaymentsBatchResponse,
};
use super::idempotency::key_id;
use super::problem::Problem;
use super::respond::{respond, Verb};
use super::ApiState;
use actix_web::{web, HttpRequest, HttpResponse};
use surge_actors::domain::{Amount, OpId, PaymentId};
use surge_actors::{Command, EngineError, Query, Rejection, Reply};

fn payment_path(raw: &str) -> Result<PaymentId, Problem> {
    PaymentId::parse(raw)
        .map_err(|_| Problem::rejection(Rejection::PaymentNotFound, format!("no payment {raw:?}")))
}

/// Create a payment: settle it now (`capture: true`) or authorize it.
#[utoipa::path(post, path = "/v1/payments", operation_id = "create_payment", tag = "payments",
    request_body = CreatePaymentRequest,
    responses((status = 201, body = PaymentJson),
              (status = 422, body = super::problem::ProblemDocument, description = "`insufficient_funds`, `account_not_found`, `currency_mismatch`, `same_account`, `limit_exceeded`: refused by the accounts (the payment is recorded as rejected)"),
              (status = 403, body = super::problem::ProblemDocument)))]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: CreatePaymentRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    caller.require_account(&body.from)?;
    let key = key_id(&request, &caller.sub, "payment", PaymentId::parse)?;
    let command = body.parse(key, &state.limits)?;
    Ok(respond(state.engine.execute(command).await, Verb::Create))
}

/// Read a payment.
#[utoipa::path(get, path = "/v1/payments/{id}", operation_id = "get_payment", tag = "payments",
    responses((status = 200, body = PaymentJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn get(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = payment_path(&id)?;
    let result = state.engine.query(Query::Payment(id)).await;
    check_scope(&caller, &result)?;
    Ok(respond(result, Verb::Act))
}

/// A client limited to some accounts may only see payments touching them.
fn check_scope(caller: &Caller, result: &Result<Reply, EngineError>) -> Result<(), Problem> {
    if let Ok(Reply::Payment { payment, .. }) = result {
        if !caller.may_use_account(payment.from.as_str())
            && !caller.may_use_account(payment.to.as_str())
        {
            return Err(Problem::forbidden("this token may not read this payment"));
        }
    }
    Ok(())
}

/// Only the payer's side may capture or void.
async fn check_payer(state: &ApiState, caller: &Caller, id: &PaymentId) -> Result<(), Problem> {
    if caller.accounts.is_none() || caller.require_operator().is_ok() {
        return Ok(());
    }
    match state.engine.query(Query::Payment(id.clone())).await {
        Ok(Reply::Payment { payment, .. }) => caller.require_account(payment.from.as_str()),
        Ok(other) => Err(match other.rejection() {
            Some(rejection) => Problem::rejection(rejection, rejection.title()),
            None => Problem::invalid_request("unexpected reply"),
        }),
        Err(error) => Err(error.into()),
    }
}

/// Capture an authorized payment, in part or whole; the rest of the hold is released.
#[utoipa::path(post, path = "/v1/payments/{id}/capture", operation_id = "capture_payment", tag = "payments",
    request_body = CaptureRequest,
    responses((status = 200, body = PaymentJson),
              (status = 409, body = super::problem::ProblemDocument, description = "`payment_not_authorized`: not, or no longer, authorized"),
              (status = 422, body = super::problem::ProblemDocument, description = "`amount_exceeds_authorization`, `invalid_amount`: above the authorized amount, more decimals than its currency has")))]
pub async fn capture(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = payment_path(&id)?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: CaptureRequest = if bytes.iter().all(u8::is_ascii_whitespace) {
        CaptureRequest { amount: None }
    } else {
        body::decode(&bytes, Encoding::of_request(&request)?)?
    };
    let amount = body
        .amount
        .as_deref()
        .map(|raw| Amount::parse(raw, state.limits.amount_max))
        .transpose()
        .map_err(|e| Problem::invalid_request(format!("amount: {e}")).with_param("amount"))?;
    check_payer(&state, &caller, &id).await?;
    let op = key_id(&request, &caller.sub, "capture", OpId::parse)?;
    let command = Command::CapturePayment { id, amount, op };
    Ok(respond(state.engine.execute(command).await, Verb::Act))
}

/// Void an authorized payment: the hold is released.
#[utoipa::path(post, path = "/v1/payments/{id}/void", operation_id = "void_payment", tag = "payments",
    responses((status = 200, body = PaymentJson),
              (status = 409, body = super::problem::ProblemDocument, description = "`payment_not_authorized`: not, or no longer, authorized")))]
pub async fn void(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let id = payment_path(&id)?;
    check_payer(&state, &caller, &id).await?;
    let op = key_id(&request, &caller.sub, "void", OpId::parse)?;
    let command = Command::VoidPayment { id, op };
    Ok(respond(state.engine.execute(command).await, Verb::Act))
}

/// Many payments in one request (JSON or MessagePack), answered in request order.
/// The engine sends one message per shard for the whole batch.
#[utoipa::path(post, path = "/v1/payments/batch", operation_id = "create_payments_batch", tag = "payments",
    request_body = PaymentsBatchRequest,
    responses((status = 200, body = PaymentsBatchResponse), (status = 400, body = super::problem::ProblemDocument)))]
pub async fn batch(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    let encoding = Encoding::of_request(&request)?;
    let bytes = body::read(payload, state.batch_body_limit_bytes).await?;
    let body: PaymentsBatchRequest = body::decode(&bytes, encoding)?;
    let max = state.limits.payments_batch_max;
    if body.payments.is_empty() || body.payments.len() > max {
        return Err(
            Problem::invalid_request(format!("a batch holds 1 to {max} payments"))
                .with_param("payments"),
        );
    }
    let mut results: Vec<Option<BatchResult>> = Vec::with_capacity(body.payments.len());
    let mut commands = Vec::with_capacity(body.payments.len());
    let mut slots = Vec::with_capacity(body.payments.len());
    for (index, payment) in body.payments.iter().enumerate() {
        let refused = |code: &str| BatchResult {
            id: payment.id.clone(),
            status: "rejected".into(),
            code: Some(code.into()),
        };
        if !caller.may_use_account(&payment.from) {
            results.push(Some(refused("forbidden")));
            continue;
        }
        match payment.parse(None, &state.limits) {
            Ok(command) => {
                results.push(None);
                commands.push(command);
                slots.push(index);
            }
            Err(_) => results.push(Some(refused("invalid_request"))),
        }
    }
    let replies = state.engine.execute_batch(commands).await;
    for (slot, reply) in slots.into_iter().zip(replies) {
        results[slot] = Some(match reply {
            Ok(Reply::Payment { payment, .. }) => BatchResult {
                id: Some(payment.id.to_string()),
                status: payment.status.as_str().into(),
                code: payment.code.map(|c| c.code().into()),
            },
            Ok(other) => BatchResult {
                id: body.payments[slot].id.clone(),
                status: "rejected".into(),
                code: other.rejection().map(|r| r.code().into()),
            },
            Err(error) => BatchResult {
                id: body.payments[slot].id.clone(),
                status: "error".into(),
                code: Some(Problem::from(error).code.into()),
            },
        });
    }
    let response = PaymentsBatchResponse {
        // Every slot was filled above: either refused at parse time or answered.
        results: results
            .into_iter()
            .map(|r| r.expect("every slot answered"))
            .collect(),
    };
    Ok(match Encoding::accepted(&request) {
        Encoding::MessagePack => HttpResponse::Ok().content_type("application/msgpack").body(
            rmp_serde::to_vec_named(&response)
                .map_err(|e| Problem::invalid_request(e.to_string()))?,
        ),
        Encoding::Json => HttpResponse::Ok().json(&response),
    })
}

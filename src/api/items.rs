//! `/v1/items`: create, read, restock, and reservations.

use super::auth::Caller;
use super::body::{self, Encoding};
use super::dto::{CreateItemRequest, ItemJson, ReservationJson, ReserveRequest, RestockRequest};
use super::idempotency::key_id;
use super::problem::Problem;
use super::respond::{respond, Verb};
use super::ApiState;
use actix_web::{web, HttpRequest, HttpResponse};
use surge_actors::domain::{OpId, Quantity, ReservationId, Sku};
use surge_actors::{Command, Query, Rejection};

fn sku_path(raw: &str) -> Result<Sku, Problem> {
    Sku::parse(raw)
        .map_err(|_| Problem::rejection(Rejection::ItemNotFound, format!("no item {raw:?}")))
}

fn reservation_path(raw: &str) -> Result<ReservationId, Problem> {
    ReservationId::parse(raw).map_err(|_| {
        Problem::rejection(
            Rejection::ReservationNotFound,
            format!("no reservation {raw:?}"),
        )
    })
}

/// Create an item (operator).
#[utoipa::path(post, path = "/v1/items", operation_id = "create_item", tag = "items",
    request_body = CreateItemRequest,
    responses((status = 201, body = ItemJson), (status = 200, body = ItemJson, description = "already exists with the same fields"),
              (status = 409, body = super::problem::ProblemDocument, description = "`item_exists`: it exists with another price, currency or stock")))]
pub async fn create(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: CreateItemRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    let command = body.parse(&state.limits)?;
    let target = if let Command::CreateItem { sku, .. } = &command {
        format!("item:{sku}")
    } else {
        String::new()
    };
    let response = respond(state.engine.execute(command).await, Verb::Create);
    state
        .audit
        .answer(&caller.sub, "item.create", &target, response)
        .await
}

/// Read an item's stock.
#[utoipa::path(get, path = "/v1/items/{sku}", operation_id = "get_item", tag = "items",
    responses((status = 200, body = ItemJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn get(
    state: web::Data<ApiState>,
    _caller: Caller,
    sku: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let sku = sku_path(&sku)?;
    Ok(respond(
        state.engine.query(Query::Item(sku)).await,
        Verb::Act,
    ))
}

/// Add stock (operator).
#[utoipa::path(post, path = "/v1/items/{sku}/restock", operation_id = "restock_item", tag = "items",
    request_body = RestockRequest,
    responses((status = 200, body = ItemJson), (status = 404, body = super::problem::ProblemDocument),
              (status = 422, body = super::problem::ProblemDocument, description = "`limit_exceeded`: the stock would leave its range")))]
pub async fn restock(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    sku: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let sku = sku_path(&sku)?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: RestockRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    let quantity = Quantity::parse(body.quantity, state.limits.quantity_max)
        .map_err(|e| Problem::invalid_request(format!("quantity: {e}")).with_param("quantity"))?;
    let op = key_id(&request, &caller.sub, "restock", OpId::parse)?;
    let target = format!("item:{sku}");
    let command = Command::Restock { sku, quantity, op };
    let response = respond(state.engine.execute(command).await, Verb::Act);
    state
        .audit
        .answer(&caller.sub, "item.restock", &target, response)
        .await
}

/// Reserve stock for `ttl_ms`; the engine releases it when it expires.
#[utoipa::path(post, path = "/v1/items/{sku}/reservations", operation_id = "reserve", tag = "items",
    request_body = ReserveRequest,
    responses((status = 201, body = ReservationJson),
              (status = 409, body = super::problem::ProblemDocument, description = "`out_of_stock`: less available than asked"),
              (status = 404, body = super::problem::ProblemDocument)))]
pub async fn reserve(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    sku: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    let sku = sku_path(&sku)?;
    let bytes = body::read(payload, state.body_limit_bytes).await?;
    let body: ReserveRequest = body::decode(&bytes, Encoding::of_request(&request)?)?;
    let key = key_id(&request, &caller.sub, "reservation", ReservationId::parse)?;
    let command = body.parse(sku, key, &state.limits)?;
    Ok(respond(state.engine.execute(command).await, Verb::Create))
}

/// Read a reservation.
#[utoipa::path(get, path = "/v1/items/{sku}/reservations/{id}", operation_id = "get_reservation", tag = "items",
    responses((status = 200, body = ReservationJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn get_reservation(
    state: web::Data<ApiState>,
    _caller: Caller,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    let (sku, id) = path.into_inner();
    let query = Query::Reservation(sku_path(&sku)?, reservation_path(&id)?);
    Ok(respond(state.engine.query(query).await, Verb::Act))
}

async fn close(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: (String, String),
    commit: bool,
) -> Result<HttpResponse, Problem> {
    let (sku, id) = path;
    let (sku, id) = (sku_path(&sku)?, reservation_path(&id)?);
    let command = if commit {
        let op = key_id(&request, &caller.sub, "commit", OpId::parse)?;
        Command::CommitReservation { sku, id, op }
    } else {
        let op = key_id(&request, &caller.sub, "release", OpId::parse)?;
        Command::ReleaseReservation { sku, id, op }
    };
    Ok(respond(state.engine.execute(command).await, Verb::Act))
}

/// Commit a held reservation: the units are sold.
#[utoipa::path(post, path = "/v1/items/{sku}/reservations/{id}/commit", operation_id = "commit_reservation", tag = "items",
    responses((status = 200, body = ReservationJson),
              (status = 409, body = super::problem::ProblemDocument, description = "`reservation_expired`, `reservation_released`: the reservation is closed that way")))]
pub async fn commit(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    close(state, caller, request, path.into_inner(), true).await
}

/// Release a held reservation: the units are available again.
#[utoipa::path(post, path = "/v1/items/{sku}/reservations/{id}/release", operation_id = "release_reservation", tag = "items",
    responses((status = 200, body = ReservationJson),
              (status = 409, body = super::problem::ProblemDocument, description = "`reservation_committed`: the reservation is committed")))]
pub async fn release(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    path: web::Path<(String, String)>,
) -> Result<HttpResponse, Problem> {
    close(state, caller, request, path.into_inner(), false).await
}

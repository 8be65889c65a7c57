//! The public HTTP API of docs/API.md for accounts, payments, items, reservations and orders:
//! parsing at the edge, auth, idempotency keys, and the mapping of engine replies
//! to statuses and problem documents.

pub mod accounts;
pub mod admin;
pub mod audit;
pub mod auth;
pub mod body;
pub mod constraints;
pub mod drain;
pub mod dto;
pub mod idempotency;
pub mod items;
pub mod jwt_keys;
pub mod limits;
pub mod links;
pub mod openapi;
pub mod orders;
pub mod overload;
pub mod payments;
pub mod problem;
pub mod respond;

use actix_web::web;
use surge_actors::Engine;

/// What every API handler needs.
pub struct ApiState {
    pub engine: Engine,
    pub limits: limits::ApiLimits,
    /// Largest body of a single-object request.
    pub body_limit_bytes: usize,
    /// Largest body of a batch request.
    pub batch_body_limit_bytes: usize,
    /// Whether `POST /admin/shards/{id}/fault` may crash shards.
    pub fault_injection: bool,
    pub audit: std::sync::Arc<audit::AuditLog>,
    /// Change data capture's sinks and their lag (none while it is off).
    pub cdc: std::sync::Arc<crate::cdc::CdcStatus>,
}

/// Registers the business routes. `web::Data<ApiState>` and
/// `web::Data<auth::AuthKeys>` must be in the app data.
pub fn configure(config: &mut web::ServiceConfig) {
    // actix-web tries routes in order and matches each dynamic path with a regex;
    // the three hot static paths go first so that the peak's requests skip them
    // (perf: route recognition was ~2% of CPU in a flash sale).
    config
        .route("/v1/orders", web::post().to(orders::create))
        .route("/v1/payments", web::post().to(payments::create))
        // Registered before `/v1/payments/{id}` so "batch" is not taken for an id.
        .route("/v1/payments/batch", web::post().to(payments::batch))
        // Any other method: 405 with `Allow: POST`, not a read of payment "batch".
        .route(
            "/v1/payments/batch",
            web::route().to(crate::startup::not_found),
        )
        .route("/v1/accounts", web::post().to(accounts::create))
        .route("/v1/accounts/{id}", web::get().to(accounts::get))
        .route(
            "/v1/accounts/{id}/deposits",
            web::post().to(accounts::deposit),
        )
        .route(
            "/v1/accounts/{id}/withdrawals",
            web::post().to(accounts::withdraw),
        )
        .route("/v1/payments/{id}", web::get().to(payments::get))
        .route(
            "/v1/payments/{id}/capture",
            web::post().to(payments::capture),
        )
        .route("/v1/payments/{id}/void", web::post().to(payments::void))
        .route("/v1/items", web::post().to(items::create))
        .route("/v1/items/{sku}", web::get().to(items::get))
        .route("/v1/items/{sku}/restock", web::post().to(items::restock))
        .route(
            "/v1/items/{sku}/reservations",
            web::post().to(items::reserve),
        )
        .route(
            "/v1/items/{sku}/reservations/{id}",
            web::get().to(items::get_reservation),
        )
        .route(
            "/v1/items/{sku}/reservations/{id}/commit",
            web::post().to(items::commit),
        )
        .route(
            "/v1/items/{sku}/reservations/{id}/release",
            web::post().to(items::release),
        )
        .route("/v1/orders/{id}", web::get().to(orders::get))
        .route("/v1/orders/{id}/cancel", web::post().to(orders::cancel))
        .route("/admin/shards", web::get().to(admin::list))
        .route("/admin/shards/{id}/restart", web::post().to(admin::restart))
        .route(
            "/admin/shards/{id}/snapshot",
            web::post().to(admin::snapshot),
        )
        .route("/admin/shards/{id}/fault", web::post().to(admin::fault))
        .route("/admin/audit", web::get().to(admin::audit));
}

/// The OpenAPI document of every route (docs/API.md): this module's, the feed's
/// and the operations endpoints of `startup` and `metrics`.
#[derive(utoipa::OpenApi)]
#[openapi(
    paths(
        accounts::create, accounts::get, accounts::deposit, accounts::withdraw,
        payments::create, payments::batch, payments::get, payments::capture, payments::void,
        items::create, items::get, items::restock, items::reserve, items::get_reservation,
        items::commit, items::release,
        orders::create, orders::get, orders::cancel, crate::feed::ws::connect,
        admin::list, admin::restart, admin::snapshot, admin::fault, admin::audit,
        crate::startup::health, crate::startup::ready, crate::metrics::endpoint,
        crate::startup::openapi,
    ),
    components(schemas(
        problem::ProblemDocument,
        dto::CreateAccountRequest, dto::AccountJson, dto::BalanceChangeRequest, dto::BalanceChangeJson,
        dto::CreatePaymentRequest, dto::CaptureRequest, dto::PaymentsBatchRequest,
        dto::PaymentsBatchResponse, dto::BatchResult, dto::PaymentJson,
        dto::CreateItemRequest, dto::RestockRequest, dto::ReserveRequest, dto::ItemJson,
        dto::ReservationJson,
        dto::CreateOrderRequest, dto::OrderLineRequest, dto::OrderJson, dto::OrderLineJson,
        dto::OrderHistoryJson,
        admin::ShardJson, admin::CdcLagJson, admin::RestartJson, admin::SnapshotJson, admin::FaultRequest,
        admin::AuditEntryJson,
        admin::AuditPageJson,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("JWT")
                    .description(Some(
                        "A JWT signed with RS256, ES256 or EdDSA by a configured public key \
                         (auth.jwks_path, auth.public_key_path), or with HS256 and the shared \
                         secret where HS256 is allowed (docs/API.md, Auth).",
                    ))
                    .build(),
            ),
        );
    }
}

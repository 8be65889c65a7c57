//! Operator endpoints: list, snapshot, restart and crash shards; the audit log.

use super::auth::Caller;
use super::problem::Problem;
use super::ApiState;
use crate::storage::audit::AuditFilter;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::{Deserialize, Serialize};
use surge_actors::engine::{ControlReply, ControlRequest};
use surge_actors::ShardId;
use utoipa::ToSchema;

#[derive(Debug, Serialize, ToSchema)]
pub struct ShardJson {
    pub id: u32,
    pub status: String,
    pub restarts: u64,
    pub last_seq: u64,
    pub snapshot_seq: u64,
    pub mailbox_len: u64,
    pub accounts: u64,
    pub items: u64,
    pub orders: u64,
    pub payments: u64,
    /// Open payments, orders and reservations in memory, and the ceiling at
    /// which new ones are refused with 503 `overloaded`.
    pub open_entities: u64,
    pub open_entities_max: u64,
    /// Reservations in memory (held, or finished and not yet archived).
    pub reservations: u64,
    /// Idempotency records of operations in memory.
    pub operation_records: u64,
    /// Saga step records in memory.
    pub step_records: u64,
    /// Pending deadlines: expiries, step resends, record prunes.
    pub timers: u64,
    /// Finished entities and records waiting to go to the archive.
    pub archive_queue: u64,
    /// Size of the filter of archived keys.
    pub archived_filter_bytes: u64,
    /// Keys the filter holds: past about `archived_filter_bytes * 8 / 14`,
    /// more of the commands naming new ids pay a lookup in the archive.
    pub archived_filter_keys: u64,
    /// Change data capture: each sink's progress on this shard (empty while
    /// it is off).
    pub cdc: Vec<CdcLagJson>,
}

/// One change data capture sink's progress on one shard.
#[derive(Debug, Serialize, ToSchema)]
pub struct CdcLagJson {
    /// `amqp` or `redis-stream`.
    pub sink: String,
    /// Every change up to this sequence number was confirmed by the sink.
    pub cursor: u64,
    /// Durable events after the cursor.
    pub lag_events: u64,
    /// Age of the oldest change not confirmed yet (0: caught up).
    pub lag_seconds: u64,
    /// Whether the sink is further behind than `cdc.lag_limit_events` on
    /// some shard (journal pruning no longer waits for it).
    pub over_lag_limit: bool,
}

/// Every sink's progress on `shard`.
pub(crate) fn cdc_lags(cdc: &crate::cdc::CdcStatus, shard: usize) -> Vec<CdcLagJson> {
    use std::sync::atomic::Ordering::Relaxed;
    cdc.sinks
        .iter()
        .filter_map(|sink| {
            let lag = sink.shards.get(shard)?;
            Some(CdcLagJson {
                sink: sink.name.clone(),
                cursor: lag.cursor.load(Relaxed),
                lag_events: sink.lag_events(shard),
                lag_seconds: lag.lag_ms() / 1_000,
                over_lag_limit: sink.over_lag_limit.load(Relaxed),
            })
        })
        .collect()
}

#[derive(Debug, Serialize, ToSchema)]
pub struct RestartJson {
    pub id: u32,
    pub status: String,
    pub recovered_seq: u64,
    pub recovery_ms: u64,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct SnapshotJson {
    pub id: u32,
    pub snapshot_seq: u64,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FaultRequest {
    /// Only "panic" is supported.
    pub kind: String,
}

fn shard_path(state: &ApiState, raw: &str) -> Result<ShardId, Problem> {
    let count = state.engine.router().shards();
    raw.parse::<u32>()
        .ok()
        .filter(|id| *id < count)
        .map(ShardId)
        .ok_or_else(|| {
            Problem::new(
                404,
                "shard_not_found",
                "Shard not found",
                format!("no shard {raw:?} (0..{count})"),
            )
        })
}

/// Every shard's status (operator).
#[utoipa::path(get, path = "/admin/shards", operation_id = "list_shards", tag = "admin",
    responses((status = 200, body = [ShardJson])))]
pub async fn list(state: web::Data<ApiState>, caller: Caller) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let shards: Vec<ShardJson> = state
        .engine
        .shard_status()
        .into_iter()
        .map(|s| ShardJson {
            id: s.id.0,
            status: s.state.as_str().to_owned(),
            restarts: s.restarts,
            last_seq: s.last_seq,
            snapshot_seq: s.snapshot_seq,
            mailbox_len: s.mailbox_len,
            accounts: s.accounts,
            items: s.items,
            orders: s.orders,
            payments: s.payments,
            open_entities: s.open_entities,
            open_entities_max: s.open_entities_max,
            reservations: s.tables.reservations,
            operation_records: s.tables.operation_records,
            step_records: s.tables.step_records,
            timers: s.tables.timers,
            archive_queue: s.tables.archive_queue,
            archived_filter_bytes: s.tables.archived_filter_bytes,
            archived_filter_keys: s.tables.archived_filter_keys,
            cdc: cdc_lags(&state.cdc, s.id.0 as usize),
        })
        .collect();
    Ok(HttpResponse::Ok().json(shards))
}

/// Restart a shard; answers once it runs again (operator).
#[utoipa::path(post, path = "/admin/shards/{id}/restart", operation_id = "restart_shard", tag = "admin",
    responses((status = 200, body = RestartJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn restart(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let shard = shard_path(&state, &id)?;
    let result = state.engine.control(shard, ControlRequest::Restart).await;
    let target = format!("shard:{}", shard.0);
    match result {
        Ok(ControlReply::Restarted {
            recovered_seq,
            recovery_ms,
        }) => {
            state
                .audit
                .record(&caller.sub, "shard.restart", &target, "ok")
                .await?;
            Ok(HttpResponse::Ok().json(RestartJson {
                id: shard.0,
                status: "running".into(),
                recovered_seq,
                recovery_ms,
            }))
        }
        Ok(_) | Err(_) => {
            state
                .audit
                .record(&caller.sub, "shard.restart", &target, "failed")
                .await?;
            Err(Problem::from(surge_actors::EngineError::Retry))
        }
    }
}

/// Write a snapshot of a shard now (operator).
#[utoipa::path(post, path = "/admin/shards/{id}/snapshot", operation_id = "snapshot_shard", tag = "admin",
    responses((status = 200, body = SnapshotJson), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn snapshot(
    state: web::Data<ApiState>,
    caller: Caller,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let shard = shard_path(&state, &id)?;
    let target = format!("shard:{}", shard.0);
    match state.engine.control(shard, ControlRequest::Snapshot).await {
        Ok(ControlReply::Snapshot { snapshot_seq }) => {
            state
                .audit
                .record(&caller.sub, "shard.snapshot", &target, "ok")
                .await?;
            Ok(HttpResponse::Ok().json(SnapshotJson {
                id: shard.0,
                snapshot_seq,
            }))
        }
        _ => {
            state
                .audit
                .record(&caller.sub, "shard.snapshot", &target, "failed")
                .await?;
            Err(Problem::from(surge_actors::EngineError::Retry))
        }
    }
}

/// Crash a shard (operator; only with `admin.fault_injection` on, else 404).
#[utoipa::path(post, path = "/admin/shards/{id}/fault", operation_id = "inject_shard_fault", tag = "admin",
    request_body = FaultRequest,
    responses((status = 200), (status = 404, body = super::problem::ProblemDocument)))]
pub async fn fault(
    state: web::Data<ApiState>,
    caller: Caller,
    request: HttpRequest,
    payload: web::Payload,
    id: web::Path<String>,
) -> Result<HttpResponse, Problem> {
    if !state.fault_injection {
        return Err(Problem::new(
            404,
            "not_found",
            "Not found",
            "fault injection is disabled",
        ));
    }
    caller.require_operator()?;
    let shard = shard_path(&state, &id)?;
    let bytes = super::body::read(payload, state.body_limit_bytes).await?;
    let body: FaultRequest =
        super::body::decode(&bytes, super::body::Encoding::of_request(&request)?)?;
    if body.kind != "panic" {
        return Err(Problem::invalid_request("kind must be \"panic\"").with_param("kind"));
    }
    let target = format!("shard:{}", shard.0);
    let result = state.engine.control(shard, ControlRequest::Panic).await;
    let outcome = if result.is_ok() { "ok" } else { "failed" };
    state
        .audit
        .record(&caller.sub, "shard.fault.panic", &target, outcome)
        .await?;
    result.map_err(Problem::from)?;
    Ok(HttpResponse::Ok().json(serde_json::json!({"id": shard.0, "kind": "panic"})))
}

/// Most rows one page of the audit trail holds.
pub const AUDIT_PAGE_ROWS_MAX: i64 = 1_000;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Rows per page, 1 to 1000 (default 100).
    pub limit: Option<i64>,
    /// A page's `next_cursor`: the rows before it.
    pub cursor: Option<String>,
    pub sub: Option<String>,
    pub action: Option<String>,
    /// RFC 3339 times: rows at or after `since`, before `until`.
    pub since: Option<String>,
    pub until: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditEntryJson {
    pub seq: i64,
    pub at: String,
    pub sub: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageJson {
    pub entries: Vec<AuditEntryJson>,
    /// Pass as `cursor` for the rows before these; null at the start of the trail.
    pub next_cursor: Option<String>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, Problem> {
    value
        .map(|text| {
            chrono::DateTime::parse_from_rfc3339(text)
                .map(|time| time.timestamp_millis())
                .map_err(|_| {
                    Problem::invalid_request(format!("{name} must be an RFC 3339 time"))
                        .with_param(name)
                })
        })
        .transpose()
}

/// The audit trail, newest first, a page at a time (operator).
#[utoipa::path(get, path = "/admin/audit", operation_id = "list_audit_entries", tag = "admin", params(AuditQuery),
    responses((status = 200, body = AuditPageJson), (status = 400, body = super::problem::ProblemDocument)))]
pub async fn audit(
    state: web::Data<ApiState>,
    caller: Caller,
    query: web::Query<AuditQuery>,
) -> Result<HttpResponse, Problem> {
    caller.require_operator()?;
    let limit = query.limit.unwrap_or(100);
    if !(1..=AUDIT_PAGE_ROWS_MAX).contains(&limit) {
        return Err(Problem::invalid_request(format!(
            "limit must be between 1 and {AUDIT_PAGE_ROWS_MAX}"
        ))
        .with_param("limit"));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|cursor| {
            cursor
                .parse::<i64>()
                .map_err(|_| Problem::invalid_request("bad cursor").with_param("cursor"))
        })
        .transpose()?;
    let filter = AuditFilter {
        before,
        sub: query.sub.clone(),
        action: query.action.clone(),
        since_ms: time_param("since", query.since.as_deref())?,
        until_ms: time_param("until", query.until.as_deref())?,
        limit,
    };
    let rows = state.audit.page(&filter).await?;
    let next_cursor = match rows.last() {
        Some(last) if rows.len() as i64 == limit && last.seq > 1 => Some(last.seq.to_string()),
        _ => None,
    };
    let entries = rows
        .into_iter()
        .map(|row| AuditEntryJson {
            seq: row.seq,
            at: super::dto::format_time(row.at_ms as u64),
            sub: row.sub,
            action: row.action,
            target: row.target,
            outcome: row.outcome,
            detail: row.detail,
            prev_hash: row.prev_hash,
            hash: row.hash,
        })
        .collect();
    Ok(HttpResponse::Ok().json(AuditPageJson {
        entries,
        next_cursor,
    }))
}

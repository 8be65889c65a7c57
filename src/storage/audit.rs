//! The audit trail's table (`audit`, both backends): hash-chained rows, written
//! in batches by one writer so that the chain has one order, read by page and
//! verified whole (`surge audit verify`).

use anyhow::Context as _;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::{PgPool, Row, SqlitePool};
use std::str::FromStr;
use std::sync::Mutex;

/// The `prev_hash` of the first row.
pub const GENESIS_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// One row of the trail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct AuditRow {
    pub seq: i64,
    pub at_ms: i64,
    pub sub: String,
    pub action: String,
    pub target: String,
    pub outcome: String,
    pub detail: String,
    pub prev_hash: String,
    pub hash: String,
}

impl AuditRow {
    /// SHA-256 over the row's fields (a JSON array, so no field can run into
    /// the next) and the previous row's hash, in hex.
    pub fn chained_hash(&self) -> String {
        let fields = serde_json::json!([
            self.seq,
            self.at_ms,
            self.sub,
            self.action,
            self.target,
            self.outcome,
            self.detail,
            self.prev_hash,
        ]);
        let digest = Sha256::digest(fields.to_string().as_bytes());
        digest.iter().map(|byte| format!("{byte:02x}")).collect()
    }
}

/// Which rows a page holds: newest first, below `before` (a cursor: a `seq`).
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    pub before: Option<i64>,
    pub sub: Option<String>,
    pub action: Option<String>,
    pub since_ms: Option<i64>,
    pub until_ms: Option<i64>,
    pub limit: i64,
}

/// Where the trail lives: the journal's database.
pub enum AuditDb {
    Postgres(PgPool),
    Sqlite(SqlitePool),
    /// `memory://` storage (tests): kept as long as the process.
    Memory(Mutex<Vec<AuditRow>>),
}

/// `$sql` once per database backend, with `$pool` its pool and `$p` its
/// placeholder sigil (`$` or `?`; the statements are the same otherwise), or
/// `$memory` with `$rows` for the memory backend. The two arms differ only in
/// their types, which is why this is a macro and not a function.
macro_rules! on_database {
    ($db:expr, |$pool:ident, $p:ident| $sql:expr, |$rows:ident| $memory:expr) => {
        match $db {
            AuditDb::Postgres($pool) => {
                let $p = "$";
                $sql
            }
            AuditDb::Sqlite($pool) => {
                let $p = "?";
                $sql
            }
            AuditDb::Memory($rows) => $memory,
        }
    };
}

const COLUMNS: &str = "seq, at_ms, sub, action, target, outcome, detail, prev_hash, hash";

impl AuditDb {
    /// Opens the trail of the storage `url` names; its migrations have run
    /// (`storage::open`, or `surge migrate`).
    pub async fn open(url: &str, timeout: std::time::Duration) -> anyhow::Result<Self> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = sqlx::postgres::PgPoolOptions::new()
                .max_connections(2)
                .acquire_timeout(timeout)
                .connect(url)
                .await
                .context("cannot open the audit trail's PostgreSQL database")?;
            Ok(Self::Postgres(pool))
        } else if url.starts_with("sqlite:") {
            let connect = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Full)
                .busy_timeout(timeout);
            let pool = sqlx::sqlite::SqlitePoolOptions::new()
                .max_connections(1)
                .acquire_timeout(timeout)
                .connect_with(connect)
                .await
                .context("cannot open the audit trail's SQLite database")?;
            Ok(Self::Sqlite(pool))
        } else {
            Ok(Self::Memory(Mutex::default()))
        }
    }

    /// The last row's `seq` and `hash`, where the chain goes on from.
    pub async fn last(&self) -> anyhow::Result<Option<(i64, String)>> {
        let query = "SELECT seq, hash FROM audit ORDER BY seq DESC LIMIT 1";
        Ok(on_database!(
            self,
            |pool, _placeholder| sqlx::query(query)
                .fetch_optional(pool)
                .await?
                .map(|row| (row.get(0), row.get(1))),
            |rows| lock(rows).last().map(|row| (row.seq, row.hash.clone()))
        ))
    }

    /// Stores `rows`, all or none.
    pub async fn insert(&self, rows: &[AuditRow]) -> anyhow::Result<()> {
        on_database!(
            self,
            |pool, placeholder| {
                let mut tx = pool.begin().await?;
                for row in rows {
                    bind(sqlx::query(&insert_sql(placeholder)), row)
                        .execute(&mut *tx)
                        .await?;
                }
                tx.commit().await?;
            },
            |stored| lock(stored).extend(rows.iter().cloned())
        );
        Ok(())
    }

    /// A page of rows, newest first.
    pub async fn page(&self, filter: &AuditFilter) -> anyhow::Result<Vec<AuditRow>> {
        let sql = |p: &str| {
            format!(
                "SELECT {COLUMNS} FROM audit WHERE ({p}1 IS NULL OR seq < {p}1) \
                 AND ({p}2 IS NULL OR sub = {p}2) AND ({p}3 IS NULL OR action = {p}3) \
                 AND ({p}4 IS NULL OR at_ms >= {p}4) AND ({p}5 IS NULL OR at_ms < {p}5) \
                 ORDER BY seq DESC LIMIT {p}6"
            )
        };
        let limit = filter.limit;
        Ok(on_database!(
            self,
            |pool, placeholder| sqlx::query(&sql(placeholder))
                .bind(filter.before)
                .bind(filter.sub.as_deref())
                .bind(filter.action.as_deref())
                .bind(filter.since_ms)
                .bind(filter.until_ms)
                .bind(limit)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode)
                .collect(),
            |rows| {
                let rows = lock(rows);
                let mut page: Vec<AuditRow> = rows
                    .iter()
                    .filter(|row| matches(filter, row))
                    .cloned()
                    .collect();
                page.reverse();
                page.truncate(usize::try_from(limit).unwrap_or(0));
                page
            }
        ))
    }

    /// Every row, in chain order.
    pub async fn all(&self) -> anyhow::Result<Vec<AuditRow>> {
        let query = format!("SELECT {COLUMNS} FROM audit ORDER BY seq");
        Ok(on_database!(
            self,
            |pool, _placeholder| sqlx::query(&query)
                .fetch_all(pool)
                .await?
                .iter()
                .map(decode)
                .collect(),
            |rows| lock(rows).clone()
        ))
    }
}

fn matches(filter: &AuditFilter, row: &AuditRow) -> bool {
    filter.before.is_none_or(|before| row.seq < before)
        && filter.sub.as_ref().is_none_or(|sub| &row.sub == sub)
        && filter
            .action
            .as_ref()
            .is_none_or(|action| &row.action == action)
        && filter.since_ms.is_none_or(|since| row.at_ms >= since)
        && filter.until_ms.is_none_or(|until| row.at_ms < until)
}

fn lock(rows: &Mutex<Vec<AuditRow>>) -> std::sync::MutexGuard<'_, Vec<AuditRow>> {
    rows.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

fn insert_sql(placeholder: &str) -> String {
    let marks: Vec<String> = (1..=9).map(|n| format!("{placeholder}{n}")).collect();
    format!(
        "INSERT INTO audit ({COLUMNS}) VALUES ({})",
        marks.join(", ")
    )
}

fn bind<'q, DB: sqlx::Database>(
    query: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    row: &'q AuditRow,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    query
        .bind(row.seq)
        .bind(row.at_ms)
        .bind(row.sub.as_str())
        .bind(row.action.as_str())
        .bind(row.target.as_str())
        .bind(row.outcome.as_str())
        .bind(row.detail.as_str())
        .bind(row.prev_hash.as_str())
        .bind(row.hash.as_str())
}

fn decode<R: Row>(row: &R) -> AuditRow
where
    usize: sqlx::ColumnIndex<R>,
    i64: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
    String: for<'r> sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    AuditRow {
        seq: row.get(0),
        at_ms: row.get(1),
        sub: row.get(2),
        action: row.get(3),
        target: row.get(4),
        outcome: row.get(5),
        detail: row.get(6),
        prev_hash: row.get(7),
        hash: row.get(8),
    }
}

/// Checks the whole chain: every `seq` one more than the last, every
/// `prev_hash` the last row's `hash`, every `hash` the row's own. The first
/// row that fails is named: an edited row fails its own hash, a deleted one
/// leaves a gap (or, if it was the last, only the count tells).
pub fn verify(rows: &[AuditRow]) -> Result<usize, String> {
    let mut prev_hash = GENESIS_HASH.to_owned();
    for (index, row) in rows.iter().enumerate() {
        let expected_seq = index as i64 + 1;
        if row.seq != expected_seq {
            return Err(format!(
                "row {expected_seq} is missing (the next row is {}): rows were deleted",
                row.seq
            ));
        }
        if row.prev_hash != prev_hash {
            return Err(format!(
                "row {} does not follow row {}: its prev_hash is not that row's hash",
                row.seq,
                row.seq - 1
            ));
        }
        if row.chained_hash() != row.hash {
            return Err(format!(
                "row {} was changed: its hash does not match its fields",
                row.seq
            ));
        }
        prev_hash.clone_from(&row.hash);
    }
    Ok(rows.len())
}

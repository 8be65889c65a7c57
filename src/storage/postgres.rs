//! The PostgreSQL journal (production backend).

use super::archive::{ArchiveBackend, ArchiveRow, ArchiveWorkers, Found, ROWS_PER_STATEMENT_MAX};
use super::changes::{ChangeLog, ChangeRow};
use super::writer::{GroupWriter, WriteRecords};
use super::{
    checksum_from_sql, checksum_to_sql, format_from_sql, format_to_sql, snapshot_chunk_count,
    snapshot_chunks, timeout, unavailable, valid_snapshot, ChunkAssembler, StorageOptions,
};
use anyhow::Context as _;
use futures::future::BoxFuture;
use futures::TryStreamExt as _;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgRow};
use sqlx::{PgConnection, PgPool, Row};
use std::collections::HashMap;
use std::collections::HashSet;
use std::str::FromStr;
use std::sync::Arc;
use surge_actors::archive::{ArchiveKey, Archived};
use surge_actors::journal::{JournalRecord, Lookups, Recovered, Snapshot};
use surge_actors::{Journal, JournalError, ShardId};

pub struct PostgresJournal {
    pool: PgPool,
    writer: GroupWriter,
    archive: ArchiveWorkers,
    cdc_lag_limit_events: u64,
}

/// The archive's tables, on the journal's pool.
struct Archive {
    pool: PgPool,
}

struct Writer {
    pool: PgPool,
}

impl PostgresJournal {
    pub async fn open(options: &StorageOptions) -> anyhow::Result<Self> {
        let connect = PgConnectOptions::from_str(&options.url)
            .context("invalid PostgreSQL url")?
            // A statement that takes longer than the timeout is cancelled by the server
            // too, so a slow database cannot pile up work behind a dead request.
            .options([("statement_timeout", options.timeout_ms.to_string())]);
        let pool = PgPoolOptions::new()
            .max_connections(options.pool_connections_max.max(2))
            .acquire_timeout(timeout(options))
            .connect_with(connect)
            .await
            .with_context(|| format!("cannot connect to PostgreSQL at {}", redact(&options.url)))?;
        sqlx::migrate!("./migrations/postgres")
            .run(&pool)
            .await
            .context("PostgreSQL migrations failed")?;
        let writer = GroupWriter::start(
            Arc::new(Writer { pool: pool.clone() }),
            options.records_per_write_max,
        );
        let archive = ArchiveWorkers::start(Arc::new(Archive { pool: pool.clone() }));
        Ok(Self {
            pool,
            writer,
            archive,
            cdc_lag_limit_events: options.cdc_lag_limit_events,
        })
    }
}

/// The URL without its password, for messages.
pub(crate) fn redact(url: &str) -> String {
    match url.split_once('@') {
        Some((credentials, host)) => match credentials.rsplit_once(':') {
            Some((user, _)) if user.contains("//") && !user.ends_with('/') => {
                format!("{user}:***@{host}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    }
}

impl WriteRecords for Writer {
    fn write(
        &self,
        records: Vec<JournalRecord>,
    ) -> BoxFuture<'_, Result<Vec<Result<(), JournalError>>, JournalError>> {
        Box::pin(async move {
            let shards: Vec<i32> = records.iter().map(|r| r.shard.0 as i32).collect();
            let first: Vec<i64> = records.iter().map(|r| r.first_seq as i64).collect();
            let last: Vec<i64> = records.iter().map(|r| r.last_seq as i64).collect();
            let epochs: Vec<i64> = records.iter().map(|r| r.epoch as i64).collect();
            let formats: Vec<i32> = records.iter().map(|r| format_to_sql(r.format)).collect();
            let checksums: Vec<i64> = records
                .iter()
                .map(|r| checksum_to_sql(r.checksum))
                .collect();
            let payloads: Vec<&[u8]> = records.iter().map(|r| r.payload.as_slice()).collect();
            let changes: Vec<Option<&[u8]>> =
                records.iter().map(|r| r.changes.as_deref()).collect();
            // One statement for the whole group; the join with the leases refuses
            // records from a stale owner (fencing) without a second round trip.
            let rows = sqlx::query(
                "INSERT INTO journal (shard, first_seq, last_seq, epoch, payload, checksum, format,
                                      changes)
                 SELECT r.shard, r.first_seq, r.last_seq, r.epoch, r.payload, r.checksum, r.format,
                        r.changes
                 FROM UNNEST($1::int4[], $2::int8[], $3::int8[], $4::int8[], $5::bytea[], $6::int8[],
                             $7::int4[], $8::bytea[])
                      AS r(shard, first_seq, last_seq, epoch, payload, checksum, format, changes)
                 JOIN shard_leases l ON l.shard = r.shard AND l.epoch = r.epoch
                 RETURNING shard, first_seq",
            )
            .bind(&shards)
            .bind(&first)
            .bind(&last)
            .bind(&epochs)
            .bind(&payloads)
            .bind(&checksums)
            .bind(&formats)
            .bind(&changes)
            .fetch_all(&self.pool)
            .await
            .map_err(unavailable)?;
            let written: HashSet<(i32, i64)> = rows
                .iter()
                .map(|row| (row.get::<i32, _>(0), row.get::<i64, _>(1)))
                .collect();
            Ok(records
                .iter()
                .map(|r| {
                    if written.contains(&(r.shard.0 as i32, r.first_seq as i64)) {
                        Ok(())
                    } else {
                        Err(JournalError::Fenced {
                            shard: r.shard,
                            attempted: r.epoch,
                            current: 0,
                        })
                    }
                })
                .collect())
        })
    }
}

impl Journal for PostgresJournal {
    fn acquire(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let epoch: i64 = sqlx::query_scalar(
                "INSERT INTO shard_leases (shard, epoch) VALUES ($1, 1)
                 ON CONFLICT (shard) DO UPDATE
                 SET epoch = shard_leases.epoch + 1, acquired_at = now()
                 RETURNING epoch",
            )
            .bind(shard.0 as i32)
            .fetch_one(&pool)
            .await
            .map_err(unavailable)?;
            Ok(epoch as u64)
        })
    }

    fn append(&self, record: JournalRecord) -> BoxFuture<'static, Result<(), JournalError>> {
        self.writer.append(record)
    }

    fn archive(
        &self,
        shard: ShardId,
        entities: Vec<Archived>,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        self.archive.store(shard, entities)
    }

    fn lookup(&self, keys: Vec<ArchiveKey>) -> BoxFuture<'static, Result<Lookups, JournalError>> {
        self.archive.lookup(keys)
    }

    fn ping(&self) -> BoxFuture<'static, Result<(), JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            sqlx::query("SELECT 1")
                .execute(&pool)
                .await
                .map(|_| ())
                .map_err(unavailable)
        })
    }

    fn load(&self, shard: ShardId) -> BoxFuture<'static, Result<Recovered, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            // One consistent view of snapshots and journal: a snapshot saved
            // meanwhile prunes the older snapshot and the journal before it, which
            // separate reads could see half of (a fallback snapshot whose chunks or
            // following records are gone).
            let mut tx = pool.begin().await.map_err(unavailable)?;
            sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY")
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            let (snapshot, base) = load_snapshot(&mut tx, shard).await?;
            let after = snapshot.as_ref().map_or(0, |s| s.seq) as i64;
            let rows = sqlx::query(
                "SELECT first_seq, last_seq, epoch, payload, checksum, format FROM journal
                 WHERE shard = $1 AND last_seq > $2 ORDER BY first_seq",
            )
            .bind(shard.0 as i32)
            .bind(after)
            .fetch_all(&mut *tx)
            .await
            .map_err(unavailable)?;
            let records = rows
                .into_iter()
                .map(|row| {
                    let first_seq: i64 = row.get(0);
                    Ok(JournalRecord {
                        shard,
                        first_seq: first_seq as u64,
                        last_seq: row.get::<i64, _>(1) as u64,
                        epoch: row.get::<i64, _>(2) as u64,
                        format: format_from_sql(shard, "record", first_seq, row.get(5))?,
                        payload: row.get(3),
                        checksum: checksum_from_sql(row.get::<i64, _>(4)),
                        changes: None,
                    })
                })
                .collect::<Result<_, JournalError>>()?;
            tx.commit().await.map_err(unavailable)?;
            Ok(Recovered {
                snapshot,
                base,
                records,
            })
        })
    }

    fn save_snapshot(&self, snapshot: Snapshot) -> BoxFuture<'static, Result<(), JournalError>> {
        let pool = self.pool.clone();
        let cdc_lag_limit_events = self.cdc_lag_limit_events;
        Box::pin(async move {
            let shard = snapshot.shard.0 as i32;
            let seq = snapshot.seq as i64;
            let mut tx = pool.begin().await.map_err(unavailable)?;
            // A snapshot at this sequence number may be stored already (asked for
            // twice with nothing in between, or a torn one that recovery skipped).
            // It is replaced whole: the same state can encode to other bytes (map
            // order), and one head must never describe chunks of two encodings.
            for table in ["snapshots", "snapshot_chunks"] {
                sqlx::query(&format!(
                    "DELETE FROM {table} WHERE shard = $1 AND seq = $2"
                ))
                .bind(shard)
                .bind(seq)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            for (index, chunk) in snapshot_chunks(&snapshot.payload) {
                sqlx::query(
                    "INSERT INTO snapshot_chunks (shard, seq, chunk, payload)
                     VALUES ($1, $2, $3, $4)",
                )
                .bind(shard)
                .bind(seq)
                .bind(index)
                .bind(chunk)
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            }
            // The head goes last: recovery only looks for chunks a head announces.
            sqlx::query(
                "INSERT INTO snapshots (shard, seq, payload, checksum, chunks, bytes, format, base_seq)
                 VALUES ($1, $2, ''::bytea, $3, $4, $5, $6, $7)",
            )
            .bind(shard)
            .bind(seq)
            .bind(checksum_to_sql(snapshot.checksum))
            .bind(snapshot_chunk_count(&snapshot.payload))
            .bind(snapshot.payload.len() as i64)
            .bind(format_to_sql(snapshot.format))
            .bind(snapshot.base_seq.map(|base| base as i64))
            .execute(&mut *tx)
            .await
            .map_err(unavailable)?;
            let cdc_keep_after = snapshot.seq.saturating_sub(cdc_lag_limit_events) as i64;
            prune_before_snapshots(&mut tx, shard, cdc_keep_after).await?;
            tx.commit().await.map_err(unavailable)
        })
    }
}

/// Keeps the newest two snapshots of a shard, the bases they name (see
/// `surge_actors::filter`) and the journal after the older of the two (recovery
/// falls back to it if the newest is torn); drops the rest. Journal rows a change
/// data capture cursor of the shard has not passed stay too, unless they end at
/// or before `cdc_keep_after` (the lag limit: see `cdc::Tailer`).
async fn prune_before_snapshots(
    conn: &mut PgConnection,
    shard: i32,
    cdc_keep_after: i64,
) -> Result<(), JournalError> {
    sqlx::query(
        "DELETE FROM snapshots WHERE shard = $1
         AND seq < (SELECT min(seq) FROM (SELECT seq FROM snapshots WHERE shard = $1
                                          ORDER BY seq DESC LIMIT 2) AS kept)
         AND seq NOT IN (SELECT base_seq FROM (SELECT base_seq FROM snapshots
                                               WHERE shard = $1
                                               ORDER BY seq DESC LIMIT 2) AS named
                         WHERE base_seq IS NOT NULL)",
    )
    .bind(shard)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "DELETE FROM snapshot_chunks WHERE shard = $1
         AND seq NOT IN (SELECT seq FROM snapshots WHERE shard = $1)",
    )
    .bind(shard)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    sqlx::query(
        "DELETE FROM journal WHERE shard = $1 AND last_seq <= (
             SELECT min(seq) FROM (SELECT seq FROM snapshots WHERE shard = $1
                                   ORDER BY seq DESC LIMIT 2) AS kept)
         AND (SELECT count(*) FROM snapshots WHERE shard = $1) >= 2
         AND (NOT EXISTS (SELECT 1 FROM cdc_cursors WHERE shard = $1)
              OR last_seq <= GREATEST((SELECT min(seq) FROM cdc_cursors WHERE shard = $1), $2))",
    )
    .bind(shard)
    .bind(cdc_keep_after)
    .execute(&mut *conn)
    .await
    .map_err(unavailable)?;
    Ok(())
}

const SNAPSHOT_HEAD: &str =
    "SELECT seq, payload, checksum, chunks, bytes, format, base_seq FROM snapshots";

/// The newest snapshot whose payload is complete and whose checksum holds, with
/// the base it names; a torn or corrupt newest snapshot (or base) falls back to
/// the one before (whose journal is kept).
async fn load_snapshot(
    conn: &mut PgConnection,
    shard: ShardId,
) -> Result<(Option<Snapshot>, Option<Snapshot>), JournalError> {
    let heads = sqlx::query(&format!(
        "{SNAPSHOT_HEAD} WHERE shard = $1 ORDER BY seq DESC LIMIT 2"
    ))
    .bind(shard.0 as i32)
    .fetch_all(&mut *conn)
    .await
    .map_err(unavailable)?;
    for head in heads {
        let Some(snapshot) = read_snapshot(conn, shard, &head).await? else {
            continue;
        };
        let Some(base_seq) = snapshot.base_seq else {
            return Ok((Some(snapshot), None));
        };
        let base_head = sqlx::query(&format!("{SNAPSHOT_HEAD} WHERE shard = $1 AND seq = $2"))
            .bind(shard.0 as i32)
            .bind(base_seq as i64)
            .fetch_optional(&mut *conn)
            .await
            .map_err(unavailable)?;
        let base = match base_head {
            Some(base_head) => read_snapshot(conn, shard, &base_head).await?,
            None => None,
        };
        match base {
            Some(base) if base.base_seq.is_none() => return Ok((Some(snapshot), Some(base))),
            _ => {
                tracing::error!(%shard, seq = snapshot.seq, base_seq, "snapshot's base missing or torn; using an older snapshot")
            }
        }
    }
    Ok((None, None))
}

/// The snapshot a head row describes, its chunks read and checked (`None`: torn
/// or corrupt).
async fn read_snapshot(
    conn: &mut PgConnection,
    shard: ShardId,
    head: &PgRow,
) -> Result<Option<Snapshot>, JournalError> {
    let seq: i64 = head.get(0);
    let chunks: i32 = head.get(3);
    let payload = if chunks == 0 {
        Some(head.get::<Vec<u8>, _>(1))
    } else {
        let mut assembler = ChunkAssembler::new(chunks, head.get(4));
        let mut rows = sqlx::query(
            "SELECT chunk, payload FROM snapshot_chunks
             WHERE shard = $1 AND seq = $2 ORDER BY chunk",
        )
        .bind(shard.0 as i32)
        .bind(seq)
        .fetch(&mut *conn);
        while let Some(row) = rows.try_next().await.map_err(unavailable)? {
            if !assembler.push(row.get(0), row.get::<&[u8], _>(1)) {
                break;
            }
        }
        assembler.finish()
    };
    let checksum = checksum_from_sql(head.get::<i64, _>(2));
    let format = format_from_sql(shard, "snapshot", seq, head.get(5))?;
    let base_seq = head.get::<Option<i64>, _>(6).map(|base| base as u64);
    Ok(valid_snapshot(
        shard, seq as u64, format, payload, checksum, base_seq,
    ))
}

impl ArchiveBackend for Archive {
    fn store(
        &self,
        rows: Vec<(&'static str, Vec<ArchiveRow>)>,
    ) -> BoxFuture<'_, Result<(), JournalError>> {
        Box::pin(async move {
            let mut tx = self.pool.begin().await.map_err(unavailable)?;
            // No flush of its own: the shard lets these entities leave memory only
            // by journaling `EntitiesArchived` after this commit returns, and that
            // synchronous commit flushes the WAL up to itself, this commit
            // included. A crash before then loses this round and the eviction
            // alike, and the round goes again.
            sqlx::query("SET LOCAL synchronous_commit = off")
                .execute(&mut *tx)
                .await
                .map_err(unavailable)?;
            for (table, rows) in rows {
                for chunk in rows.chunks(ROWS_PER_STATEMENT_MAX) {
                    // One statement per table and chunk: UNNEST turns the columns
                    // into rows; an id stored before keeps its row.
                    sqlx::query(&format!(
                        "INSERT INTO {table} (id, shard, status, finished_at, format, body)
                         SELECT * FROM UNNEST($1::text[], $2::int4[], $3::text[],
                                              $4::int8[], $5::int4[], $6::bytea[])
                         ON CONFLICT (id) DO NOTHING"
                    ))
                    .bind(chunk.iter().map(|r| r.id.clone()).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.shard).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.status).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.finished_at).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.format).collect::<Vec<_>>())
                    .bind(chunk.iter().map(|r| r.body.clone()).collect::<Vec<_>>())
                    .execute(&mut *tx)
                    .await
                    .map_err(unavailable)?;
                }
            }
            tx.commit().await.map_err(unavailable)
        })
    }

    fn find(
        &self,
        table: &'static str,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Found, JournalError>> {
        Box::pin(async move {
            let mut found = HashMap::new();
            for chunk in ids.chunks(ROWS_PER_STATEMENT_MAX) {
                let rows = sqlx::query(&format!(
                    "SELECT id, format, body FROM {table} WHERE id = ANY($1)"
                ))
                .bind(chunk)
                .fetch_all(&self.pool)
                .await
                .map_err(unavailable)?;
                for row in rows {
                    found.insert(row.get(0), (row.get(1), row.get(2)));
                }
            }
            Ok(found)
        })
    }
}

impl ChangeLog for PostgresJournal {
    fn read_changes(
        &self,
        shard: ShardId,
        after: u64,
        rows_max: usize,
    ) -> BoxFuture<'static, Result<Vec<ChangeRow>, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let rows = sqlx::query(
                "SELECT first_seq, last_seq,
                        (extract(epoch FROM written_at) * 1000)::int8, changes
                 FROM journal WHERE shard = $1 AND last_seq > $2
                 ORDER BY first_seq LIMIT $3",
            )
            .bind(shard.0 as i32)
            .bind(after as i64)
            .bind(rows_max as i64)
            .fetch_all(&pool)
            .await
            .map_err(unavailable)?;
            Ok(rows
                .into_iter()
                .map(|row| ChangeRow {
                    first_seq: row.get::<i64, _>(0) as u64,
                    last_seq: row.get::<i64, _>(1) as u64,
                    written_at_ms: row.get::<i64, _>(2).max(0) as u64,
                    changes: row.get(3),
                })
                .collect())
        })
    }

    fn head(&self, shard: ShardId) -> BoxFuture<'static, Result<u64, JournalError>> {
        let pool = self.pool.clone();
        Box::pin(async move {
            let head: i64 = sqlx::query_scalar(
                "SELECT GREATEST(
                     (SELECT last_seq FROM journal WHERE shard = $1 ORDER BY first_seq DESC LIMIT 1),
                     (SELECT max(seq) FROM snapshots WHERE shard = $1),
                     0)",
            )
            .bind(shard.0 as i32)
            .fetch_one(&pool)
            .await
            .map_err(unavailable)?;
            Ok(head.max(0) as u64)
        })
    }

    fn cursor(
        &self,
        sink: &str,
        shard: ShardId,
    ) -> BoxFuture<'static, Result<Option<u64>, JournalError>> {
        let (pool, sink) = (self.pool.clone(), sink.to_owned());
        Box::pin(async move {
            let seq: Option<i64> =
                sqlx::query_scalar("SELECT seq FROM cdc_cursors WHERE sink = $1 AND shard = $2")
                    .bind(sink)
                    .bind(shard.0 as i32)
                    .fetch_optional(&pool)
                    .await
                    .map_err(unavailable)?;
            Ok(seq.map(|seq| seq.max(0) as u64))
        })
    }

    fn store_cursor(
        &self,
        sink: &str,
        shard: ShardId,
        seq: u64,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let (pool, sink) = (self.pool.clone(), sink.to_owned());
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO cdc_cursors (sink, shard, seq) VALUES ($1, $2, $3)
                 ON CONFLICT (sink, shard) DO UPDATE SET seq = excluded.seq, updated_at = now()",
            )
            .bind(sink)
            .bind(shard.0 as i32)
            .bind(seq as i64)
            .execute(&pool)
            .await
            .map_err(unavailable)?;
            Ok(())
        })
    }
}

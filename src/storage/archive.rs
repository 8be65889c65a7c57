//! The archive's workers: one task stores every shard's rounds of finished
//! entities, grouping whatever has queued into one transaction; another answers
//! lookups, grouping whatever has queued into one query per kind. Encoding and
//! decoding happen on these tasks, never on a shard's thread.

use futures::future::BoxFuture;
use std::collections::HashMap;
use std::sync::Arc;
use surge_actors::archive::{ArchiveKey, Archived};
use surge_actors::journal::{Lookups, JOURNAL_FORMAT_VERSION};
use surge_actors::{JournalError, ShardId};
use tokio::sync::{mpsc, oneshot};

/// Rounds or lookups waiting for their worker; beyond this, shards wait (and
/// time out with a retryable error) rather than queue without bound.
pub const QUEUE_REQUESTS_MAX: usize = 1_024;

/// Most entities stored in one transaction, or keys asked in one query.
pub const ROWS_PER_STATEMENT_MAX: usize = 4_096;

/// One finished entity as the archive's tables hold it.
#[derive(Debug, Clone)]
pub struct ArchiveRow {
    pub id: String,
    pub shard: i32,
    pub status: &'static str,
    pub finished_at: i64,
    pub format: i32,
    pub body: Vec<u8>,
}

/// The archive's tables, one per kind of entity, and one each for operation and
/// step records.
pub const TABLES: [(&str, &str); 5] = [
    ("payment", "archived_payments"),
    ("order", "archived_orders"),
    ("reservation", "archived_reservations"),
    ("op", "archived_ops"),
    ("step", "archived_steps"),
];

pub fn table_of(kind: &str) -> &'static str {
    TABLES
        .iter()
        .find(|(name, _)| *name == kind)
        .map(|(_, table)| *table)
        .expect("every kind of archive key has a table")
}

/// What a backend found: each id's stored `(format, body)`.
pub type Found = HashMap<String, (i32, Vec<u8>)>;

/// A backend's "store these rows, all or none" and "find these ids".
pub trait ArchiveBackend: Send + Sync + 'static {
    /// Rows by table; a row whose id is stored already is left as it was.
    fn store(
        &self,
        rows: Vec<(&'static str, Vec<ArchiveRow>)>,
    ) -> BoxFuture<'_, Result<(), JournalError>>;

    /// The stored `(format, body)` of each id found in `table`.
    fn find(
        &self,
        table: &'static str,
        ids: Vec<String>,
    ) -> BoxFuture<'_, Result<Found, JournalError>>;
}

type Store = (
    ShardId,
    Vec<Archived>,
    oneshot::Sender<Result<(), JournalError>>,
);
type Lookup = (
    Vec<ArchiveKey>,
    oneshot::Sender<Result<Lookups, JournalError>>,
);

#[derive(Clone)]
pub struct ArchiveWorkers {
    stores: mpsc::Sender<Store>,
    lookups: mpsc::Sender<Lookup>,
}

impl ArchiveWorkers {
    pub fn start(backend: Arc<dyn ArchiveBackend>) -> Self {
        let (stores, store_queue) = mpsc::channel(QUEUE_REQUESTS_MAX);
        let (lookups, lookup_queue) = mpsc::channel(QUEUE_REQUESTS_MAX);
        tokio::spawn(run_stores(backend.clone(), store_queue));
        tokio::spawn(run_lookups(backend, lookup_queue));
        Self { stores, lookups }
    }

    pub fn store(
        &self,
        shard: ShardId,
        entities: Vec<Archived>,
    ) -> BoxFuture<'static, Result<(), JournalError>> {
        let sender = self.stores.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            sender
                .send((shard, entities, ack))
                .await
                .map_err(|_| stopped("writer"))?;
            done.await.map_err(|_| stopped("writer"))?
        })
    }

    pub fn lookup(
        &self,
        keys: Vec<ArchiveKey>,
    ) -> BoxFuture<'static, Result<Lookups, JournalError>> {
        let sender = self.lookups.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            sender
                .send((keys, ack))
                .await
                .map_err(|_| stopped("reader"))?;
            done.await.map_err(|_| stopped("reader"))?
        })
    }
}

fn stopped(which: &str) -> JournalError {
    JournalError::Unavailable(format!("archive {which} stopped"))
}

fn row(shard: ShardId, entity: &Archived) -> (&'static str, ArchiveRow) {
    let key = entity.key();
    (
        table_of(key.kind()),
        ArchiveRow {
            id: key.id_text(),
            shard: shard.0 as i32,
            status: entity.status(),
            finished_at: entity.finished_at() as i64,
            format: i32::from(JOURNAL_FORMAT_VERSION),
            body: entity.encode(),
        },
    )
}

async fn run_stores(backend: Arc<dyn ArchiveBackend>, mut queue: mpsc::Receiver<Store>) {
    let mut pending: Vec<Store> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut rows_total = first.1.len();
        pending.push(first);
        while rows_total < ROWS_PER_STATEMENT_MAX {
            match queue.try_recv() {
                Ok(next) => {
                    rows_total += next.1.len();
                    pending.push(next);
                }
                Err(_) => break,
            }
        }
        let mut by_table: HashMap<&'static str, Vec<ArchiveRow>> = HashMap::new();
        for (shard, entities, _) in &pending {
            for entity in entities {
                let (table, row) = row(*shard, entity);
                by_table.entry(table).or_default().push(row);
            }
        }
        let result = backend.store(by_table.into_iter().collect()).await;
        if let Err(error) = &result {
            tracing::warn!(%error, entities = rows_total, "archive write failed");
        }
        for (_, _, ack) in pending.drain(..) {
            let _ = ack.send(result.clone());
        }
    }
}

async fn run_lookups(backend: Arc<dyn ArchiveBackend>, mut queue: mpsc::Receiver<Lookup>) {
    let mut pending: Vec<Lookup> = Vec::new();
    while let Some(first) = queue.recv().await {
        let mut keys_total = first.0.len();
        pending.push(first);
        while keys_total < ROWS_PER_STATEMENT_MAX {
            match queue.try_recv() {
                Ok(next) => {
                    keys_total += next.0.len();
                    pending.push(next);
                }
                Err(_) => break,
            }
        }
        let result = find_all(&*backend, pending.iter().flat_map(|(keys, _)| keys)).await;
        for (keys, ack) in pending.drain(..) {
            let answer = result.as_ref().map_err(Clone::clone).and_then(|found| {
                keys.into_iter()
                    .map(|key| {
                        let stored = found.get(&(key.kind(), key.id_text()));
                        let entity = stored.map(|(format, body)| decode(&key, *format, body));
                        Ok((key, entity.transpose()?))
                    })
                    .collect()
            });
            let _ = ack.send(answer);
        }
    }
}

/// Every key's stored row, by (kind, id), in one query per kind.
async fn find_all<'a>(
    backend: &dyn ArchiveBackend,
    keys: impl Iterator<Item = &'a ArchiveKey>,
) -> Result<HashMap<(&'static str, String), (i32, Vec<u8>)>, JournalError> {
    let mut by_kind: HashMap<&'static str, Vec<String>> = HashMap::new();
    for key in keys {
        by_kind.entry(key.kind()).or_default().push(key.id_text());
    }
    let mut found = HashMap::new();
    for (kind, mut ids) in by_kind {
        ids.sort_unstable();
        ids.dedup();
        for (id, row) in backend.find(table_of(kind), ids).await? {
            found.insert((kind, id), row);
        }
    }
    Ok(found)
}

fn decode(key: &ArchiveKey, format: i32, body: &[u8]) -> Result<Archived, JournalError> {
    let readable = u16::try_from(format).is_ok_and(|format| {
        (surge_actors::journal::JOURNAL_FORMAT_OLDEST..=JOURNAL_FORMAT_VERSION).contains(&format)
    });
    if !readable {
        return Err(JournalError::Corrupt(format!(
            "archived {} {} is in format {format}, which this build does not read",
            key.kind(),
            key.id_text()
        )));
    }
    let entity = Archived::decode(body).map_err(|error| {
        JournalError::Corrupt(format!(
            "archived {} {} does not decode: {error}",
            key.kind(),
            key.id_text()
        ))
    })?;
    if entity.key() != *key {
        return Err(JournalError::Corrupt(format!(
            "archived {} {} holds {:?}",
            key.kind(),
            key.id_text(),
            entity.key()
        )));
    }
    Ok(entity)
}

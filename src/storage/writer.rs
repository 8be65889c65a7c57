//! Group commit: one task takes every shard's appends and writes all that have
//! queued up in one round trip, so throughput grows with load instead of being
//! capped by one fsync per batch.

use futures::future::BoxFuture;
use std::sync::Arc;
use surge_actors::journal::JournalRecord;
use surge_actors::JournalError;
use tokio::sync::{mpsc, oneshot};

/// Appends waiting for the writer; beyond this, shards wait (and time out with a
/// retryable error) rather than queue without bound.
pub const QUEUE_RECORDS_MAX: usize = 4_096;

/// A backend's "write these records durably, all or nothing".
pub trait WriteRecords: Send + Sync + 'static {
    /// Writes the records; per record, `Err(Fenced)` when its epoch is stale.
    fn write(
        &self,
        records: Vec<JournalRecord>,
    ) -> BoxFuture<'_, Result<Vec<Result<(), JournalError>>, JournalError>>;
}

type Pending = (JournalRecord, oneshot::Sender<Result<(), JournalError>>);

#[derive(Clone)]
pub struct GroupWriter {
    sender: mpsc::Sender<Pending>,
}

impl GroupWriter {
    pub fn start(backend: Arc<dyn WriteRecords>, records_per_write_max: usize) -> Self {
        let (sender, receiver) = mpsc::channel(QUEUE_RECORDS_MAX);
        tokio::spawn(run(backend, receiver, records_per_write_max.max(1)));
        Self { sender }
    }

    pub fn append(&self, record: JournalRecord) -> BoxFuture<'static, Result<(), JournalError>> {
        let sender = self.sender.clone();
        Box::pin(async move {
            let (ack, done) = oneshot::channel();
            sender
                .send((record, ack))
                .await
                .map_err(|_| JournalError::Unavailable("journal writer stopped".into()))?;
            done.await
                .map_err(|_| JournalError::Unavailable("journal writer stopped".into()))?
        })
    }
}

async fn run(
    backend: Arc<dyn WriteRecords>,
    mut receiver: mpsc::Receiver<Pending>,
    records_per_write_max: usize,
) {
    let mut pending: Vec<Pending> = Vec::with_capacity(records_per_write_max);
    while let Some(first) = receiver.recv().await {
        pending.push(first);
        while pending.len() < records_per_write_max {
            match receiver.try_recv() {
                Ok(next) => pending.push(next),
                Err(_) => break,
            }
        }
        let (records, acks): (Vec<_>, Vec<_>) = pending.drain(..).unzip();
        let count = records.len();
        match backend.write(records).await {
            Ok(results) => {
                debug_assert_eq!(results.len(), count);
                for (ack, result) in acks.into_iter().zip(results) {
                    let _ = ack.send(result);
                }
            }
            Err(error) => {
                tracing::warn!(%error, records = count, "journal write failed");
                for ack in acks {
                    let _ = ack.send(Err(error.clone()));
                }
            }
        }
    }
}

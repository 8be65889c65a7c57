//! The durable audit trail: every operator action is a row in the journal
//! database, hash-chained (`storage::audit`), written before the action's
//! answer leaves. A refused authentication is a row too: the first of each
//! claimed subject and minute at once, the rest of that minute counted in one
//! row when it is over, and past `REFUSED_SUBJECTS_PER_MINUTE_MAX` subjects a
//! minute all under `*`, so a flood cannot fill the disk.

use super::problem::Problem;
use crate::storage::audit::{AuditDb, AuditFilter, AuditRow, GENESIS_HASH};
use actix_web::HttpResponse;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use tokio::sync::{mpsc, oneshot};

/// Rows waiting for the writer; beyond it, an action waits for room.
pub const AUDIT_QUEUE_ROWS_MAX: usize = 4_096;

/// Most rows the writer puts in one transaction.
pub const AUDIT_ROWS_PER_WRITE_MAX: usize = 1_024;

/// Distinct subjects whose refusals are counted in one minute; past it they
/// count together under `*`.
pub const REFUSED_SUBJECTS_PER_MINUTE_MAX: usize = 1_024;

/// How often the counts of refusals of minutes gone by are written.
const REFUSED_FLUSH_EVERY_MS: u64 = 5_000;

/// Longest subject kept from a refused token (the claim is not verified).
const REFUSED_SUBJECT_CHARS_MAX: usize = 64;

/// What a caller asks to be recorded; the writer numbers and chains it.
struct Entry {
    at_ms: i64,
    sub: String,
    action: String,
    target: String,
    outcome: String,
    detail: String,
}

type Written = oneshot::Sender<Result<(), String>>;

pub struct AuditLog {
    queue: mpsc::Sender<(Entry, Written)>,
    db: Arc<AuditDb>,
    /// Refusals counted by minute, then by claimed subject.
    refused: Mutex<HashMap<i64, HashMap<String, u64>>>,
}

impl AuditLog {
    /// Starts the writer on `db` (and the flush of refusal counts); must run
    /// inside the actix System.
    pub fn start(db: AuditDb) -> Arc<Self> {
        let db = Arc::new(db);
        let (queue, receiver) = mpsc::channel(AUDIT_QUEUE_ROWS_MAX);
        actix_web::rt::spawn(write_rows(db.clone(), receiver));
        let log = Arc::new(Self {
            queue,
            db,
            refused: Mutex::default(),
        });
        let flushing = Arc::downgrade(&log);
        actix_web::rt::spawn(async move {
            let mut every =
                tokio::time::interval(std::time::Duration::from_millis(REFUSED_FLUSH_EVERY_MS));
            loop {
                every.tick().await;
                let Some(log) = flushing.upgrade() else {
                    return;
                };
                log.flush_refused(now_ms() / 60_000).await;
            }
        });
        log
    }

    /// Records an action and waits until the row is durable. If it cannot be
    /// written, the caller answers 503 `retry` instead of its answer (every
    /// audited action is safe to repeat, and a repeat is audited again).
    pub async fn record(
        &self,
        sub: &str,
        action: &str,
        target: &str,
        outcome: &str,
    ) -> Result<(), Problem> {
        let entry = Entry {
            at_ms: now_ms(),
            sub: sub.to_owned(),
            action: action.to_owned(),
            target: target.to_owned(),
            outcome: outcome.to_owned(),
            detail: String::new(),
        };
        tracing::info!(target: "audit", sub, action, target, outcome, "operator action");
        self.write(entry).await.map_err(|error| {
            tracing::error!(%error, action, target, "audit row not written; the action is answered 503");
            Problem::from(surge_actors::EngineError::Retry)
        })
    }

    /// `response`, once the action it answers is recorded with the outcome its
    /// status says.
    pub async fn answer(
        &self,
        sub: &str,
        action: &str,
        target: &str,
        response: HttpResponse,
    ) -> Result<HttpResponse, Problem> {
        let status = response.status();
        let outcome = if status.is_success() {
            "ok".to_owned()
        } else {
            format!("failed:{}", status.as_u16())
        };
        self.record(sub, action, target, &outcome).await?;
        Ok(response)
    }

    async fn write(&self, entry: Entry) -> Result<(), String> {
        let (written, done) = oneshot::channel();
        self.queue
            .send((entry, written))
            .await
            .map_err(|_| "the audit writer has stopped".to_owned())?;
        done.await
            .map_err(|_| "the audit writer has stopped".to_owned())?
    }

    /// A refused authentication of `claimed` (the token's unverified `sub`, or
    /// `-`): the first of its minute is written at once, the rest counted and
    /// written as one row when the minute is over.
    pub fn note_refused(self: &Arc<Self>, claimed: &str) {
        let claimed: String = claimed
            .chars()
            .filter(|c| !c.is_control())
            .take(REFUSED_SUBJECT_CHARS_MAX)
            .collect();
        let minute = now_ms() / 60_000;
        let first = {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            let subjects = refused.entry(minute).or_default();
            let key = if subjects.contains_key(&claimed)
                || subjects.len() < REFUSED_SUBJECTS_PER_MINUTE_MAX
            {
                claimed
            } else {
                "*".to_owned()
            };
            let count = subjects.entry(key.clone()).or_default();
            *count += 1;
            (*count == 1).then_some(key)
        };
        if let Some(sub) = first {
            let log = self.clone();
            actix_web::rt::spawn(async move {
                let entry = refused_entry(sub, now_ms(), "refused".into());
                if let Err(error) = log.write(entry).await {
                    tracing::error!(%error, "audit row of a refused authentication not written");
                }
            });
        }
    }

    /// Writes one row per subject for each minute before `minute_now`.
    async fn flush_refused(&self, minute_now: i64) {
        let done: Vec<((String, i64), u64)> = {
            let mut refused = self.refused.lock().unwrap_or_else(|e| e.into_inner());
            let minutes: Vec<i64> = refused
                .keys()
                .filter(|m| **m < minute_now)
                .copied()
                .collect();
            minutes
                .into_iter()
                .filter_map(|minute| refused.remove(&minute).map(|subjects| (minute, subjects)))
                .flat_map(|(minute, subjects)| {
                    subjects
                        .into_iter()
                        .map(move |(sub, count)| ((sub, minute), count))
                })
                .collect()
        };
        // The first of each minute was written when it happened.
        for ((sub, minute), count) in done.into_iter().filter(|(_, count)| *count > 1) {
            let detail = format!("{} more refused in the minute", count - 1);
            let entry = refused_entry(sub, minute * 60_000 + 59_999, detail);
            if let Err(error) = self.write(entry).await {
                tracing::error!(%error, "audit row of refused authentications not written");
            }
        }
    }

    /// A page of the trail, newest first.
    pub async fn page(&self, filter: &AuditFilter) -> Result<Vec<AuditRow>, Problem> {
        self.db.page(filter).await.map_err(|error| {
            tracing::error!(error = %format!("{error:#}"), "reading the audit trail failed");
            Problem::from(surge_actors::EngineError::Retry)
        })
    }
}

/// The writer: numbers and chains whatever has queued, stores it in one
/// transaction, and tells each caller. After a failed write it reads the head
/// of the chain again (the write may have landed).
async fn write_rows(db: Arc<AuditDb>, mut queue: mpsc::Receiver<(Entry, Written)>) {
    let mut head: Option<(i64, String)> = None;
    while let Some(first) = queue.recv().await {
        let mut batch = vec![first];
        while batch.len() < AUDIT_ROWS_PER_WRITE_MAX {
            match queue.try_recv() {
                Ok(next) => batch.push(next),
                Err(_) => break,
            }
        }
        let result = async {
            let (mut seq, mut prev_hash) = match head.clone() {
                Some(head) => head,
                None => db
                    .last()
                    .await?
                    .unwrap_or_else(|| (0, GENESIS_HASH.to_owned())),
            };
            let mut rows = Vec::with_capacity(batch.len());
            for (entry, _) in &batch {
                seq += 1;
                let mut row = AuditRow {
                    seq,
                    at_ms: entry.at_ms,
                    sub: entry.sub.clone(),
                    action: entry.action.clone(),
                    target: entry.target.clone(),
                    outcome: entry.outcome.clone(),
                    detail: entry.detail.clone(),
                    prev_hash: prev_hash.clone(),
                    hash: String::new(),
                };
                row.hash = row.chained_hash();
                prev_hash.clone_from(&row.hash);
                rows.push(row);
            }
            db.insert(&rows).await?;
            anyhow::Ok((seq, prev_hash))
        }
        .await;
        let answer = match result {
            Ok(new_head) => {
                head = Some(new_head);
                Ok(())
            }
            Err(error) => {
                head = None;
                Err(format!("{error:#}"))
            }
        };
        for (_, written) in batch {
            let _ = written.send(answer.clone());
        }
    }
}

fn refused_entry(sub: String, at_ms: i64, detail: String) -> Entry {
    Entry {
        at_ms,
        sub,
        action: "auth.refused".into(),
        target: String::new(),
        outcome: "refused".into(),
        detail,
    }
}

fn now_ms() -> i64 {
    surge_actors::engine::system_clock_ms() as i64
}

//! The Redis stream sink: every change, in order, as an entry of the stream
//! `redis.stream_key` (`XADD <key> MAXLEN ~ <redis.stream_length_max> * ...`),
//! written from the journal by change data capture, so a Redis outage delays
//! the stream and never drops from it.
//!
//! Entry fields: `id` (the message id, `<shard>-<first_seq>-<index>`, for
//! deduplication after a redelivery), `type`, `topic`, `seq` (the entity's
//! version, consecutive per entity), `at_ms` and `data` (the JSON body of
//! [`super::ChangeMessage`]).

use super::{within, ChangeMessage, Sink};
use crate::configuration::RedisSettings;
use anyhow::Context as _;
use futures::future::BoxFuture;

/// A batch Redis has not taken within this fails, and the sink reconnects.
const TIMEOUT_MS: u64 = 10_000;
/// A connection attempt slower than this fails (and is retried with backoff).
const CONNECT_TIMEOUT_MS: u64 = 3_000;

pub struct RedisStreamSink {
    client: redis::Client,
    key: String,
    length_max: usize,
    connection: Option<redis::aio::MultiplexedConnection>,
}

impl RedisStreamSink {
    pub fn new(settings: &RedisSettings) -> anyhow::Result<Self> {
        Ok(Self {
            client: redis::Client::open(settings.url.as_str())
                .map_err(|e| anyhow::anyhow!("invalid redis.url: {e}"))?,
            key: settings.stream_key.clone(),
            length_max: settings.stream_length_max,
            connection: None,
        })
    }

    async fn write(&mut self, messages: &[ChangeMessage]) -> anyhow::Result<()> {
        let connection = match &mut self.connection {
            Some(connection) => connection,
            None => {
                let connect = async {
                    self.client
                        .get_multiplexed_async_connection()
                        .await
                        .context("cannot connect to Redis")
                };
                let connection = within("connecting to Redis", CONNECT_TIMEOUT_MS, connect).await?;
                tracing::info!(stream = %self.key, "connected to Redis for change data capture");
                self.connection.insert(connection)
            }
        };
        let mut pipeline = redis::pipe();
        for message in messages {
            pipeline
                .cmd("XADD")
                .arg(&self.key)
                .arg("MAXLEN")
                .arg("~")
                .arg(self.length_max)
                .arg("*")
                .arg("id")
                .arg(&message.id)
                .arg("type")
                .arg(&message.kind)
                .arg("topic")
                .arg(&message.topic)
                .arg("seq")
                .arg(message.seq)
                .arg("at_ms")
                .arg(message.at_ms)
                .arg("data")
                .arg(&message.body)
                .ignore();
        }
        pipeline
            .query_async::<()>(connection)
            .await
            .context("XADD failed")?;
        Ok(())
    }
}

impl Sink for RedisStreamSink {
    fn name(&self) -> &str {
        "redis-stream"
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [ChangeMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let result = within("writing to Redis", TIMEOUT_MS, self.write(messages)).await;
            if result.is_err() {
                self.connection = None;
            }
            result
        })
    }
}

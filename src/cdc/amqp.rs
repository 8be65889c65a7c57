//! The RabbitMQ sink (AMQP 0-9-1, lapin): a durable topic exchange, persistent
//! messages, publisher confirms per batch.
//!
//! Each message has routing key `<type>.<entity id>` (`order.status.o-1`,
//! `account.balance.alice`, `item.stock.tv`, `payment.status.p-1`,
//! `reservation.status.<sku>.<id>`), `message-id` `<shard>-<first_seq>-<index>`,
//! `type` the change type, `timestamp` its time in seconds, content type
//! `application/json`, and the JSON body of [`super::ChangeMessage`]. One channel
//! publishes everything in order, so a queue bound to the exchange receives each
//! entity's changes in order; a batch that was not confirmed whole goes again.
//! Queues are the consumers' to declare and bind: the exchange drops what no
//! queue is bound for, as a topic exchange does.

use super::{within, ChangeMessage, Sink};
use crate::configuration::AmqpSettings;
use anyhow::Context as _;
use futures::future::BoxFuture;
use lapin::options::{BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};

/// A batch's confirms slower than this fail, and the sink reconnects.
const TIMEOUT_MS: u64 = 10_000;
/// A connection attempt slower than this fails (and is retried with backoff).
const CONNECT_TIMEOUT_MS: u64 = 3_000;
/// AMQP `delivery-mode` of a persistent message.
const PERSISTENT: u8 = 2;

pub struct AmqpSink {
    url: String,
    exchange: String,
    open: Option<(Connection, Channel)>,
}

impl AmqpSink {
    pub fn new(settings: &AmqpSettings) -> Self {
        Self {
            url: settings.url.clone(),
            exchange: settings.exchange.clone(),
            open: None,
        }
    }

    async fn channel(&mut self) -> anyhow::Result<Channel> {
        if let Some((connection, channel)) = &self.open {
            if connection.status().connected() && channel.status().connected() {
                return Ok(channel.clone());
            }
        }
        self.open = None;
        let connect = async {
            Connection::connect(&self.url, ConnectionProperties::default())
                .await
                .context("cannot connect to RabbitMQ")
        };
        let connection = within("connecting to RabbitMQ", CONNECT_TIMEOUT_MS, connect).await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        channel
            .exchange_declare(
                self.exchange.as_str().into(),
                ExchangeKind::Topic,
                ExchangeDeclareOptions {
                    durable: true,
                    ..ExchangeDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .with_context(|| format!("cannot declare exchange {:?}", self.exchange))?;
        tracing::info!(exchange = %self.exchange, "connected to RabbitMQ for change data capture");
        self.open = Some((connection, channel.clone()));
        Ok(channel)
    }

    async fn publish(&mut self, messages: &[ChangeMessage]) -> anyhow::Result<()> {
        let channel = self.channel().await?;
        let mut confirms = Vec::with_capacity(messages.len());
        for message in messages {
            let properties = BasicProperties::default()
                .with_message_id(message.id.as_str().into())
                .with_type(message.kind.as_str().into())
                .with_timestamp(message.at_ms / 1_000)
                .with_content_type("application/json".into())
                .with_delivery_mode(PERSISTENT);
            let confirm = channel
                .basic_publish(
                    self.exchange.as_str().into(),
                    message.routing_key.as_str().into(),
                    BasicPublishOptions::default(),
                    message.body.as_bytes(),
                    properties,
                )
                .await?;
            confirms.push(confirm);
        }
        for confirm in confirms {
            if confirm.await?.is_nack() {
                anyhow::bail!("RabbitMQ refused a message (nack)");
            }
        }
        Ok(())
    }
}

impl Sink for AmqpSink {
    fn name(&self) -> &str {
        "amqp"
    }

    fn deliver<'a>(
        &'a mut self,
        messages: &'a [ChangeMessage],
    ) -> BoxFuture<'a, anyhow::Result<()>> {
        Box::pin(async move {
            let result = within("RabbitMQ's confirms", TIMEOUT_MS, self.publish(messages)).await;
            if result.is_err() {
                // Whatever failed, start over on a new connection.
                self.open = None;
            }
            result
        })
    }
}

//! The outbox on DynamoDB: table `{prefix}outbox`, one item per recorded
//! batch of invalidations (see [`memocache::outbox`]).
//!
//! | attribute | type | what |
//! | --- | --- | --- |
//! | `id` (key) | S | `<recorded_ms, 13 digits>-<32 hex digits>`: unique, sorts by time |
//! | `intents` | B | [`Intent::encode`] |
//! | `recorded_ms` | N | when it was recorded (Unix ms) |
//!
//! The table holds only entries not yet delivered (a few, or none), so
//! `pending` is a strongly consistent `Scan` of it, filtered by time and
//! stopped at `limit`: a relay's round costs one request on an empty
//! table. Records are `PutItem`s: no transaction is needed, because the
//! intent is recorded before the write it covers (see
//! [`memocache::outbox`] for why that order is safe).

use async_trait::async_trait;
use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use memocache::outbox::{Intent, Outbox, Pending};
use memocache::{Error, ErrorKind};

use super::Dynamo;
use super::items::{Item, n, s};

fn outbox_error(operation: &str, error: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Outbox, format!("outbox {operation}: {error}"))
}

/// One pending entry of a scanned item; `None` (logged) for an item this
/// version cannot read (a newer format during a rolling upgrade: a newer
/// relay delivers it).
fn pending_of(item: &Item) -> Option<Pending> {
    let id = match item.get("id") {
        Some(AttributeValue::S(id)) => id.clone(),
        _ => return None,
    };
    let recorded_ms = match item.get("recorded_ms") {
        Some(AttributeValue::N(ms)) => ms.parse().ok()?,
        _ => return None,
    };
    let bytes = match item.get("intents") {
        Some(AttributeValue::B(bytes)) => bytes.as_ref(),
        _ => return None,
    };
    match Intent::decode(bytes) {
        Ok(intents) => Some(Pending {
            id,
            intents,
            recorded_ms,
        }),
        Err(error) => {
            tracing::warn!(%error, id, "outbox entry skipped");
            None
        }
    }
}

#[async_trait]
impl Outbox for Dynamo {
    async fn record(&self, intents: &[Intent], recorded_ms: u64) -> memocache::Result<String> {
        let id = format!("{recorded_ms:013}-{}", crate::auth::random_hex(16));
        self.client
            .put_item()
            .table_name(&self.outbox)
            .item("id", s(&id))
            .item(
                "intents",
                AttributeValue::B(Blob::new(Intent::encode(intents))),
            )
            .item(
                "recorded_ms",
                n(i64::try_from(recorded_ms).unwrap_or(i64::MAX)),
            )
            .send()
            .await
            .map_err(|e| {
                outbox_error("PutItem", super::sdk_message(&self.outbox, "PutItem", &e))
            })?;
        Ok(id)
    }

    async fn pending(
        &self,
        recorded_before_ms: u64,
        limit: usize,
    ) -> memocache::Result<Vec<Pending>> {
        let mut found = Vec::new();
        let mut start = None;
        loop {
            let page = self
                .client
                .scan()
                .table_name(&self.outbox)
                .consistent_read(true)
                .filter_expression("recorded_ms <= :t")
                .expression_attribute_values(
                    ":t",
                    n(i64::try_from(recorded_before_ms).unwrap_or(i64::MAX)),
                )
                .set_exclusive_start_key(start)
                .send()
                .await
                .map_err(|e| outbox_error("Scan", super::sdk_message(&self.outbox, "Scan", &e)))?;
            found.extend(page.items().iter().filter_map(pending_of));
            start = page.last_evaluated_key;
            if start.is_none() || found.len() >= limit {
                break;
            }
        }
        found.sort_by(|a, b| a.id.cmp(&b.id));
        found.truncate(limit);
        Ok(found)
    }

    async fn confirm(&self, id: &str) -> memocache::Result<()> {
        self.client
            .delete_item()
            .table_name(&self.outbox)
            .key("id", s(id))
            .send()
            .await
            .map_err(|e| {
                outbox_error(
                    "DeleteItem",
                    super::sdk_message(&self.outbox, "DeleteItem", &e),
                )
            })?;
        Ok(())
    }
}

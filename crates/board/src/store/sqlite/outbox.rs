//! The outbox on SQLite: table `outbox`, one row per recorded batch of
//! invalidations (see [`memocache::outbox`]). The table holds only what is
//! not yet delivered, so reading it is a short scan.

use async_trait::async_trait;
use memocache::outbox::{Intent, Outbox, Pending};
use memocache::{Error, ErrorKind};
use rusqlite::params;

use super::Sqlite;

fn outbox_error(operation: &str, error: impl std::fmt::Display) -> Error {
    Error::new(ErrorKind::Outbox, format!("outbox {operation}: {error}"))
}

fn to_sql_ms(ms: u64) -> i64 {
    i64::try_from(ms).unwrap_or(i64::MAX)
}

#[async_trait]
impl Outbox for Sqlite {
    async fn record(&self, intents: &[Intent], recorded_ms: u64) -> memocache::Result<String> {
        let bytes = Intent::encode(intents);
        let id = self
            .call(move |c| {
                c.execute(
                    "INSERT INTO outbox (intents, recorded_ms) VALUES (?1, ?2)",
                    params![bytes, to_sql_ms(recorded_ms)],
                )?;
                Ok(c.last_insert_rowid())
            })
            .await
            .map_err(|e| outbox_error("record", e))?;
        Ok(id.to_string())
    }

    async fn pending(
        &self,
        recorded_before_ms: u64,
        limit: usize,
    ) -> memocache::Result<Vec<Pending>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .call(move |c| {
                let mut stmt = c.prepare_cached(
                    "SELECT id, intents, recorded_ms FROM outbox
                     WHERE recorded_ms <= ?1 ORDER BY id LIMIT ?2",
                )?;
                stmt.query_map(params![to_sql_ms(recorded_before_ms), limit], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, Vec<u8>>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })?
                .collect::<rusqlite::Result<Vec<_>>>()
            })
            .await
            .map_err(|e| outbox_error("read", e))?;
        Ok(rows
            .into_iter()
            .filter_map(|(id, bytes, recorded_ms)| match Intent::decode(&bytes) {
                Ok(intents) => Some(Pending {
                    id: id.to_string(),
                    intents,
                    recorded_ms: u64::try_from(recorded_ms).unwrap_or_default(),
                }),
                Err(error) => {
                    // A newer format during a rolling upgrade: a newer
                    // relay delivers it.
                    tracing::warn!(%error, id, "outbox entry skipped");
                    None
                }
            })
            .collect())
    }

    async fn confirm(&self, id: &str) -> memocache::Result<()> {
        let Ok(id) = id.parse::<i64>() else {
            return Err(outbox_error(
                "confirm",
                format!("`{id}` is not an outbox id"),
            ));
        };
        self.call(move |c| {
            c.execute("DELETE FROM outbox WHERE id = ?1", [id])
                .map(drop)
        })
        .await
        .map_err(|e| outbox_error("confirm", e))
    }
}

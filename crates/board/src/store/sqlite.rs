//! SQLite, the embedded default: one file, created and migrated on open.
//!
//! One job: the store traits on SQLite (users, sessions, messages, their
//! counters and the account quota totals), with the schema's migrations;
//! the outbox table is `outbox`, the tests `tests`.
//!
//! Calls are queued to one connection in WAL mode on a thread of its own;
//! the caches in front of the stores keep the database off the hot path.

use std::path::Path;

use async_trait::async_trait;
use rusqlite::{Connection, OptionalExtension, params};

mod outbox;

use super::{
    AccountUsage, Bound, Credentials, Listing, Message, MessageStore, SessionRecord, SessionStore,
    StoreError, StoreResult, User, UserStore,
};

/// Schema changes, applied in order; `PRAGMA user_version` records how many
/// have run.
const MIGRATIONS: &[&str] = &[
    "CREATE TABLE users (
        id            TEXT PRIMARY KEY,
        username      TEXT NOT NULL UNIQUE COLLATE NOCASE,
        password_hash TEXT NOT NULL,
        created_at    INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        token_hash TEXT PRIMARY KEY,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_by_user ON sessions(user_id);
    CREATE TABLE messages (
        id          TEXT PRIMARY KEY,
        user_id     TEXT NOT NULL REFERENCES users(id),
        author      TEXT NOT NULL,
        location    TEXT NOT NULL,
        description TEXT NOT NULL,
        image       TEXT NOT NULL,
        thumbnail   TEXT NOT NULL,
        created_at  INTEGER NOT NULL
    );
    CREATE INDEX messages_by_time ON messages(created_at);",
    // `/my` reads one user's messages (the `user_messages` memo).
    "CREATE INDEX messages_by_user ON messages(user_id, created_at);",
    // Pages instead of tables: keyset pagination on (created_at, id) for
    // both listings, the image page by image name, and listing sizes as
    // counters kept by triggers, so that no page reads more rows than it
    // shows, whatever inserts the rows (the board, `board demo`, or a
    // person with the sqlite3 shell). Seeding the counters is the one
    // whole-table read, once, here.
    "DROP INDEX messages_by_time;
    DROP INDEX messages_by_user;
    CREATE INDEX messages_page ON messages(created_at, id);
    CREATE INDEX messages_user_page ON messages(user_id, created_at, id);
    CREATE INDEX messages_by_image ON messages(image);
    CREATE TABLE counters (
        name TEXT PRIMARY KEY,
        n    INTEGER NOT NULL
    ) WITHOUT ROWID;
    INSERT INTO counters (name, n) SELECT 'all', COUNT(*) FROM messages;
    INSERT INTO counters (name, n)
        SELECT 'user:' || user_id, COUNT(*) FROM messages GROUP BY user_id;
    CREATE TRIGGER messages_counted_in AFTER INSERT ON messages BEGIN
        INSERT INTO counters (name, n) VALUES ('all', 1), ('user:' || NEW.user_id, 1)
            ON CONFLICT (name) DO UPDATE SET n = n + 1;
    END;
    CREATE TRIGGER messages_counted_out AFTER DELETE ON messages BEGIN
        UPDATE counters SET n = n - 1 WHERE name IN ('all', 'user:' || OLD.user_id);
    END;",
    // Sign in with OpenID Connect: a provider's account (`issuer`, `sub`)
    // belongs to one board user; a user may link several.
    "CREATE TABLE identities (
        issuer     TEXT NOT NULL,
        subject    TEXT NOT NULL,
        user_id    TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
        PRIMARY KEY (issuer, subject)
    ) WITHOUT ROWID;
    CREATE INDEX identities_by_user ON identities(user_id);",
    // Durable invalidation: what each write forgets, recorded before the
    // write and removed once delivered (see `memocache::outbox`).
    "CREATE TABLE outbox (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        intents     BLOB NOT NULL,
        recorded_ms INTEGER NOT NULL
    );",
    // The account storage quota (issue 27): what each message's media take
    // (`bytes`, written by `insert_within`) and each account's total
    // (`stored_bytes`), added by the posting transaction's conditional
    // UPDATE and given back by a trigger on delete, whatever deletes the
    // row. The total is backfilled from the messages' recorded sizes:
    // messages posted before this version recorded none, so they count 0
    // and the quota applies to what is posted from now on.
    "ALTER TABLE messages ADD COLUMN bytes INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE users ADD COLUMN stored_bytes INTEGER NOT NULL DEFAULT 0;
    UPDATE users SET stored_bytes =
        (SELECT COALESCE(SUM(bytes), 0) FROM messages WHERE messages.user_id = users.id);
    CREATE INDEX users_by_stored ON users(stored_bytes DESC, id);
    CREATE TRIGGER messages_stored_out AFTER DELETE ON messages WHEN OLD.bytes <> 0 BEGIN
        UPDATE users SET stored_bytes = MAX(stored_bytes - OLD.bytes, 0) WHERE id = OLD.user_id;
    END;",
];

/// The columns of a message, in [`message_from`]'s order.
const MESSAGE_COLUMNS: &str =
    "id, user_id, author, location, description, image, thumbnail, created_at";

/// A SQLite database holding all three tables.
///
/// Its one connection lives on a thread of its own, and calls are queued
/// to it: however many requests ask at once, the database costs one thread
/// (tokio's blocking pool would start a thread per waiting call, up to
/// 512, each with its own stack and malloc arena, all waiting on one
/// connection).
pub struct Sqlite {
    jobs: std::sync::mpsc::Sender<Job>,
}

impl Sqlite {
    /// Opens `path` (`:memory:` for a private in-memory database), creating
    /// the file and its directory if needed, and migrates it.
    ///
    /// # Errors
    /// When the file cannot be created or opened, or a migration fails.
    pub fn open(path: &str) -> Result<Self, String> {
        if path != ":memory:" {
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir)
                    .map_err(|e| format!("cannot create directory {}: {e}", dir.display()))?;
            }
        }
        let mut conn = Connection::open(path).map_err(|e| e.to_string())?;
        conn.execute_batch(
            "PRAGMA busy_timeout = 5000;
             PRAGMA journal_mode = WAL;
             PRAGMA synchronous = NORMAL;
             PRAGMA foreign_keys = ON;",
        )
        .map_err(|e| e.to_string())?;
        migrate(&mut conn).map_err(|e| format!("migration failed: {e}"))?;
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        std::thread::Builder::new()
            .name("board-sqlite".into())
            .spawn(move || {
                // Ends when the last sender (the store) is dropped.
                while let Ok(job) = queue.recv() {
                    job(&mut conn);
                }
            })
            .map_err(|e| format!("cannot start the database thread: {e}"))?;
        Ok(Self { jobs })
    }

    async fn call<T, F>(&self, f: F) -> StoreResult<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let (done, result) = tokio::sync::oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(conn)));
            let _ = done.send(outcome);
        });
        let gone = || StoreError::Backend("the database thread is gone".into());
        self.jobs.send(job).map_err(|_| gone())?;
        match result.await.map_err(|_| gone())? {
            Ok(answer) => answer.map_err(classify),
            Err(_) => Err(StoreError::Backend("a database call panicked".into())),
        }
    }
}

/// A call to run on the database thread.
type Job = Box<dyn FnOnce(&mut Connection) + Send>;

fn migrate(conn: &mut Connection) -> rusqlite::Result<()> {
    // Several processes of a fleet may open a fresh file at once: each step
    // reads the version inside a write transaction, so only one applies it.
    loop {
        let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
        let done: usize = tx.query_row("PRAGMA user_version", [], |row| row.get(0))?;
        let Some(sql) = MIGRATIONS.get(done) else {
            return Ok(());
        };
        tx.execute_batch(sql)?;
        tx.pragma_update(None, "user_version", done + 1)?;
        tx.commit()?;
        tracing::info!(version = done + 1, "database migrated");
    }
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(classify)`
fn classify(error: rusqlite::Error) -> StoreError {
    match &error {
        rusqlite::Error::SqliteFailure(e, _)
            if e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict
        }
        _ => StoreError::Backend(error.to_string()),
    }
}

fn user_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: row.get("id")?,
        username: row.get("username")?,
        created_at: row.get("created_at")?,
    })
}

fn message_from(row: &rusqlite::Row<'_>) -> rusqlite::Result<Message> {
    Ok(Message {
        id: row.get("id")?,
        user_id: row.get("user_id")?,
        author: row.get("author")?,
        location: row.get("location")?,
        description: row.get("description")?,
        image: row.get("image")?,
        thumbnail: row.get("thumbnail")?,
        created_at: row.get("created_at")?,
    })
}

#[async_trait]
impl UserStore for Sqlite {
    async fn create(&self, user: &User, password_hash: &str) -> StoreResult<()> {
        let user = user.clone();
        let hash = password_hash.to_owned();
        self.call(move |c| {
            c.execute(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES (?1, ?2, ?3, ?4)",
                params![user.id, user.username, hash, user.created_at],
            )
            .map(drop)
        })
        .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<User>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT id, username, created_at FROM users WHERE id = ?1",
                [id],
                user_from,
            )
            .optional()
        })
        .await
    }

    async fn credentials(&self, username: &str) -> StoreResult<Option<Credentials>> {
        let username = username.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT id, username, created_at, password_hash FROM users WHERE username = ?1",
                [username],
                |row| {
                    Ok(Credentials {
                        user: user_from(row)?,
                        password_hash: row.get("password_hash")?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn password_hash(&self, id: &str) -> StoreResult<Option<String>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT password_hash FROM users WHERE id = ?1",
                [id],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn set_password(&self, id: &str, password_hash: &str) -> StoreResult<()> {
        let (id, hash) = (id.to_owned(), password_hash.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE users SET password_hash = ?2 WHERE id = ?1",
                params![id, hash],
            )
            .map(drop)
        })
        .await
    }

    async fn count(&self) -> StoreResult<u64> {
        self.call(|c| c.query_row("SELECT COUNT(*) FROM users", [], |row| row.get(0)))
            .await
    }

    async fn rename(&self, id: &str, username: &str) -> StoreResult<()> {
        let (id, username) = (id.to_owned(), username.to_owned());
        self.call(move |c| {
            c.execute(
                "UPDATE users SET username = ?2 WHERE id = ?1",
                params![id, username],
            )
            .map(drop)
        })
        .await
    }

    async fn identity(&self, issuer: &str, subject: &str) -> StoreResult<Option<String>> {
        let (issuer, subject) = (issuer.to_owned(), subject.to_owned());
        self.call(move |c| {
            c.query_row(
                "SELECT user_id FROM identities WHERE issuer = ?1 AND subject = ?2",
                params![issuer, subject],
                |row| row.get(0),
            )
            .optional()
        })
        .await
    }

    async fn link_identity(&self, issuer: &str, subject: &str, user_id: &str) -> StoreResult<()> {
        let (issuer, subject, user_id) =
            (issuer.to_owned(), subject.to_owned(), user_id.to_owned());
        self.call(move |c| {
            c.execute(
                "INSERT INTO identities (issuer, subject, user_id) VALUES (?1, ?2, ?3)",
                params![issuer, subject, user_id],
            )
            .map(drop)
        })
        .await
    }

    async fn largest(&self, limit: usize) -> StoreResult<Vec<AccountUsage>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.call(move |c| {
            c.prepare_cached(
                "SELECT u.id, u.username, u.stored_bytes, COALESCE(c.n, 0) AS n
                 FROM users u LEFT JOIN counters c ON c.name = 'user:' || u.id
                 ORDER BY u.stored_bytes DESC, u.id LIMIT ?1",
            )?
            .query_map([limit], |row| {
                Ok(AccountUsage {
                    user_id: row.get(0)?,
                    username: row.get(1)?,
                    bytes: u64::try_from(row.get::<_, i64>(2)?).unwrap_or(0),
                    messages: u64::try_from(row.get::<_, i64>(3)?).unwrap_or(0),
                })
            })?
            .collect()
        })
        .await
    }
}

#[async_trait]
impl SessionStore for Sqlite {
    async fn create(&self, session: &SessionRecord) -> StoreResult<()> {
        let s = session.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
                params![s.token_hash, s.user_id, s.created_at, s.expires_at],
            )
            .map(drop)
        })
        .await
    }

    async fn get(&self, token_hash: &str) -> StoreResult<Option<SessionRecord>> {
        let hash = token_hash.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT token_hash, user_id, created_at, expires_at FROM sessions WHERE token_hash = ?1",
                [hash],
                |row| {
                    Ok(SessionRecord {
                        token_hash: row.get(0)?,
                        user_id: row.get(1)?,
                        created_at: row.get(2)?,
                        expires_at: row.get(3)?,
                    })
                },
            )
            .optional()
        })
        .await
    }

    async fn delete(&self, token_hash: &str) -> StoreResult<()> {
        let hash = token_hash.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM sessions WHERE token_hash = ?1", [hash])
                .map(drop)
        })
        .await
    }

    async fn delete_for_user(&self, user_id: &str, keep: Option<&str>) -> StoreResult<Vec<String>> {
        let user_id = user_id.to_owned();
        let keep = keep.unwrap_or_default().to_owned();
        self.call(move |c| {
            let tx = c.transaction()?;
            let hashes = {
                let mut stmt = tx.prepare(
                    "SELECT token_hash FROM sessions WHERE user_id = ?1 AND token_hash <> ?2",
                )?;
                stmt.query_map(params![user_id, keep], |row| row.get::<_, String>(0))?
                    .collect::<rusqlite::Result<Vec<_>>>()?
            };
            tx.execute(
                "DELETE FROM sessions WHERE user_id = ?1 AND token_hash <> ?2",
                params![user_id, keep],
            )?;
            tx.commit()?;
            Ok(hashes)
        })
        .await
    }
}

#[async_trait]
impl MessageStore for Sqlite {
    async fn insert(&self, message: &Message) -> StoreResult<()> {
        let m = message.clone();
        self.call(move |c| {
            c.execute(
                "INSERT INTO messages (id, user_id, author, location, description, image, thumbnail, created_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![m.id, m.user_id, m.author, m.location, m.description, m.image, m.thumbnail, m.created_at],
            )
            .map(drop)
        })
        .await
    }

    /// One transaction: the conditional `UPDATE users SET stored_bytes =
    /// stored_bytes + ?` (only `WHERE stored_bytes + ? <= quota`), then the
    /// row. SQLite runs one write transaction at a time, across processes
    /// too, so no two posts both pass the check: the total never exceeds
    /// the quota.
    async fn insert_within(
        &self,
        message: &Message,
        bytes: u64,
        quota: Option<u64>,
    ) -> StoreResult<()> {
        let m = message.clone();
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        let quota = quota.map(|q| i64::try_from(q).unwrap_or(i64::MAX));
        let refused = self
            .call(move |c| {
                let tx = c.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
                let added = tx.execute(
                    "UPDATE users SET stored_bytes = stored_bytes + ?2
                     WHERE id = ?1 AND (?3 IS NULL OR stored_bytes + ?2 <= ?3)",
                    params![m.user_id, bytes, quota],
                )?;
                if added == 0 {
                    let stored: Option<i64> = tx
                        .query_row(
                            "SELECT stored_bytes FROM users WHERE id = ?1",
                            [&m.user_id],
                            |row| row.get(0),
                        )
                        .optional()?;
                    if let Some(stored) = stored {
                        // Over the quota: nothing written (the
                        // transaction rolls back when dropped).
                        return Ok(Some(u64::try_from(stored).unwrap_or(0)));
                    }
                    // No such user: the insert below fails on its key.
                }
                tx.execute(
                    "INSERT INTO messages (id, user_id, author, location, description, image, thumbnail, created_at, bytes)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                    params![m.id, m.user_id, m.author, m.location, m.description, m.image, m.thumbnail, m.created_at, bytes],
                )?;
                tx.commit()?;
                Ok(None)
            })
            .await?;
        match refused {
            Some(stored) => Err(StoreError::OverQuota { stored }),
            None => Ok(()),
        }
    }

    async fn insert_many(&self, messages: &[Message]) -> StoreResult<()> {
        let batch = messages.to_vec();
        self.call(move |c| {
            let tx = c.transaction()?;
            {
                let mut stmt = tx.prepare_cached(
                    "INSERT INTO messages (id, user_id, author, location, description, image, thumbnail, created_at)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                )?;
                for m in &batch {
                    stmt.execute(params![
                        m.id,
                        m.user_id,
                        m.author,
                        m.location,
                        m.description,
                        m.image,
                        m.thumbnail,
                        m.created_at
                    ])?;
                }
            }
            tx.commit()
        })
        .await
    }

    async fn page(
        &self,
        listing: &Listing,
        bound: &Bound,
        limit: u32,
    ) -> StoreResult<Vec<Message>> {
        let (listing, bound) = (listing.clone(), bound.clone());
        self.call(move |c| page(c, &listing, &bound, limit)).await
    }

    async fn count(&self, listing: &Listing) -> StoreResult<u64> {
        let name = match listing {
            Listing::All => "all".to_owned(),
            Listing::User(id) => format!("user:{id}"),
        };
        self.call(move |c| {
            c.query_row("SELECT n FROM counters WHERE name = ?1", [name], |row| {
                row.get::<_, i64>(0)
            })
            .optional()
            .map(|n| u64::try_from(n.unwrap_or(0)).unwrap_or(0))
        })
        .await
    }

    async fn by_image(&self, image: &str) -> StoreResult<Option<Message>> {
        let image = image.to_owned();
        self.call(move |c| {
            c.prepare_cached(&format!(
                "SELECT {MESSAGE_COLUMNS} FROM messages WHERE image = ?1"
            ))?
            .query_row([image], message_from)
            .optional()
        })
        .await
    }

    async fn all(&self) -> StoreResult<Vec<Message>> {
        self.call(|c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_id, author, location, description, image, thumbnail, created_at FROM messages",
            )?;
            stmt.query_map([], message_from)?.collect()
        })
        .await
    }

    async fn by_user(&self, user_id: &str) -> StoreResult<Vec<Message>> {
        let user_id = user_id.to_owned();
        self.call(move |c| {
            let mut stmt = c.prepare_cached(
                "SELECT id, user_id, author, location, description, image, thumbnail, created_at
                 FROM messages WHERE user_id = ?1 ORDER BY created_at DESC, id DESC",
            )?;
            stmt.query_map([user_id], message_from)?.collect()
        })
        .await
    }

    async fn get(&self, id: &str) -> StoreResult<Option<Message>> {
        let id = id.to_owned();
        self.call(move |c| {
            c.query_row(
                "SELECT id, user_id, author, location, description, image, thumbnail, created_at
                 FROM messages WHERE id = ?1",
                [id],
                message_from,
            )
            .optional()
        })
        .await
    }

    async fn delete(&self, id: &str) -> StoreResult<bool> {
        let id = id.to_owned();
        self.call(move |c| {
            c.execute("DELETE FROM messages WHERE id = ?1", [id])
                .map(|n| n > 0)
        })
        .await
    }
}

/// One page of `listing` from `bound`: an index range of at most `limit`
/// rows (see the `messages_page` and `messages_user_page` indexes).
fn page(
    c: &Connection,
    listing: &Listing,
    bound: &Bound,
    limit: u32,
) -> rusqlite::Result<Vec<Message>> {
    let (user, filter) = match listing {
        Listing::All => (None, ""),
        Listing::User(id) => (Some(id.as_str()), "user_id = :user AND "),
    };
    let (range, order, place) = match bound {
        Bound::Newest => ("1", "DESC", None),
        Bound::Older(p) => ("(created_at, id) < (:at, :id)", "DESC", Some(p)),
        Bound::Newer(p) => ("(created_at, id) > (:at, :id)", "ASC", Some(p)),
    };
    let sql = format!(
        "SELECT {MESSAGE_COLUMNS} FROM messages WHERE {filter}{range} \
         ORDER BY created_at {order}, id {order} LIMIT :limit"
    );
    let mut stmt = c.prepare_cached(&sql)?;
    let mut args: Vec<(&str, &dyn rusqlite::ToSql)> = vec![(":limit", &limit)];
    if let Some(user) = &user {
        args.push((":user", user));
    }
    if let Some(p) = place {
        args.push((":at", &p.created_at));
        args.push((":id", &p.id));
    }
    let mut rows = stmt
        .query_map(args.as_slice(), message_from)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    if matches!(bound, Bound::Newer(_)) {
        rows.reverse();
    }
    Ok(rows)
}

#[cfg(test)]
mod tests;

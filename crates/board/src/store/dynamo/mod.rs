//! DynamoDB, for fleets: `dynamodb://REGION?endpoint=URL&prefix=board_`.
//!
//! One job: connect to and create the tables (URL, client, `board
//! migrate`), and say here how the items are laid out. The calls are in
//! `items` (users, sessions), `messages`, `watermark` (counts, index lag),
//! `quota` (stored bytes per account) and `outbox`.
//!
//! # Tables
//!
//! | table | key | indexes |
//! | --- | --- | --- |
//! | `{prefix}users` | `id` (S) | none |
//! | `{prefix}sessions` | `token_hash` (S) | `by_user`: `user_id` (S), keys only |
//! | `{prefix}messages` | `message_id` (S) | `by_time`: `feed` (S) + `created_at` (N); `by_user`: `user_id` (S) + `created_at` (N); both project everything |
//! | `{prefix}outbox` | `id` (S) | none: invalidations not yet delivered (`memocache::outbox`) |
//!
//! **Unique names without transactions** (dynalite has no
//! `TransactWriteItems`): a user's name is claimed first by a *claim item*
//! in `users` whose `id` is `username#` + the name in ASCII lower case (the
//! same folding as SQLite's `NOCASE`), written with
//! `attribute_not_exists(id)`; the claim holds the owner's `user_id`. The
//! user item is written second and the claim is deleted again if that
//! fails. [`credentials`](super::UserStore::credentials) reads the claim,
//! then the user: two strongly consistent `GetItem`s, no index. Claim items
//! and identity items are the only items in `users` with a `user_id`
//! attribute, which is how [`count`](super::UserStore::count) leaves them
//! out.
//!
//! **OpenID identities** need no table of their own (and so no
//! migration): an *identity item* in `users` whose `id` is `identity#` +
//! issuer + newline + `sub` holds the linked `user_id`, written with
//! `attribute_not_exists(id)` so one provider account maps to one user.
//!
//! **Sessions** are found by user through the `by_user` index and, because
//! that index lags on AWS, also through a string set `sessions` on the user
//! item (atomic `ADD`/`DELETE` on login and logout, read with
//! `ConsistentRead`): "log out everywhere" reaches a session made a moment
//! before, which the index alone might not show yet.
//!
//! **Pages**: every message carries `feed = "all"`, the partition key of
//! the `by_time` index, so a page of the home listing is one `Query` on
//! `by_time` with `Limit`; `/my` queries `by_user` the same way. The
//! trade-off: every message lands in one index partition, which caps that
//! index at one partition's throughput (about 1,000 writes/s); a board far
//! past that would shard the feed (`all#0`..`all#N`) and merge N queries.
//!
//! - `Newest`: `ScanIndexForward=false`, no start key.
//! - `Older(place)`: `ScanIndexForward=false` from `ExclusiveStartKey`
//!   `{feed | user_id, created_at, message_id}` of the place.
//! - `Newer(place)`: `ScanIndexForward=true` from the same key, reversed
//!   so the page is still newest first.
//!
//! A page never reads the pages before it: `LastEvaluatedKey` is followed
//! only when a 1 MB response stopped short of `Limit`. Among equal
//! `created_at` the index keeps its own order (not SQLite's "ties by id
//! descending"), and resuming from a message's full key is exact in it, so
//! a page boundary inside a tie loses and repeats nothing. The start key
//! is a place in the index, not a lookup: the place of a deleted message
//! still works (on dynalite, which turns the key into an index-key bound
//! without reading the item, as on DynamoDB). dynalite orders equal times
//! by the first 24 bits of an MD5 of `message_id`, so its tie order looks
//! random (and two ids of one millisecond whose prefixes collide would
//! share one index slot there: a dynalite quirk, not DynamoDB's).
//! `all()` and `by_user()`
//! (tools and tests only) read a whole partition, following
//! `LastEvaluatedKey` to the end.
//!
//! **Image aliases** (`by_image`, without another index: adding a GSI to a
//! live table is a slow backfill): next to each message an item
//! `message_id = "image#<image name>"` whose `target` is the message id.
//! Like watermarks it has no `feed`, `user_id` or `created_at`, so no index
//! holds it. `by_image` reads the alias, then the message (two strongly
//! consistent `GetItem`s), and returns the message only if its image is
//! still that name, so a stale alias (a message refused or removed
//! half-way) finds nothing rather than a wrong message. `insert` writes
//! the alias first, `delete` removes it (only if it still names that
//! message); `get`, `delete` and `insert` refuse `image#` ids as they
//! refuse `count#` ones. `board migrate` writes the aliases that messages
//! stored before aliases existed lack, in the scan that recounts the
//! watermarks, and reports how many.
//!
//! **Batches**: `insert_many` writes messages and their aliases with
//! `BatchWriteItem`s of 25 items, retrying unprocessed items with backoff
//! (8 attempts, then an error), and after each batch moves the watermarks
//! once for every message and once per user. `BatchWriteItem` has no
//! conditions: unlike `insert`, an id already stored is overwritten (and
//! counted again). It is for `board demo` and tools, whose ids are fresh.
//!
//! # Pages, counts and index lag
//!
//! Index reads are eventually consistent on AWS (there is no
//! `ConsistentRead` on a GSI; dynalite is immediate). Right after a post or
//! a delete the board drops its cached first page and reloads it through
//! the index, which may not show the change yet; that stale page would then
//! be cached. So each listing has a **watermark**: an item in `messages`
//! itself, `message_id = "count#all"` and `"count#user#<user_id>"`, read
//! with `ConsistentRead`, holding
//!
//! - `n`, how many messages the listing holds: `count` returns it (0 when
//!   the watermark is missing), never counting rows;
//! - `last = "<created_at>:<id>"`, the latest message added;
//! - `gone`, the id of the latest message removed.
//!
//! It has no `feed`, `user_id` or `created_at`, so no index holds it, and
//! `get`/`delete` refuse `count#` ids (message ids are 32 hex digits).
//!
//! - `insert` writes the image alias and the message, then
//!   `ADD n :1 SET last = :m` on
//!   `count#all` and on the user's watermark (creating it at a user's first
//!   message): two more `UpdateItem`s. `delete` removes the message with
//!   `ALL_OLD` and, only if it was there, `ADD n :-1 SET gone = :id` on
//!   both.
//! - A `Newest` page reads the watermark (one strongly consistent
//!   `GetItem`), then queries, and accepts the page when it shows the
//!   latest removal (`gone` is not on it) and the latest addition: `last`
//!   is on it, or the page is full and its oldest message is newer than
//!   `last` (so `last` belongs further down), or `last` is `gone`, or,
//!   asked only when the page cannot tell, `last` no longer exists (one
//!   more `GetItem`; ids are never reused). Otherwise it waits 20, 40,
//!   80 ms… (1 s of waiting in all, 7 attempts) and reads both again, then
//!   gives up, logs a warning and returns what the index has: a message
//!   missing for a while is better than an error page. Reading the
//!   watermark again on every attempt means a write racing the page costs
//!   one retry, not the whole wait.
//! - `board migrate` recounts every `n` from a strongly consistent `Scan`
//!   of `messages` and writes those that differ (with `SET`, keeping
//!   `last` and `gone`): it creates the watermarks on a new table and on
//!   tables made before watermarks existed, and it heals drift. Until
//!   `count#all` exists (an older table not migrated since) writes leave
//!   all watermarks alone, counts are 0 and pages are not checked: a
//!   missing watermark means "unknown", never a wrong check.
//!
//! Limits: only `Newest` pages are checked. A deeper page (`Older`,
//! `Newer`) is one query, as the index has it; a change there is at most
//! one write old, and those pages are the ones people reach by following
//! links from a checked first page. Only the *latest* addition and removal
//! are recorded: of two writes that are both still missing from the index,
//! only the later is waited for, and concurrent inserts may leave `last`
//! naming the older of the two (last write wins). A `last` that ties with
//! the oldest message of a full page, but falls after it in the index's
//! order of equal times, cannot be told from a lagging one: that page
//! waits its full second (on millisecond timestamps, rare). The message
//! and its watermarks are separate writes, not a transaction (dynalite has
//! no `TransactWriteItems`): a crash or a failed `UpdateItem` between them
//! (logged as an error, not returned, since the message itself was
//! written) leaves a count off by one until `board migrate` recounts. The
//! recount itself races live writes (run it again on a quiet board if it
//! reports corrections twice). Every watermark update of the whole board
//! hits one item, `count#all`: fine for a board, about 1,000 writes/s at
//! most, the same ceiling as the `by_time` partition.
//!
//! # Credentials and failures
//!
//! With `endpoint=` (a local emulator) the client signs with
//! `AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY` when set, else `local`/`local`,
//! and never touches the default credential chain (no instance-metadata
//! probing). Without it the standard AWS chain applies. Calls use the SDK's
//! standard retry (5 attempts, exponential backoff with jitter) with a
//! 2 s attempt and 10 s operation timeout, so a dead endpoint fails in
//! bounded time.

mod items;
mod messages;
mod outbox;
mod quota;
mod watermark;

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::config::retry::RetryConfig;
use aws_sdk_dynamodb::config::timeout::TimeoutConfig;
use aws_sdk_dynamodb::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_dynamodb::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    Projection, ProjectionType, ScalarAttributeType, TableDescription, TableStatus,
};

use super::{OpenError, StoreError};

/// Attempts per call (the first plus retries).
const MAX_ATTEMPTS: u32 = 5;
/// Longest a single HTTP attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);
/// Longest a call may take, retries and backoff included.
const OPERATION_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest `board migrate` waits for a table and its indexes to be active.
const ACTIVE_WAIT: Duration = Duration::from_secs(300);
/// The default table-name prefix.
const DEFAULT_PREFIX: &str = "board_";

/// Where the tables are, parsed from a `dynamodb://` URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DynamoUrl {
    /// AWS region, e.g. `eu-west-1`.
    pub region: String,
    /// An endpoint to use instead of AWS's (a local emulator).
    pub endpoint: Option<String>,
    /// Prepended to every table name.
    pub prefix: String,
}

impl DynamoUrl {
    /// Parses `dynamodb://REGION?endpoint=http://127.0.0.1:8000&prefix=board_`.
    ///
    /// # Errors
    /// [`OpenError::Url`] naming what is wrong.
    pub fn parse(url: &str) -> Result<Self, OpenError> {
        let bad = |why: &str| {
            OpenError::Url(format!(
                "`{url}`: {why} (expected dynamodb://REGION?endpoint=http://127.0.0.1:8000&prefix=board_)"
            ))
        };
        let rest = url
            .strip_prefix("dynamodb://")
            .ok_or_else(|| bad("not a dynamodb:// URL"))?;
        let (region, query) = rest.split_once('?').unwrap_or((rest, ""));
        let region = region.strip_suffix('/').unwrap_or(region);
        if region.is_empty() {
            return Err(bad("no region"));
        }
        if !region
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        {
            return Err(bad(&format!(
                "`{region}` is not a region such as eu-west-1"
            )));
        }
        let mut endpoint = None;
        let mut prefix = DEFAULT_PREFIX.to_owned();
        for (key, value) in url::form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "endpoint" => {
                    let parsed = url::Url::parse(&value)
                        .ok()
                        .filter(|u| matches!(u.scheme(), "http" | "https") && u.host().is_some())
                        .ok_or_else(|| bad(&format!("endpoint `{value}` is not an http(s) URL")))?;
                    endpoint = Some(parsed.as_str().trim_end_matches('/').to_owned());
                }
                "prefix" => {
                    if !value
                        .chars()
                        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
                        || value.len() > 200
                    {
                        return Err(bad(&format!(
                            "prefix `{value}` may only hold letters, digits, _ - and ."
                        )));
                    }
                    prefix = value.into_owned();
                }
                other => return Err(bad(&format!("unknown parameter `{other}`"))),
            }
        }
        Ok(Self {
            region: region.to_owned(),
            endpoint,
            prefix,
        })
    }

    /// The full name of table `name` (`users`, `sessions`, `messages`).
    pub fn table(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }
}

/// The tables on DynamoDB; implements every store trait and the outbox.
pub struct Dynamo {
    client: Client,
    users: String,
    sessions: String,
    messages: String,
    /// Invalidations not yet delivered (the `outbox` module).
    outbox: String,
    /// First pages that found the index lagging and waited (see
    /// [`Dynamo::lag_waits`]).
    lag_waits: std::sync::atomic::AtomicU64,
}

impl Dynamo {
    /// Connects to the tables of `url` and checks that they exist.
    ///
    /// # Errors
    /// [`OpenError::Url`] for a malformed URL, [`OpenError::Database`] when a
    /// table is missing (run `board migrate`) or DynamoDB cannot be reached.
    pub async fn open(url: &str) -> Result<Self, OpenError> {
        let parsed = DynamoUrl::parse(url)?;
        let client = client(&parsed).await;
        let this = Self {
            users: parsed.table("users"),
            sessions: parsed.table("sessions"),
            messages: parsed.table("messages"),
            outbox: parsed.table("outbox"),
            client,
            lag_waits: std::sync::atomic::AtomicU64::new(0),
        };
        for table in [&this.users, &this.sessions, &this.messages, &this.outbox] {
            if describe(&this.client, table).await?.is_none() {
                return Err(OpenError::Database(format!(
                    "table {table} does not exist: run `board migrate --database-url '{url}'`"
                )));
            }
        }
        Ok(this)
    }

    /// The SDK client, for tests and tools.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// How many times a first page found the index behind its watermark
    /// and waited to query again: a gate for tests (act once a reader is
    /// known to be waiting) and a figure for people.
    pub fn lag_waits(&self) -> u64 {
        self.lag_waits.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Builds a client for `url`: static credentials for an endpoint, the
/// standard chain for AWS; standard retry and bounded timeouts either way.
async fn client(url: &DynamoUrl) -> Client {
    let retry = RetryConfig::standard().with_max_attempts(MAX_ATTEMPTS);
    let timeouts = TimeoutConfig::builder()
        .connect_timeout(ATTEMPT_TIMEOUT)
        .operation_attempt_timeout(ATTEMPT_TIMEOUT)
        .operation_timeout(OPERATION_TIMEOUT)
        .build();
    let region = Region::new(url.region.clone());
    if let Some(endpoint) = &url.endpoint {
        // Built by hand rather than from `aws_config`, so no provider chain
        // (environment, profile, instance metadata) is ever consulted.
        let key = std::env::var("AWS_ACCESS_KEY_ID").unwrap_or_else(|_| "local".into());
        let secret = std::env::var("AWS_SECRET_ACCESS_KEY").unwrap_or_else(|_| "local".into());
        let config = aws_sdk_dynamodb::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(region)
            .endpoint_url(endpoint)
            .credentials_provider(Credentials::new(key, secret, None, None, "board-static"))
            .retry_config(retry)
            .timeout_config(timeouts)
            .build();
        Client::from_conf(config)
    } else {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .retry_config(retry)
            .timeout_config(timeouts)
            .load()
            .await;
        Client::new(&config)
    }
}

/// The description of `table`, `None` when it does not exist.
async fn describe(client: &Client, table: &str) -> Result<Option<TableDescription>, OpenError> {
    match client.describe_table().table_name(table).send().await {
        Ok(out) => Ok(out.table),
        Err(e) if e.code() == Some("ResourceNotFoundException") => Ok(None),
        Err(e) => Err(OpenError::Database(sdk_message(table, "DescribeTable", &e))),
    }
}

/// A readable message for a failed call: table, operation, and the
/// service's code and message (or the transport failure).
fn sdk_message<E, R>(table: &str, operation: &str, error: &SdkError<E, R>) -> String
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    match error {
        SdkError::ServiceError(_) => {
            let code = error.code().unwrap_or("unknown error");
            let message = error.message().unwrap_or("no message");
            if code == "ResourceNotFoundException" {
                format!(
                    "DynamoDB {operation} on {table}: table {table} does not exist: run `board migrate`"
                )
            } else {
                format!("DynamoDB {operation} on {table}: {code}: {message}")
            }
        }
        SdkError::TimeoutError(_) => format!(
            "DynamoDB {operation} on {table}: timed out (after up to {MAX_ATTEMPTS} attempts, {} s in all)",
            OPERATION_TIMEOUT.as_secs()
        ),
        other => format!(
            "DynamoDB {operation} on {table}: {}",
            DisplayErrorContext(other)
        ),
    }
}

/// [`sdk_message`] as a [`StoreError::Backend`], or [`StoreError::Conflict`]
/// for a failed condition.
fn store_error<E, R>(table: &str, operation: &str, error: &SdkError<E, R>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
    R: std::fmt::Debug,
{
    if error.code() == Some("ConditionalCheckFailedException") {
        StoreError::Conflict
    } else {
        StoreError::Backend(sdk_message(table, operation, error))
    }
}

/// One table's shape: its key and indexes.
struct TableSpec {
    name: String,
    key: &'static str,
    /// (index name, partition key and type, sort key and type, projection)
    indexes: Vec<IndexSpec>,
}

struct IndexSpec {
    name: &'static str,
    hash: (&'static str, ScalarAttributeType),
    range: Option<(&'static str, ScalarAttributeType)>,
    projection: ProjectionType,
}

fn specs(url: &DynamoUrl) -> Vec<TableSpec> {
    vec![
        TableSpec {
            name: url.table("users"),
            key: "id",
            indexes: vec![],
        },
        TableSpec {
            name: url.table("sessions"),
            key: "token_hash",
            indexes: vec![IndexSpec {
                name: items::SESSIONS_BY_USER,
                hash: ("user_id", ScalarAttributeType::S),
                range: None,
                projection: ProjectionType::KeysOnly,
            }],
        },
        TableSpec {
            name: url.table("messages"),
            key: "message_id",
            indexes: vec![
                IndexSpec {
                    name: items::MESSAGES_BY_TIME,
                    hash: ("feed", ScalarAttributeType::S),
                    range: Some(("created_at", ScalarAttributeType::N)),
                    projection: ProjectionType::All,
                },
                IndexSpec {
                    name: items::MESSAGES_BY_USER,
                    hash: ("user_id", ScalarAttributeType::S),
                    range: Some(("created_at", ScalarAttributeType::N)),
                    projection: ProjectionType::All,
                },
            ],
        },
        TableSpec {
            name: url.table("outbox"),
            key: "id",
            indexes: vec![],
        },
    ]
}

fn build_error(e: &impl std::fmt::Display) -> OpenError {
    OpenError::Database(format!("building a DynamoDB request failed: {e}"))
}

fn key_element(name: &str, kind: KeyType) -> Result<KeySchemaElement, OpenError> {
    KeySchemaElement::builder()
        .attribute_name(name)
        .key_type(kind)
        .build()
        .map_err(|e| build_error(&e))
}

async fn create_table(client: &Client, spec: &TableSpec) -> Result<(), OpenError> {
    let mut attributes = vec![(spec.key, ScalarAttributeType::S)];
    let mut indexes = Vec::new();
    for index in &spec.indexes {
        let mut keys = vec![key_element(index.hash.0, KeyType::Hash)?];
        attributes.push(index.hash.clone());
        if let Some(range) = &index.range {
            keys.push(key_element(range.0, KeyType::Range)?);
            attributes.push(range.clone());
        }
        indexes.push(
            GlobalSecondaryIndex::builder()
                .index_name(index.name)
                .set_key_schema(Some(keys))
                .projection(
                    Projection::builder()
                        .projection_type(index.projection.clone())
                        .build(),
                )
                .build()
                .map_err(|e| build_error(&e))?,
        );
    }
    attributes.sort_by_key(|(name, _)| *name);
    attributes.dedup_by_key(|(name, _)| *name);
    let definitions = attributes
        .into_iter()
        .map(|(name, kind)| {
            AttributeDefinition::builder()
                .attribute_name(name)
                .attribute_type(kind)
                .build()
                .map_err(|e| build_error(&e))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let result = client
        .create_table()
        .table_name(&spec.name)
        .billing_mode(BillingMode::PayPerRequest)
        .key_schema(key_element(spec.key, KeyType::Hash)?)
        .set_attribute_definitions(Some(definitions))
        .set_global_secondary_indexes((!indexes.is_empty()).then_some(indexes))
        .send()
        .await;
    match result {
        Ok(_) => Ok(()),
        // Another `board migrate` got there first: wait for it below.
        Err(e) if e.code() == Some("ResourceInUseException") => Ok(()),
        Err(e) => Err(OpenError::Database(sdk_message(
            &spec.name,
            "CreateTable",
            &e,
        ))),
    }
}

/// Waits until `spec`'s table and its indexes are `ACTIVE`; fails if an
/// index is missing (a table made by something else).
async fn wait_active(client: &Client, spec: &TableSpec) -> Result<(), OpenError> {
    let started = tokio::time::Instant::now();
    loop {
        let table = describe(client, &spec.name).await?.ok_or_else(|| {
            OpenError::Database(format!("table {} vanished while migrating", spec.name))
        })?;
        let present = table.global_secondary_indexes();
        for index in &spec.indexes {
            if !present.iter().any(|p| p.index_name() == Some(index.name)) {
                return Err(OpenError::Database(format!(
                    "table {} exists without the index {}: it was not made by `board migrate`; \
                     add the index or use another prefix",
                    spec.name, index.name
                )));
            }
        }
        let active = table.table_status() == Some(&TableStatus::Active)
            && present
                .iter()
                .all(|p| p.index_status() == Some(&IndexStatus::Active));
        if active {
            return Ok(());
        }
        if started.elapsed() > ACTIVE_WAIT {
            return Err(OpenError::Database(format!(
                "table {} did not become ACTIVE within {} s",
                spec.name,
                ACTIVE_WAIT.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates the tables and indexes of `url` that are missing (on-demand
/// capacity) and waits until all are `ACTIVE`. Idempotent; says what it did,
/// one line per table.
///
/// # Errors
/// [`OpenError::Url`] for a malformed URL, [`OpenError::Database`] when
/// DynamoDB fails or a table exists with the wrong indexes.
pub async fn migrate(url: &str) -> Result<String, OpenError> {
    let parsed = DynamoUrl::parse(url)?;
    let client = client(&parsed).await;
    let mut report = Vec::new();
    let mut messages_existed = false;
    for spec in specs(&parsed) {
        if describe(&client, &spec.name).await?.is_some() {
            wait_active(&client, &spec).await?;
            report.push(format!("table {} already exists", spec.name));
            messages_existed |= spec.name == parsed.table("messages");
        } else {
            create_table(&client, &spec).await?;
            wait_active(&client, &spec).await?;
            let indexes: Vec<_> = spec.indexes.iter().map(|i| i.name).collect();
            report.push(if indexes.is_empty() {
                format!("created table {}", spec.name)
            } else {
                format!(
                    "created table {} with index {}",
                    spec.name,
                    indexes.join(", ")
                )
            });
        }
    }
    // Bring the listing watermarks up to date (creating them on a new or
    // older table, correcting any drift); only a correction is reported.
    let db = Dynamo {
        users: parsed.table("users"),
        sessions: parsed.table("sessions"),
        messages: parsed.table("messages"),
        outbox: parsed.table("outbox"),
        client,
        lag_waits: std::sync::atomic::AtomicU64::new(0),
    };
    let done = db.recount().await.map_err(|e| match e {
        StoreError::Backend(message) => OpenError::Database(message),
        other => OpenError::Database(other.to_string()),
    })?;
    let plural = |n: usize| if n == 1 { "" } else { "s" };
    if messages_existed && done.watermarks > 0 {
        report.push(format!(
            "recounted {}: corrected {} listing watermark{}",
            db.messages,
            done.watermarks,
            plural(done.watermarks)
        ));
    }
    if done.aliases > 0 {
        report.push(format!(
            "backfilled {}: wrote {} image alias{}",
            db.messages,
            done.aliases,
            if done.aliases == 1 { "" } else { "es" }
        ));
    }
    Ok(report.join("\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_parse() {
        let url = DynamoUrl::parse("dynamodb://eu-west-1").expect("plain");
        assert_eq!(url.region, "eu-west-1");
        assert_eq!(url.endpoint, None);
        assert_eq!(url.table("users"), "board_users");
        let url =
            DynamoUrl::parse("dynamodb://us-east-1?endpoint=http://127.0.0.1:8000/&prefix=t1_")
                .expect("full");
        assert_eq!(url.endpoint.as_deref(), Some("http://127.0.0.1:8000"));
        assert_eq!(url.table("messages"), "t1_messages");
    }

    #[test]
    fn bad_urls_say_why() {
        for (url, why) in [
            ("dynamodb://", "no region"),
            ("dynamodb://?endpoint=http://x", "no region"),
            ("dynamodb://EU WEST", "not a region"),
            (
                "dynamodb://eu-west-1?endpoint=ftp://x",
                "not an http(s) URL",
            ),
            ("dynamodb://eu-west-1?prefix=a/b", "prefix"),
            ("dynamodb://eu-west-1?table=x", "unknown parameter `table`"),
        ] {
            let Err(OpenError::Url(message)) = DynamoUrl::parse(url) else {
                panic!("{url} parsed");
            };
            assert!(message.contains(why), "{url}: {message}");
        }
    }
}

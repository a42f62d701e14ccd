//! Command line and environment: one clap struct per command, every setting
//! both a flag and a `BOARD_*` variable, defaults that need no set-up.
//!
//! One job: parse settings. What a setting does lives where it is used;
//! the storage flags every command that opens the board's data takes are
//! one [`StorageArgs`], flattened into `serve` and `demo`.

pub use crate::units::{parse_duration, parse_size};
use std::net::SocketAddr;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};
use secrecy::SecretString;

use crate::budget::Allowance;
use crate::net::IpNet;

/// `board`: a message board with cached users and messages.
#[derive(Debug, Parser)]
#[command(name = "board", version, about, long_about = None)]
pub struct Cli {
    /// What to do; `serve` with default settings when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The board's commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the board over HTTP (the default).
    Serve(Box<Settings>),
    /// Fill a board with sample users and messages with generated images.
    Demo(DemoArgs),
    /// Create or update the database's tables (DynamoDB: tables and
    /// indexes, waiting until they are active; SQLite: migrates the file).
    Migrate(MigrateArgs),
    /// List the accounts storing the most image bytes, largest first: name,
    /// id, messages and bytes (as counted against `--account-quota`). On
    /// SQLite an index read; on DynamoDB a paginated Scan of the users
    /// table (500 items a page, only the listed accounts kept in memory),
    /// so it costs a read of every user: an admin command, not for a
    /// timer.
    Accounts(AccountsArgs),
}

/// Everything the server can be told.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, env = "BOARD_ADDRESS", default_value = "127.0.0.1:8000")]
    pub address: SocketAddr,

    /// Where users, sessions, messages and images are kept.
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Public base URL of the images (a CDN), used in pages instead of the
    /// board's own `/media/` routes, e.g. `https://cdn.example.com/media/`.
    #[arg(long, env = "BOARD_MEDIA_BASE_URL")]
    pub media_base_url: Option<String>,

    /// The cache every memo and counter lives in: `memory://?capacity=10000`
    /// (in process), `null://` (nothing cached: every view reads the
    /// database, and login and registration rate limits and post budgets
    /// are off),
    /// `tiered+redis://127.0.0.1:6379/?l1_capacity=10000` (for a fleet of
    /// boards sharing one database: an in-process L1 kept coherent across
    /// processes through Redis; give every instance the same
    /// `--secret-key`), or another URL memocache understands.
    #[arg(
        long,
        env = "BOARD_CACHE_URL",
        default_value = "memory://?capacity=10000"
    )]
    pub cache_url: String,

    /// Key for CSRF tokens (at least 32 characters). A random key is made at
    /// start when absent, so forms open before a restart must be reloaded.
    #[arg(long, env = "BOARD_SECRET_KEY", hide_env_values = true)]
    pub secret_key: Option<SecretString>,

    /// Refuse to start without `--secret-key` rather than make a random
    /// one: the instances of a fleet must share the key (a form served by
    /// one is posted to another), so one started without it (a container
    /// whose Secret is missing) stops at once and says why. The container
    /// image sets it.
    #[arg(long, env = "BOARD_REQUIRE_SECRET_KEY")]
    pub require_secret_key: bool,

    /// Largest accepted image, e.g. `10MiB`, `500KiB` or a number of bytes.
    #[arg(long, env = "BOARD_UPLOAD_LIMIT", default_value = "10MiB", value_parser = parse_size)]
    pub upload_limit: u64,

    /// Largest width or height of an uploaded image, in pixels (decode
    /// bombs); a 5600² RGBA image fits the default `--decode-memory`.
    #[arg(long, env = "BOARD_MAX_IMAGE_SIDE", default_value_t = 5_600)]
    pub max_image_side: u32,

    /// Messages per page on the home page and `/my`. Each page is read
    /// and cached on its own (one index range of this many rows), so the
    /// cost of a view does not grow with the number of messages.
    #[arg(long, env = "BOARD_PAGE_SIZE", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..=1000))]
    pub page_size: u32,

    /// How long a loaded user is cached (`load_user`), e.g. `600s`, `10m`;
    /// `0` means until forgotten (logout, password change).
    #[arg(long, env = "BOARD_USER_CACHE_TIMEOUT", default_value = "600s", value_parser = parse_duration)]
    pub user_cache_timeout: Duration,

    /// How long pages of the home listing are cached (`all_messages`, one
    /// value per page), with listing counts and image pages; they are also
    /// forgotten at once on every post and delete, in every process.
    /// Default: `5s` with an in-process or shared cache (other processes
    /// sharing the database without an invalidation bus see a post within
    /// it), `1h` with a tiered cache (`tiered+redis://`), whose bus makes
    /// invalidation synchronous across the fleet. `0` means until forgotten.
    #[arg(long, env = "BOARD_MESSAGES_CACHE_TIMEOUT", value_parser = parse_duration)]
    pub messages_cache_timeout: Option<Duration>,

    /// How long the first page of one user's own messages is cached
    /// (`user_messages`, the `/my` page); forgotten whenever that user
    /// posts or deletes.
    #[arg(long, env = "BOARD_MY_MESSAGES_CACHE_TIMEOUT", default_value = "600s", value_parser = parse_duration)]
    pub my_messages_cache_timeout: Duration,

    /// How long a looked-up session is cached (`load_session`). With an
    /// in-process cache (`memory://`) at most `5s`: a logout on another
    /// process sharing the database cannot reach this one's cache, so the
    /// timeout is what bounds how long the session still works here. With
    /// a shared or tiered cache a logout holds everywhere at once.
    #[arg(long, env = "BOARD_SESSION_CACHE_TIMEOUT", default_value = "600s", value_parser = parse_duration)]
    pub session_cache_timeout: Duration,

    /// How long a login lasts.
    #[arg(long, env = "BOARD_SESSION_LIFETIME", default_value = "14d", value_parser = parse_duration)]
    pub session_lifetime: Duration,

    /// The clock sessions start and expire by (not a flag: tests put a
    /// manual one here).
    #[arg(skip)]
    pub session_clock: crate::auth::clock::SessionClock,

    /// The clock of the cache's expiry (`None`: the library's default; not a
    /// flag: tests put a `memocache::Clock::manual()` here).
    #[arg(skip)]
    pub cache_clock: Option<memocache::Clock>,

    /// Longest time a request may take before it gets a 408.
    #[arg(long, env = "BOARD_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_duration)]
    pub request_timeout: Duration,

    /// Password checks allowed per account and client address within the
    /// login window (also for the current password on `/acc`). Attempts
    /// are counted before the check, so parallel guesses get no more; a
    /// stranger elsewhere fills only their own bucket. A successful login
    /// clears its own bucket.
    #[arg(long, env = "BOARD_LOGIN_FAILURES_PER_ACCOUNT_ADDRESS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_account_address: u32,

    /// Failed password checks allowed per account within the window, from
    /// all addresses together (a slower bound on distributed guessing).
    #[arg(long, env = "BOARD_LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 50,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_account: u32,

    /// Failed password checks allowed per client address within the
    /// window, for all accounts together.
    #[arg(long, env = "BOARD_LOGIN_FAILURES_PER_ADDRESS", default_value_t = 20,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub login_failures_per_address: u32,

    /// The login rate-limit window.
    #[arg(long, env = "BOARD_LOGIN_WINDOW", default_value = "15m", value_parser = parse_duration)]
    pub login_window: Duration,

    /// Accounts that may be registered per client address per hour.
    #[arg(long, env = "BOARD_REGISTRATIONS_PER_ADDRESS", default_value_t = 10,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub registrations_per_address: u32,

    // Post and upload budgets (issue 27): each a list of AMOUNT/WINDOW
    // allowances, the short window the burst; counted in the cache, so a
    // fleet sharing it shares them. `none` turns one off.
    /// Messages one account may post per window, e.g. `30/10m,200/1d`
    /// (30 in any 10 minutes from the first, and 200 a day). A post past
    /// it is refused with 429 and `Retry-After`, and nothing of it is
    /// stored.
    #[arg(long, env = "BOARD_POST_BUDGET_PER_ACCOUNT", default_value = "30/10m,200/1d",
          value_parser = parse_allowances_count)]
    pub post_budget_per_account: Allowances,
    /// Messages one client address may post per window, over all its
    /// accounts (several people may share an address).
    #[arg(long, env = "BOARD_POST_BUDGET_PER_ADDRESS", default_value = "60/10m,600/1d",
          value_parser = parse_allowances_count)]
    pub post_budget_per_address: Allowances,
    /// Bytes one account's posts may store per window (each image as
    /// stored and its thumbnail), e.g. `100MiB/10m,1GiB/1d`.
    #[arg(long, env = "BOARD_UPLOAD_BUDGET_PER_ACCOUNT", default_value = "100MiB/10m,1GiB/1d",
          value_parser = parse_allowances_bytes)]
    pub upload_budget_per_account: Allowances,
    /// Bytes the posts of one client address may store per window.
    #[arg(long, env = "BOARD_UPLOAD_BUDGET_PER_ADDRESS", default_value = "200MiB/10m,2GiB/1d",
          value_parser = parse_allowances_bytes)]
    pub upload_budget_per_address: Allowances,
    /// Most image bytes one account may store in all (its messages' images
    /// and thumbnails as stored), e.g. `200MiB`, or `none`. A post that
    /// would pass it is refused with a page saying so (413, nothing
    /// stored); deleting messages frees their bytes. Kept in the database
    /// and checked atomically with the post, so it holds across a fleet.
    #[arg(long, env = "BOARD_ACCOUNT_QUOTA", default_value = "200MiB", value_parser = parse_quota)]
    pub account_quota: Quota,

    /// Reverse proxies whose `X-Forwarded-For` and `X-Forwarded-Proto` are
    /// believed, comma-separated addresses or CIDR blocks (e.g.
    /// `127.0.0.1,10.0.0.0/8`). From them the client is the right-most
    /// address of `X-Forwarded-For` that is not a trusted proxy, and
    /// `X-Forwarded-Proto: https` turns on HSTS. Their connections are not
    /// counted against `--max-connections-per-address`. Default: none, so
    /// the TCP peer is the client and the headers are ignored.
    #[arg(long, env = "BOARD_TRUSTED_PROXIES", value_delimiter = ',')]
    pub trusted_proxies: Vec<IpNet>,

    /// Longest time a client may take to send a request's headers, e.g.
    /// `10s`: on a new connection from its start, on a kept-alive one from
    /// the request's first byte. Slow-header clients (slowloris) and
    /// connections that never send a request are closed after it.
    #[arg(long, env = "BOARD_HEADER_READ_TIMEOUT", default_value = "10s", value_parser = parse_positive_duration)]
    pub header_read_timeout: Duration,

    /// How long a keep-alive connection may sit idle between requests.
    #[arg(long, env = "BOARD_IDLE_TIMEOUT", default_value = "60s", value_parser = parse_positive_duration)]
    pub idle_timeout: Duration,

    /// Most connections open at once; over it new connections are accepted
    /// and closed at once. Never more than 80% of the process's open-files
    /// limit (`ulimit -n`), whatever is given.
    #[arg(long, env = "BOARD_MAX_CONNECTIONS", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections: u32,

    /// Most connections open at once from one client address (trusted
    /// proxies are exempt).
    #[arg(long, env = "BOARD_MAX_CONNECTIONS_PER_ADDRESS", default_value_t = 256,
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_connections_per_address: u32,

    /// Serve `/metrics` on this separate address (e.g. `127.0.0.1:9100`),
    /// which serves nothing else. Without it or `--metrics-token`,
    /// `/metrics` is not served at all.
    #[arg(long, env = "BOARD_METRICS_ADDRESS")]
    pub metrics_address: Option<SocketAddr>,

    /// Serve `/metrics` on the public address to requests with
    /// `Authorization: Bearer TOKEN` (at least 16 characters).
    #[arg(long, env = "BOARD_METRICS_TOKEN", hide_env_values = true)]
    pub metrics_token: Option<SecretString>,

    /// Mark cookies `Secure` and send HSTS (set it when the board is served
    /// over HTTPS). Cookies are also `Secure` for requests with
    /// `X-Forwarded-Proto: https`, and HSTS is sent for those that come
    /// from a `--trusted-proxies` proxy.
    #[arg(long, env = "BOARD_SECURE_COOKIES")]
    pub secure_cookies: bool,

    /// Fill an empty board with sample users and messages before serving.
    #[arg(long, env = "BOARD_DEMO")]
    pub demo: bool,

    // Bounded work (issue 12): memory-hungry jobs run in pools of permits.
    /// Password hashes computed at once (about 19 MiB each); default: the
    /// number of CPUs.
    #[arg(long, env = "BOARD_HASH_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub hash_concurrency: Option<u32>,
    /// Images decoded at once (each up to `--decode-memory`); default: the
    /// number of CPUs.
    #[arg(long, env = "BOARD_DECODE_CONCURRENCY", value_parser = clap::value_parser!(u32).range(1..=1024))]
    pub decode_concurrency: Option<u32>,
    /// How long a request waits for a free hashing or decoding worker
    /// before it is answered 503 "busy" with `Retry-After`.
    #[arg(long, env = "BOARD_BUSY_WAIT", default_value = "2s", value_parser = parse_duration)]
    pub busy_wait: Duration,
    /// Memory one image decode may use, judged from the header before any
    /// pixel is decoded (pixels × bytes per pixel × the format's overhead).
    #[arg(long, env = "BOARD_DECODE_MEMORY", default_value = "128MiB", value_parser = parse_size)]
    pub decode_memory: u64,
    /// Longest side of a stored image; larger uploads are scaled down.
    #[arg(long, env = "BOARD_MAX_STORED_SIDE", default_value_t = 2048,
          value_parser = clap::value_parser!(u32).range(150..=65_535))]
    pub max_stored_side: u32,

    // Orphan media (issue 12): files no message shows are swept.
    /// How often to sweep the media store for images no message shows
    /// (left by a crash mid-post or a failed delete), first about a minute
    /// after start; each run looks at 10,000 objects at most and the next
    /// continues. `0` turns the sweep off.
    #[arg(long, env = "BOARD_MEDIA_SWEEP_INTERVAL", default_value = "1h", value_parser = parse_duration)]
    pub media_sweep_interval: Duration,
    /// How long a file must have gone unshown before the sweep removes it:
    /// far longer than a post takes between writing its files and its row.
    /// At least 1m.
    #[arg(long, env = "BOARD_MEDIA_SWEEP_GRACE", default_value = "1h", value_parser = parse_sweep_grace)]
    pub media_sweep_grace: Duration,

    // Sign in with Google / OpenID Connect (issue 15). One provider per
    // `--oidc-issuer`; the other `--oidc-*` flags are given once per
    // provider in the same order (comma-separated in the environment).
    /// An OpenID Connect provider to offer "Sign in with …" for, by its
    /// issuer URL: `https://accounts.google.com` for Google. Repeat for
    /// several providers. Without any, the board has password accounts
    /// only.
    #[arg(long, env = "BOARD_OIDC_ISSUER", value_delimiter = ',')]
    pub oidc_issuer: Vec<String>,
    /// The OAuth client id the provider issued to this board, one per
    /// `--oidc-issuer`.
    #[arg(long, env = "BOARD_OIDC_CLIENT_ID", value_delimiter = ',')]
    pub oidc_client_id: Vec<String>,
    /// The OAuth client secret, one per `--oidc-issuer`.
    #[arg(
        long,
        env = "BOARD_OIDC_CLIENT_SECRET",
        value_delimiter = ',',
        hide_env_values = true
    )]
    pub oidc_client_secret: Vec<SecretString>,
    /// The redirect URL registered at the provider, one per
    /// `--oidc-issuer` (e.g. `https://board.example/auth/oidc/google/callback`,
    /// the path being `/auth/oidc/{name in lower case}/callback`). When
    /// none is given, the URL of the request's own host is used: set it
    /// in production.
    #[arg(long, env = "BOARD_OIDC_REDIRECT_URL", value_delimiter = ',')]
    pub oidc_redirect_url: Vec<String>,
    /// The name on the sign-in button, one per `--oidc-issuer`
    /// ("Sign in with Google"); it also names the URL path. Default:
    /// `Google` for Google's issuer, else the issuer's host.
    #[arg(long, env = "BOARD_OIDC_NAME", value_delimiter = ',')]
    pub oidc_name: Vec<String>,
}

/// Where the board keeps its data: the database and the image store. One
/// struct flattened into `serve` and `demo`, so both take the same flags
/// and `BOARD_*` variables with the same defaults.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct StorageArgs {
    /// Where users, sessions and messages are kept: `sqlite://PATH` (created
    /// and migrated on start) or `sqlite::memory:`; in builds with the `aws`
    /// feature also `dynamodb://REGION?endpoint=URL&prefix=board_` (tables
    /// `{prefix}users`, `{prefix}sessions`, `{prefix}messages`, made by
    /// `board migrate`; `prefix` defaults to `board_`). Without `endpoint`
    /// it talks to AWS with the standard credential chain (environment,
    /// profile, web identity, container or instance role); with one (a
    /// local emulator such as `endpoint=http://127.0.0.1:8000`) it signs
    /// with `AWS_ACCESS_KEY_ID` and `AWS_SECRET_ACCESS_KEY` if set, else
    /// `local`/`local`, and never asks instance metadata.
    #[arg(
        long,
        env = "BOARD_DATABASE_URL",
        default_value = "sqlite://data/board.sqlite"
    )]
    pub database_url: String,

    /// Where images are kept: `file://DIR` or a plain path (a relative path
    /// is relative to the working directory), or, in a build with
    /// `--features aws`, `s3://BUCKET/PREFIX?endpoint=URL&region=REGION`
    /// (objects `PREFIX/NAME`, stored with their Content-Type and
    /// `Cache-Control: public, max-age=31536000, immutable`). With
    /// `endpoint=` (a local S3-compatible server, e.g.
    /// `endpoint=http://127.0.0.1:9000`) requests are path-style, the
    /// credentials are AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY if set, else
    /// `S3RVER`/`S3RVER`, and the instance-metadata service is never asked.
    /// Without it, AWS S3 configured from the AWS_* environment and its
    /// usual credential chain. `region` defaults to us-east-1.
    #[arg(long, env = "BOARD_MEDIA_URL", default_value = "file://data/media")]
    pub media_url: String,
}

impl Default for StorageArgs {
    /// `sqlite://data/board.sqlite` and `file://data/media`, as the flags'
    /// defaults.
    fn default() -> Self {
        Self {
            database_url: "sqlite://data/board.sqlite".into(),
            media_url: "file://data/media".into(),
        }
    }
}

/// `board demo`: where to put the sample data and how much.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Database and image store, as for `serve`.
    #[command(flatten)]
    pub storage: StorageArgs,

    /// Number of users (`demo1`, `demo2`, …).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    pub users: u32,

    /// Number of messages, spread over the users.
    #[arg(long, default_value_t = 24, value_parser = clap::value_parser!(u32).range(0..=10_000_000))]
    pub messages: u32,

    /// Password of every demo user.
    #[arg(
        long,
        env = "BOARD_DEMO_PASSWORD",
        default_value = "demo-password",
        hide_env_values = true
    )]
    pub password: String,
}

/// `board migrate`: which database to bring up to date.
#[derive(Debug, Clone, Args)]
pub struct MigrateArgs {
    /// Database, as for `serve` (`sqlite://PATH` or `dynamodb://REGION?…`).
    #[arg(
        long,
        env = "BOARD_DATABASE_URL",
        default_value = "sqlite://data/board.sqlite"
    )]
    pub database_url: String,
}

/// `board accounts`: which database, and how many accounts to list.
#[derive(Debug, Clone, Args)]
pub struct AccountsArgs {
    /// Database, as for `serve` (`sqlite://PATH` or `dynamodb://REGION?…`).
    #[arg(
        long,
        env = "BOARD_DATABASE_URL",
        default_value = "sqlite://data/board.sqlite"
    )]
    pub database_url: String,

    /// How many accounts to list.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u32).range(1..=100_000))]
    pub largest: u32,
}

impl Settings {
    /// The settings a bare `board` (or `board serve`) runs with: defaults,
    /// overridden by `BOARD_*` environment variables.
    ///
    /// # Errors
    /// When an environment variable holds an invalid value.
    pub fn from_env() -> Result<Self, clap::Error> {
        #[derive(Parser)]
        struct Only {
            #[command(flatten)]
            settings: Settings,
        }
        Only::try_parse_from(["board"]).map(|only| only.settings)
    }

    /// Settings for tests and tools: every default, no environment.
    pub fn defaults() -> Self {
        Self {
            address: SocketAddr::from(([127, 0, 0, 1], 8000)),
            storage: StorageArgs::default(),
            media_base_url: None,
            cache_url: "memory://?capacity=10000".into(),
            secret_key: None,
            require_secret_key: false,
            upload_limit: 10 * 1024 * 1024,
            max_image_side: 5_600,
            page_size: 50,
            user_cache_timeout: Duration::from_secs(600),
            messages_cache_timeout: None,
            my_messages_cache_timeout: Duration::from_secs(600),
            session_cache_timeout: Duration::from_secs(600),
            session_lifetime: Duration::from_secs(14 * 86_400),
            session_clock: crate::auth::clock::SessionClock::system(),
            cache_clock: None,
            request_timeout: Duration::from_secs(30),
            login_failures_per_account_address: 5,
            login_failures_per_account: 50,
            login_failures_per_address: 20,
            login_window: Duration::from_secs(15 * 60),
            registrations_per_address: 10,
            post_budget_per_account: Allowances::defaults(|l| &l.posts_per_account),
            post_budget_per_address: Allowances::defaults(|l| &l.posts_per_address),
            upload_budget_per_account: Allowances::defaults(|l| &l.bytes_per_account),
            upload_budget_per_address: Allowances::defaults(|l| &l.bytes_per_address),
            account_quota: Quota(crate::data::PostLimits::default().account_quota),
            trusted_proxies: Vec::new(),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_connections: 2048,
            max_connections_per_address: 256,
            metrics_address: None,
            metrics_token: None,
            secure_cookies: false,
            demo: false,
            hash_concurrency: None,
            decode_concurrency: None,
            busy_wait: Duration::from_secs(2),
            decode_memory: 128 << 20,
            max_stored_side: 2048,
            media_sweep_interval: Duration::from_secs(3600),
            media_sweep_grace: Duration::from_secs(3600),
            oidc_issuer: Vec::new(),
            oidc_client_id: Vec::new(),
            oidc_client_secret: Vec::new(),
            oidc_redirect_url: Vec::new(),
            oidc_name: Vec::new(),
        }
    }
}

impl Settings {
    /// The post and upload budgets and the account quota the
    /// `--post-budget-*`, `--upload-budget-*` and `--account-quota` flags
    /// describe.
    pub fn post_limits(&self) -> crate::data::PostLimits {
        crate::data::PostLimits {
            account_quota: self.account_quota.0,
            posts_per_account: self.post_budget_per_account.0.clone(),
            posts_per_address: self.post_budget_per_address.0.clone(),
            bytes_per_account: self.upload_budget_per_account.0.clone(),
            bytes_per_address: self.upload_budget_per_address.0.clone(),
        }
    }

    /// The OpenID providers the `--oidc-*` flags describe.
    ///
    /// # Errors
    /// A message when the lists do not line up.
    pub fn oidc_providers(&self) -> Result<Vec<crate::oidc::Provider>, String> {
        let n = self.oidc_issuer.len();
        let lined_up = |len: usize, optional: bool| len == n || (optional && len == 0);
        if !lined_up(self.oidc_client_id.len(), false)
            || !lined_up(self.oidc_client_secret.len(), false)
            || !lined_up(self.oidc_redirect_url.len(), true)
            || !lined_up(self.oidc_name.len(), true)
        {
            return Err(format!(
                "{n} --oidc-issuer given: give as many --oidc-client-id and \
                 --oidc-client-secret, and either as many or no --oidc-redirect-url \
                 and --oidc-name"
            ));
        }
        Ok((0..n)
            .map(|i| {
                let issuer = self.oidc_issuer[i].trim().to_owned();
                let display = self.oidc_name.get(i).cloned().unwrap_or_else(|| {
                    if issuer.trim_end_matches('/') == "https://accounts.google.com" {
                        "Google".to_owned()
                    } else {
                        url::Url::parse(&issuer)
                            .ok()
                            .and_then(|u| u.host_str().map(str::to_owned))
                            .unwrap_or_else(|| issuer.clone())
                    }
                });
                crate::oidc::Provider {
                    slug: crate::oidc::Provider::slug_of(&display),
                    display,
                    issuer,
                    client_id: self.oidc_client_id[i].clone(),
                    client_secret: self.oidc_client_secret[i].clone(),
                    redirect_url: self.oidc_redirect_url.get(i).cloned(),
                }
            })
            .collect())
    }
}

/// `--account-quota`: a size, or `None` (`none`) for no quota.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Quota(pub Option<u64>);

/// Parses `200MiB` (any size [`parse_size`] takes) or `none`.
///
/// # Errors
/// A message for a malformed size.
///
/// ```
/// use board::config::{Quota, parse_quota};
/// assert_eq!(parse_quota("1GiB"), Ok(Quota(Some(1 << 30))));
/// assert_eq!(parse_quota("none"), Ok(Quota(None)));
/// assert!(parse_quota("lots").is_err());
/// ```
pub fn parse_quota(input: &str) -> Result<Quota, String> {
    if input.trim() == "none" {
        return Ok(Quota(None));
    }
    parse_size(input).map(|bytes| Quota(Some(bytes)))
}

/// A budget's allowances (`30/10m,200/1d`); empty (`none`) for no budget.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allowances(pub Vec<Allowance>);

impl Allowances {
    fn defaults(pick: impl Fn(&crate::data::PostLimits) -> &Vec<Allowance>) -> Self {
        Self(pick(&crate::data::PostLimits::default()).clone())
    }
}

fn parse_allowances(
    input: &str,
    one: fn(&str) -> Result<Allowance, String>,
) -> Result<Allowances, String> {
    if input.trim() == "none" {
        return Ok(Allowances(Vec::new()));
    }
    input
        .split(',')
        .map(|part| one(part.trim()))
        .collect::<Result<_, _>>()
        .map(Allowances)
}

/// Parses `30/10m,200/1d` (or `none`).
///
/// # Errors
/// A message for a malformed allowance.
pub fn parse_allowances_count(input: &str) -> Result<Allowances, String> {
    parse_allowances(input, Allowance::parse_count)
}

/// Parses `100MiB/10m,1GiB/1d` (or `none`).
///
/// # Errors
/// A message for a malformed allowance.
pub fn parse_allowances_bytes(input: &str) -> Result<Allowances, String> {
    parse_allowances(input, Allowance::parse_bytes)
}

/// [`parse_duration`], refusing `0`.
///
/// # Errors
/// As [`parse_duration`], and for zero.
pub fn parse_positive_duration(input: &str) -> Result<Duration, String> {
    parse_duration(input).and_then(|d| {
        if d.is_zero() {
            Err("the duration must be more than 0".into())
        } else {
            Ok(d)
        }
    })
}

/// Shortest `--media-sweep-grace`: a post writes its files and its row
/// within one request.
pub const MIN_SWEEP_GRACE: Duration = Duration::from_secs(60);

/// Parses a `--media-sweep-grace`: a duration of at least
/// [`MIN_SWEEP_GRACE`].
///
/// # Errors
/// A message for malformed or too short durations.
pub fn parse_sweep_grace(input: &str) -> Result<Duration, String> {
    parse_duration(input).and_then(|d| {
        if d < MIN_SWEEP_GRACE {
            Err("the grace period must be at least 1m: a shorter one could remove the files of a post in progress".into())
        } else {
            Ok(d)
        }
    })
}

#[cfg(test)]
mod tests;

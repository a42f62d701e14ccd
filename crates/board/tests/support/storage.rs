//! The axis of the board's test matrix: where a test board keeps its data.
//!
//! Every suite (HTTP and browser) is compiled twice from the same files:
//! once with [`Storage::Embedded`] (SQLite + a local directory, the default
//! `board` runs on) and once with [`Storage::Aws`] (DynamoDB in `dynalite`
//! and S3 in `s3rver`, both real servers started by `testkit` for each
//! test). The crate root of each binary picks one with `const STORAGE`.

use std::path::Path;

use testkit::{Dynalite, S3Server};

/// Which storage a test binary runs the board on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(dead_code, unreachable_pub)] // each binary uses one variant
pub enum Storage {
    /// `sqlite://` + `file://` in the test's temporary directory.
    Embedded,
    /// `dynamodb://` + `s3://` on servers of the test's own.
    Aws,
}

/// The URLs a test board is given, and the servers behind them (stopped
/// when this is dropped, at the end of the test).
#[allow(unreachable_pub)]
pub struct Backing {
    /// `--database-url`.
    pub database_url: String,
    /// `--media-url`.
    pub media_url: String,
    /// The DynamoDB and S3 servers of [`Storage::Aws`], held only to be
    /// stopped when the test ends.
    _servers: Option<(Dynalite, S3Server)>,
}

impl Backing {
    /// DynamoDB (dynalite; its tables on disk when `on_disk`, so that they
    /// survive a restart) and S3 (s3rver) of their own, tables migrated.
    #[allow(unreachable_pub)]
    pub async fn aws(on_disk: bool) -> Backing {
        // Both are Node programs that take a few hundred milliseconds to
        // load: start them side by side.
        let (dynamo, s3) = std::thread::scope(|scope| {
            let s3 = scope.spawn(S3Server::start);
            let dynamo = if on_disk {
                Dynalite::start_on_disk()
            } else {
                Dynalite::start()
            };
            (dynamo, s3.join().expect("S3 server thread"))
        });
        let database_url = format!(
            "dynamodb://us-east-1?endpoint={}&prefix=test_",
            dynamo.endpoint()
        );
        let media_url = format!(
            "s3://{}/media?endpoint={}&region=us-east-1",
            s3.bucket(),
            s3.endpoint()
        );
        board::store::migrate(&database_url)
            .await
            .unwrap_or_else(|e| panic!("creating tables in dynalite: {e}\n{}", dynamo.log()));
        Backing {
            database_url,
            media_url,
            _servers: Some((dynamo, s3)),
        }
    }

    /// The DynamoDB server, for outage tests; `None` on embedded storage.
    #[allow(dead_code, unreachable_pub)]
    pub fn dynalite(&mut self) -> Option<&mut Dynalite> {
        self._servers.as_mut().map(|(dynamo, _)| dynamo)
    }

    /// The same URLs without owning the servers: for a second client of a
    /// board whose first client keeps them running.
    #[allow(dead_code, unreachable_pub)]
    pub fn borrowed(other: &Backing) -> Backing {
        Backing {
            database_url: other.database_url.clone(),
            media_url: other.media_url.clone(),
            _servers: None,
        }
    }
}

impl Storage {
    /// Starts what this storage needs for one test, creates its tables,
    /// and returns the URLs. `dir` is the test's temporary directory.
    #[allow(unreachable_pub)]
    pub async fn provision(self, dir: &Path) -> Backing {
        match self {
            Self::Embedded => Backing {
                database_url: format!("sqlite://{}", dir.join("board.sqlite").display()),
                media_url: format!("file://{}", dir.join("media").display()),
                _servers: None,
            },
            Self::Aws => Backing::aws(false).await,
        }
    }
}

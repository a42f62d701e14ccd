//! The database going away (DynamoDB binary only: dynalite can be stopped
//! and restarted with its tables on disk). A lasting failure, after the
//! SDK's retries, gives the user a clear error page; nothing already stored
//! is lost, and nothing half-done is left behind.

use image::ImageFormat;
use reqwest::StatusCode;

use crate::helpers::{picture, spawn_on};
use crate::storage::Backing;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_database_gives_an_error_page_and_loses_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let backing = Backing::aws(true).await;
    let mut app = spawn_on(backing, dir, |_| {}).await;
    app.signed_up("ada").await;
    app.posted("posted before the outage").await;
    let csrf = app.csrf().await;

    app.backing.dynalite().expect("dynalite").stop();
    let response = app
        .post_message(
            &[
                ("author", "Ada"),
                ("location", "Tallinn"),
                ("description", "posted during the outage"),
            ],
            Some(("pic.png", picture(64, 48, ImageFormat::Png))),
            Some(&csrf),
        )
        .await;
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    let page = response.text().await.expect("body");
    assert!(
        page.contains("database is not answering") && page.contains("already posted is safe"),
        "{page}"
    );

    app.backing.dynalite().expect("dynalite").restart();
    let (status, home) = app.get_text("/").await;
    assert_eq!(status, StatusCode::OK, "{home}");
    assert!(home.contains("posted before the outage"));
    assert!(!home.contains("posted during the outage"));
    let stored = app.stored_messages().await;
    assert_eq!(stored.len(), 1, "only the message posted before the outage");
}

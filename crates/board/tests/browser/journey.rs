//! The visit itself, run by each storage's test binary.

use std::path::PathBuf;
use std::time::Duration;

use board::{Application, Settings};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use image::{DynamicImage, ImageFormat, RgbImage};
use serde_json::json;
use testkit::Chromedriver;

pub(crate) fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    let dir = target.join("test-artifacts");
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

pub(crate) async fn browser(driver: &Chromedriver, profile: &tempfile::TempDir) -> Client {
    let mut args: Vec<String> = Chromedriver::chrome_args()
        .into_iter()
        .map(String::from)
        .collect();
    args.push(format!("--user-data-dir={}", profile.path().display()));
    args.push("--window-size=1200,1000".into());
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": Chromedriver::chromium_binary(), "args": args }),
    );
    ClientBuilder::new(HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url())
        .await
        .unwrap_or_else(|e| {
            panic!(
                "cannot start Chromium: {e}\nchromedriver log:\n{}",
                driver.log()
            )
        })
}

pub(crate) async fn fill(client: &Client, css: &str, text: &str) {
    let field = client.find(Locator::Css(css)).await.expect(css);
    field.clear().await.expect("clear");
    field.send_keys(text).await.expect("type");
}

pub(crate) async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .expect(css)
        .click()
        .await
        .expect("click");
}

pub(crate) async fn path_of(client: &Client) -> String {
    client.current_url().await.expect("url").path().to_owned()
}

async fn body_text(client: &Client) -> String {
    client
        .find(Locator::Css("body"))
        .await
        .expect("body")
        .text()
        .await
        .expect("text")
}

/// The page's text once it contains `expected` (after a click that
/// navigates, the old page may still be there for a moment).
pub(crate) async fn wait_for_text(client: &Client, expected: &str) -> String {
    let mut text = String::new();
    for _ in 0..100 {
        if let Ok(body) = client.find(Locator::Css("body")).await {
            text = body.text().await.unwrap_or_default();
            if text.contains(expected) {
                return text;
            }
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("never saw {expected:?}; the page says:\n{text}");
}

/// `naturalWidth` of the first image matching `css`, once it has loaded.
async fn loaded_width(client: &Client, css: &str) -> u64 {
    let script = "const img = document.querySelector(arguments[0]);\
                  return img && img.complete ? img.naturalWidth : -1;";
    for _ in 0..50 {
        let width = client
            .execute(script, vec![json!(css)])
            .await
            .expect("script");
        if let Some(w) = width.as_i64().filter(|w| *w >= 0) {
            return w as u64;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{css} never finished loading");
}

pub(crate) async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("screenshot");
    let path = match crate::STORAGE {
        crate::storage::Storage::Embedded => artifacts_dir().join(name),
        crate::storage::Storage::Aws => artifacts_dir().join(format!("aws-{name}")),
    };
    std::fs::write(&path, png).expect("write screenshot");
    eprintln!("screenshot: {}", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_posts_a_picture_sees_it_deletes_it_and_logs_out() {
    let driver = tokio::task::spawn_blocking(Chromedriver::start)
        .await
        .expect("chromedriver");
    let profile = Chromedriver::fresh_user_data_dir();

    let dir = tempfile::tempdir().expect("dir");
    let backing = crate::STORAGE.provision(dir.path()).await;
    let mut settings = Settings::defaults();
    settings.address = "127.0.0.1:0".parse().expect("address");
    settings
        .storage
        .database_url
        .clone_from(&backing.database_url);
    settings.storage.media_url.clone_from(&backing.media_url);
    settings.page_size = 2;
    let app = Application::build(&settings).await.expect("board starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    // Three older messages by someone else, so the home page has a second
    // page once Ada has posted.
    let bob = board::store::User {
        id: "b".repeat(32),
        username: "bob".into(),
        created_at: 1,
    };
    state.data.register(&bob, "not a hash").await.expect("bob");
    let older: Vec<board::store::Message> = (1..=3)
        .map(|i| board::store::Message {
            id: format!("{i:032x}"),
            user_id: bob.id.clone(),
            author: "Bob".into(),
            location: String::new(),
            description: format!("Older message {i}"),
            image: format!("{i:032x}.jpg"),
            thumbnail: format!("{i:032x}_thumb.jpg"),
            created_at: 1_700_000_000_000 + i,
        })
        .collect();
    state
        .data
        .insert_many(&older)
        .await
        .expect("older messages");
    tokio::spawn(app.run_until_stopped());

    // A real picture file to upload.
    let picture_path = dir.path().join("harbour.jpg");
    let picture = RgbImage::from_fn(640, 480, |x, y| {
        image::Rgb([(x / 3) as u8, (y / 2) as u8, 160])
    });
    DynamicImage::ImageRgb8(picture)
        .save_with_format(&picture_path, ImageFormat::Jpeg)
        .expect("write picture");

    let client = browser(&driver, &profile).await;
    let result = match home_is_revalidated(&client, &base, &state).await {
        Ok(()) => journey(&client, &base, &picture_path).await,
        Err(error) => Err(error),
    };
    let copied = result.as_ref().ok().cloned();
    client.close().await.expect("close browser");
    let copied = copied.unwrap_or_else(|| panic!("{:?}", result.err()));

    // Outside the browser too: the copied cookie is dead on the server.
    let thief = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let response = thief
        .get(format!("{base}/acc"))
        .header("cookie", format!("board_session={copied}"))
        .send()
        .await
        .expect("GET /acc");
    assert_eq!(response.status(), reqwest::StatusCode::SEE_OTHER);
    let left = state.data.stores().messages.all().await.expect("all");
    assert!(left.iter().all(|m| m.user_id == "b".repeat(32)), "{left:?}");
    assert_eq!(left.len(), 3);
}

/// A visitor (no cookie yet) views the home page twice: the page says
/// `Cache-Control: no-cache` with an ETag from the response cache, so
/// Chromium revalidates it and the board answers the second view `304`.
async fn home_is_revalidated(
    client: &Client,
    base: &str,
    state: &board::state::AppState,
) -> Result<(), String> {
    let before = state.pages.stats();
    for _ in 0..2 {
        client
            .goto(&format!("{base}/"))
            .await
            .map_err(|e| format!("goto /: {e}"))?;
        let text = body_text(client).await;
        if !text.contains("Older message 3") {
            return Err(format!("home page without the messages: {text}"));
        }
    }
    let after = state.pages.stats();
    if after.not_modified > before.not_modified {
        Ok(())
    } else {
        Err(format!(
            "Chromium did not revalidate the home page: {after:?}"
        ))
    }
}

/// The whole visit; returns the session cookie copied before logging out.
async fn journey(client: &Client, base: &str, picture: &std::path::Path) -> Result<String, String> {
    // Register.
    client
        .goto(&format!("{base}/register"))
        .await
        .expect("goto");
    fill(client, "input[name=username]", "ada").await;
    fill(client, "input[name=password]", "correct horse").await;
    fill(client, "input[name=confirm]", "correct horse").await;
    click(client, "form.stack button[type=submit]").await;
    let home = wait_for_text(client, "Welcome! Your account is ready.").await;
    assert!(home.contains("ada"));

    // Post a message with a real image file.
    client.goto(&format!("{base}/post")).await.expect("goto");
    fill(client, "input[name=author]", "Ada L.").await;
    fill(client, "input[name=location]", "Tallinn harbour").await;
    fill(
        client,
        "textarea[name=description]",
        "Boats coming back in at dusk.",
    )
    .await;
    let file = client
        .find(Locator::Css("input[type=file]"))
        .await
        .expect("file input");
    file.send_keys(&picture.display().to_string())
        .await
        .expect("choose file");
    screenshot(client, "board-post.png").await;
    click(client, "form.stack button[type=submit]").await;

    // Home: the message with its thumbnail, loaded.
    let home = wait_for_text(client, "Your message is posted.").await;
    assert_eq!(path_of(client).await, "/");
    assert!(home.contains("Boats coming back in at dusk.") && home.contains("in Tallinn harbour"));
    assert_eq!(
        loaded_width(client, ".cards img").await,
        150,
        "thumbnail on home"
    );
    screenshot(client, "board-home.png").await;

    // Two per page: Bob's newest is here, his older ones behind "Older".
    assert!(home.contains("Older message 3") && !home.contains("Older message 2"));
    click(client, "nav.pages a[rel=next]").await;
    let second = wait_for_text(client, "Older message 2").await;
    assert!(second.contains("Older message 1") && !second.contains("Boats coming back"));
    let url = client.current_url().await.expect("url");
    assert!(
        url.query().is_some_and(|q| q.starts_with("cursor=")),
        "{url}"
    );
    click(client, "nav.pages a[rel=prev]").await;
    wait_for_text(client, "Boats coming back in at dusk.").await;

    // My messages: the same, with a delete button.
    client.goto(&format!("{base}/my")).await.expect("goto");
    wait_for_text(client, "My messages").await;
    assert_eq!(
        loaded_width(client, ".cards img").await,
        150,
        "thumbnail on /my"
    );
    assert!(body_text(client).await.contains("Delete"));

    // Its image page: the full picture.
    click(client, ".cards a.thumb").await;
    wait_for_text(client, "Delete this message").await;
    assert!(path_of(client).await.starts_with("/image/"));
    assert_eq!(loaded_width(client, ".photo img").await, 640, "full image");

    // Delete it.
    click(client, "form.delete button").await;
    let mine = wait_for_text(client, "The message is deleted.").await;
    assert_eq!(path_of(client).await, "/my");
    assert!(mine.contains("not posted anything"), "{mine}");

    // Copy the session cookie, then log out.
    let cookie = client
        .get_named_cookie("board_session")
        .await
        .expect("session cookie");
    let copied = cookie.value().to_owned();
    assert!(cookie.http_only().unwrap_or(false), "HttpOnly");
    click(client, "header form button").await;
    wait_for_text(client, "You are logged out.").await;

    // Put the copied cookie back: the server has revoked it.
    // (Through script: the cookie no longer needs to be HttpOnly to be sent.)
    client
        .execute(
            "document.cookie = 'board_session=' + arguments[0] + '; path=/';",
            vec![json!(copied)],
        )
        .await
        .expect("set cookie");
    client.goto(&format!("{base}/acc")).await.expect("goto");
    let at = path_of(client).await;
    if at != "/login" {
        return Err(format!("copied cookie still worked: at {at}"));
    }
    Ok(copied)
}

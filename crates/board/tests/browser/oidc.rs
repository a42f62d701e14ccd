//! Sign in with OpenID Connect in Chromium, through the real provider's
//! login and consent pages (npm `oidc-provider`): sign in, post, log out;
//! and on a two-board fleet whose redirect URL names the other board.

use board::{Application, Settings};
use fantoccini::Client;
use image::{DynamicImage, ImageFormat, RgbImage};
use testkit::{Chromedriver, OidcProvider};

use crate::journey::{browser, click, fill, path_of, screenshot, wait_for_text};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_visitor_signs_in_at_the_provider_posts_and_logs_out() {
    let (driver, provider) = servers().await;
    let profile = Chromedriver::fresh_user_data_dir();

    let dir = tempfile::tempdir().expect("dir");
    let backing = crate::STORAGE.provision(dir.path()).await;
    let settings = settings(&provider, &backing);
    let app = Application::build(&settings).await.expect("board starts");
    let base = format!("http://127.0.0.1:{}", app.port());
    let state = app.state().clone();
    tokio::spawn(app.run_until_stopped());

    let picture = dir.path().join("dawn.jpg");
    DynamicImage::ImageRgb8(RgbImage::from_fn(320, 240, |x, _| {
        image::Rgb([(x / 2) as u8, 90, 200])
    }))
    .save_with_format(&picture, ImageFormat::Jpeg)
    .expect("write picture");

    let client = browser(&driver, &profile).await;
    let result = visit(&client, &base, &base, &picture).await;
    client.close().await.expect("close browser");
    if let Err(problem) = result {
        panic!("{problem}\nprovider log:\n{}", provider.log());
    }
    let messages = state.data.stores().messages.all().await.expect("all");
    assert_eq!(messages.len(), 1);
    assert_eq!(state.data.user_count().await.expect("users"), 1);
}

/// Chromedriver and the OpenID provider, started side by side.
async fn servers() -> (Chromedriver, OidcProvider) {
    tokio::task::spawn_blocking(|| {
        let provider = std::thread::spawn(OidcProvider::start);
        let driver = Chromedriver::start();
        (driver, provider.join().expect("provider thread"))
    })
    .await
    .expect("servers")
}

/// A board on `backing` with `provider` configured as "Test", sharing a
/// secret with every other board made here (a fleet).
fn settings(provider: &OidcProvider, backing: &crate::storage::Backing) -> Settings {
    let mut settings = Settings::defaults();
    settings.address = "127.0.0.1:0".parse().expect("address");
    settings
        .storage
        .database_url
        .clone_from(&backing.database_url);
    settings.storage.media_url.clone_from(&backing.media_url);
    settings.secret_key = Some("the fleet's shared secret, long enough".into());
    settings.oidc_issuer = vec![provider.issuer()];
    settings.oidc_client_id = vec![provider.client_id().into()];
    settings.oidc_client_secret = vec![provider.client_secret().to_owned().into()];
    settings.oidc_name = vec!["Test".into()];
    settings
}

/// Two boards on one storage; the first's redirect URL names the second,
/// as a load balancer may send the provider's redirect to any instance.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_fleet_the_callback_lands_on_another_instance() {
    let (driver, provider) = servers().await;
    let profile = Chromedriver::fresh_user_data_dir();
    let dir = tempfile::tempdir().expect("dir");
    let backing = crate::STORAGE.provision(dir.path()).await;

    let second = Application::build(&settings(&provider, &backing))
        .await
        .expect("second board");
    let second_base = format!("http://127.0.0.1:{}", second.port());
    let mut first_settings = settings(&provider, &backing);
    first_settings.oidc_redirect_url = vec![format!("{second_base}/auth/oidc/test/callback")];
    let first = Application::build(&first_settings)
        .await
        .expect("first board");
    let first_base = format!("http://127.0.0.1:{}", first.port());
    let state = first.state().clone();
    tokio::spawn(first.run_until_stopped());
    tokio::spawn(second.run_until_stopped());

    let picture = dir.path().join("fleet.jpg");
    DynamicImage::ImageRgb8(RgbImage::from_fn(200, 200, |_, y| {
        image::Rgb([40, (y / 2) as u8, 120])
    }))
    .save_with_format(&picture, ImageFormat::Jpeg)
    .expect("write picture");

    let client = browser(&driver, &profile).await;
    let result = visit(&client, &first_base, &second_base, &picture).await;
    client.close().await.expect("close browser");
    if let Err(problem) = result {
        panic!("{problem}\nprovider log:\n{}", provider.log());
    }
    assert_eq!(state.data.user_count().await.expect("users"), 1);
}

/// Signs in from `base`'s login page, lands signed in on `landing` (the
/// instance the redirect URL names), posts there and logs out.
async fn visit(
    client: &Client,
    base: &str,
    landing: &str,
    picture: &std::path::Path,
) -> Result<(), String> {
    client
        .goto(&format!("{base}/login"))
        .await
        .map_err(|e| e.to_string())?;
    wait_for_text(client, "Sign in with Test").await;
    click(client, "a[href='/auth/oidc/test/login']").await;

    // The provider's own pages: its login form, then its consent form.
    wait_for_text(client, "Sign-in").await;
    fill(client, "input[name=login]", "grace").await;
    fill(client, "input[name=password]", "anything").await;
    click(client, "button[type=submit]").await;
    wait_for_text(client, "Authorize").await;
    click(client, "button[type=submit]").await;

    // Back on the board, signed in as a new user named from the profile.
    let home = wait_for_text(client, "Welcome! Your account is ready.").await;
    let at = client.current_url().await.map_err(|e| e.to_string())?;
    if !at.as_str().starts_with(landing) || path_of(client).await != "/" || !home.contains("grace")
    {
        return Err(format!("not signed in on {landing}/ but at {at}:\n{home}"));
    }
    screenshot(client, "board-oidc-signed-in.png").await;

    // Post like any user.
    client
        .goto(&format!("{landing}/post"))
        .await
        .map_err(|e| e.to_string())?;
    fill(client, "input[name=author]", "Grace").await;
    fill(client, "textarea[name=description]", "Signed in elsewhere.").await;
    let file = client
        .find(fantoccini::Locator::Css("input[type=file]"))
        .await
        .map_err(|e| e.to_string())?;
    file.send_keys(&picture.display().to_string())
        .await
        .map_err(|e| e.to_string())?;
    click(client, "form.stack button[type=submit]").await;
    wait_for_text(client, "Your message is posted.").await;

    // Log out.
    click(client, "header form button").await;
    wait_for_text(client, "You are logged out.").await;
    Ok(())
}

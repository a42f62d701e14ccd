//! The post form and `/save`: every field, every refusal.

use board::config::Quota;
use image::ImageFormat;
use reqwest::StatusCode;

use crate::helpers::{location, media_links, picture, spawn_app, spawn_on, spawn_with};
use crate::storage::Backing;

fn fields<'a>(author: &'a str, place: &'a str, text: &'a str) -> [(&'a str, &'a str); 3] {
    [
        ("author", author),
        ("location", place),
        ("description", text),
    ]
}

#[tokio::test]
async fn the_post_form_suggests_the_user_name_as_author() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let (status, html) = app.get_text("/post").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains("name=\"author\" value=\"ada\""));
    assert!(html.contains("enctype=\"multipart/form-data\""));
    assert!(html.contains("at most 10 MiB"));
}

#[tokio::test]
async fn every_accepted_format_is_stored_with_a_150px_thumbnail() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let formats = [
        ("a.jpg", ImageFormat::Jpeg, "jpg"),
        ("b.jpeg", ImageFormat::Jpeg, "jpg"),
        ("c.png", ImageFormat::Png, "png"),
        // Stored again as PNG (lossless, alpha kept).
        ("d.gif", ImageFormat::Gif, "png"),
        ("e.bmp", ImageFormat::Bmp, "png"),
        ("f.webp", ImageFormat::WebP, "png"),
    ];
    for (file, format, ext) in formats {
        let response = app
            .post_message(
                &fields("Ada", "", file),
                Some((file, picture(320, 200, format))),
                None,
            )
            .await;
        assert_eq!(response.status(), StatusCode::SEE_OTHER, "{file}");
        assert_eq!(location(&response), "/");
        let (_, mine) = app.get_text("/my").await;
        assert!(
            mine.contains("Your message is posted."),
            "flash on the next page"
        );
        let thumb = media_links(&mine)
            .into_iter()
            .next()
            .expect("thumbnail link");
        let full = thumb.replace("_thumb", "");
        let full = format!("{}.{ext}", full.split('.').next().expect("stem"));
        let image = app.get(&format!("/media/{full}")).await;
        assert_eq!(image.status(), StatusCode::OK, "{file}");
        assert_eq!(
            image.headers()["content-type"],
            format!("image/{}", if ext == "jpg" { "jpeg" } else { ext })
        );
        let thumb_bytes = app
            .get(&format!("/media/{thumb}"))
            .await
            .bytes()
            .await
            .expect("bytes");
        let decoded = image::load_from_memory(&thumb_bytes).expect("thumbnail decodes");
        assert_eq!((decoded.width(), decoded.height()), (150, 150), "{file}");
    }
}

#[tokio::test]
async fn html_tags_are_stripped_from_every_text_field() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let response = app
        .post_message(
            &fields(
                "<b>Ada</b>",
                "<i>Tallinn</i>",
                "<script>alert('x')</script>hello <a href=x>there</a>",
            ),
            Some(("p.png", picture(10, 10, ImageFormat::Png))),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    let message = app.stored_messages().await.remove(0);
    assert_eq!(message.author, "Ada");
    assert_eq!(message.location, "Tallinn");
    assert_eq!(message.description, "alert('x')hello there");
    let (_, html) = app.get_text("/").await;
    assert!(!html.contains("<script>alert"));
}

#[tokio::test]
async fn refused_forms_keep_what_was_typed() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let png = || Some(("p.png", picture(10, 10, ImageFormat::Png)));
    let long_location = "L".repeat(101);
    let long_description = "d".repeat(1001);
    type Case<'a> = (
        &'a str,
        [(&'a str, &'a str); 3],
        Option<(&'a str, Vec<u8>)>,
        &'a str,
    );
    let cases: Vec<Case<'_>> = vec![
        (
            "no image",
            fields("Ada", "Oslo", "typed text"),
            None,
            "Please choose an image",
        ),
        (
            "empty image",
            fields("Ada", "Oslo", "typed text"),
            Some(("x.png", vec![])),
            "Please choose an image",
        ),
        (
            "text as jpg",
            fields("Ada", "Oslo", "typed text"),
            Some(("x.jpg", b"just some text, not a picture".to_vec())),
            "not an image the board accepts",
        ),
        (
            "html as png",
            fields("Ada", "Oslo", "typed text"),
            Some(("x.png", b"<html><script>1</script></html>".to_vec())),
            "not an image the board accepts",
        ),
        (
            "tiff",
            fields("Ada", "Oslo", "typed text"),
            Some(("x.tif", b"II*\0\x08\0\0\0\0\0\0\0".to_vec())),
            "not an image the board accepts",
        ),
        (
            "truncated png",
            fields("Ada", "Oslo", "typed text"),
            Some(("x.png", picture(50, 50, ImageFormat::Png)[..60].to_vec())),
            "could not be read",
        ),
        (
            "no author",
            fields("", "Oslo", "typed text"),
            png(),
            "Author is required",
        ),
        (
            "tags only author",
            fields("<b></b>", "Oslo", "typed text"),
            png(),
            "Author is required",
        ),
        (
            "no description",
            fields("Ada", "Oslo", "  "),
            png(),
            "Description is required",
        ),
        (
            "long location",
            fields("Ada", &long_location, "typed text"),
            png(),
            "Location must be at most 100",
        ),
        (
            "long description",
            fields("Ada", "Oslo", &long_description),
            png(),
            "Description must be at most 1000",
        ),
    ];
    for (case, form, image, expected) in cases {
        let response = app.post_message(&form, image, None).await;
        assert_eq!(
            response.status(),
            StatusCode::UNPROCESSABLE_ENTITY,
            "{case}"
        );
        let html = response.text().await.expect("body");
        assert!(html.contains(expected), "{case}: {html}");
        if form[0].1 == "Ada" {
            assert!(
                html.contains("name=\"author\" value=\"Ada\""),
                "{case} keeps author"
            );
        }
        if form[2].1 == "typed text" {
            assert!(
                html.contains(">typed text</textarea>"),
                "{case} keeps description"
            );
        }
        if form[1].1 == "Oslo" {
            assert!(html.contains("value=\"Oslo\""), "{case} keeps location");
        }
    }
    assert!(app.stored_messages().await.is_empty());
}

#[tokio::test]
async fn images_over_the_upload_limit_get_a_clear_page_and_keep_the_text() {
    let app = spawn_with(|s| s.upload_limit = 64 * 1024).await;
    app.signed_up("ada").await;
    let big = vec![0x42_u8; 100 * 1024];
    let response = app
        .post_message(
            &fields("Ada", "Oslo", "typed text"),
            Some(("big.bmp", big)),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let html = response.text().await.expect("body");
    assert!(html.contains("larger than 64 KiB"), "{html}");
    assert!(html.contains(">typed text</textarea>"));

    // Far above the limit: refused from the declared length alone.
    let huge = vec![0_u8; 1024 * 1024];
    let response = app
        .post_message(
            &fields("Ada", "Oslo", "typed"),
            Some(("huge.png", huge)),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("at most 64 KiB")
    );
    assert!(app.stored_messages().await.is_empty());
}

#[tokio::test]
async fn decompression_bombs_are_refused_before_decoding() {
    let app = spawn_with(|s| s.max_image_side = 2000).await;
    app.signed_up("ada").await;
    // 5000x5000 of one colour: a few KiB of PNG, 100 MB decoded.
    let bomb = {
        let img = image::GrayImage::new(5000, 5000);
        let mut out = std::io::Cursor::new(Vec::new());
        img.write_to(&mut out, ImageFormat::Png).expect("encode");
        out.into_inner()
    };
    assert!(bomb.len() < 200 * 1024, "small file: {}", bomb.len());
    let response = app
        .post_message(&fields("Ada", "", "boom"), Some(("bomb.png", bomb)), None)
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("too large to process")
    );
}

#[tokio::test]
async fn posting_needs_the_session_csrf_token() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let image = || Some(("p.png", picture(10, 10, ImageFormat::Png)));
    let wrong = app
        .post_message(&fields("Ada", "", "x"), image(), Some("forged"))
        .await;
    assert_eq!(wrong.status(), StatusCode::FORBIDDEN);
    let empty = app
        .post_message(&fields("Ada", "", "x"), image(), Some(""))
        .await;
    assert_eq!(empty.status(), StatusCode::FORBIDDEN);
    // Another user's token does not work either.
    let other = app.another_browser();
    other.signed_up("bob").await;
    let bobs = other.csrf().await;
    let crossed = app
        .post_message(&fields("Ada", "", "x"), image(), Some(&bobs))
        .await;
    assert_eq!(crossed.status(), StatusCode::FORBIDDEN);
    assert!(app.stored_messages().await.is_empty());
}

#[tokio::test]
async fn a_non_multipart_save_is_a_bad_request() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let response = app.post("/save", &[("author", "Ada")]).await;
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
}

/// Issue 27: an account's storage quota, through the form on either
/// storage. A second board on the same storage gets a quota of two and a
/// half of the first post's size: one more post fits, the next gets a
/// 413 page that says why and stores nothing (no row, no file), and
/// `board accounts` lists the account with its two messages and bytes.
#[tokio::test]
async fn a_full_account_gets_a_clear_page_and_nothing_is_stored() {
    let first = spawn_app().await;
    first.signed_up("ada").await;
    first.posted("one").await;
    let data = &first.state.data;
    let one = data.largest_accounts(1).await.expect("largest")[0].bytes;
    assert!(one > 0, "the post's bytes are counted");

    let quota = 2 * one + one / 2;
    let board = spawn_on(
        Backing::borrowed(&first.backing),
        tempfile::tempdir().expect("dir"),
        |s| s.account_quota = Quota(Some(quota)),
    )
    .await;
    assert_eq!(
        board.login("ada", "password123").await.status(),
        StatusCode::SEE_OTHER
    );
    board.posted("two").await;
    let image = picture(64, 48, ImageFormat::Png);
    let refused = board
        .post_message(&fields("Ada", "", "three"), Some(("p.png", image)), None)
        .await;
    assert_eq!(refused.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let page = refused.text().await.expect("body");
    assert!(page.contains("Storage full"), "{page}");
    assert!(page.contains("Nothing was posted"), "{page}");
    assert!(page.contains("Delete some of your messages"), "{page}");
    assert_eq!(board.stored_messages().await.len(), 2, "no row");
    let far = std::time::SystemTime::now() + std::time::Duration::from_secs(3600);
    let objects = data
        .media()
        .list_older_than(far, None, 1000)
        .await
        .expect("media listing");
    assert_eq!(objects.names.len(), 4, "no file of the refused post");
    assert_eq!(
        board.metric("board_posts_over_quota_total").await,
        1,
        "counted"
    );

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_board"))
        .args(["accounts", "--largest", "5", "--database-url"])
        .arg(&first.backing.database_url)
        .env_remove("BOARD_DATABASE_URL")
        .output()
        .expect("board accounts runs");
    let table = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{table}");
    let ada = table
        .lines()
        .find(|l| l.starts_with("ada "))
        .unwrap_or_else(|| panic!("ada not listed:\n{table}"));
    let columns: Vec<&str> = ada.split_whitespace().collect();
    assert_eq!(columns[2..4], ["2", &(2 * one).to_string()], "{table}");
}

//! Uploads under abuse, at the HTTP level: what is stored is a
//! clean re-encoding (upright, no EXIF or GPS), forms cannot stream
//! unbounded text, and a full worker pool answers 503 "busy" instead of
//! queueing without bound.

use image::{ImageFormat, RgbImage};
use reqwest::{StatusCode, multipart};

use crate::helpers::{media_links, picture, spawn_app, spawn_with};

/// A place nobody should learn from a served image.
const SECRET_PLACE: &[u8] = b"GPS 59.4370N 24.7536E the-secret-house";

/// A little-endian TIFF (EXIF) block: an image description naming
/// [`SECRET_PLACE`], the orientation tag and a GPS IFD with a latitude.
fn exif_block(orientation: u16) -> Vec<u8> {
    fn entry(out: &mut Vec<u8>, tag: u16, kind: u16, count: u32, value: [u8; 4]) {
        out.extend_from_slice(&tag.to_le_bytes());
        out.extend_from_slice(&kind.to_le_bytes());
        out.extend_from_slice(&count.to_le_bytes());
        out.extend_from_slice(&value);
    }
    const ASCII: u16 = 2;
    const SHORT: u16 = 3;
    const LONG: u16 = 4;
    const RATIONAL: u16 = 5;
    let ifd0 = 8_u32;
    let gps = ifd0 + 2 + 3 * 12 + 4;
    let description = gps + 2 + 2 * 12 + 4;
    let text_len = u32::try_from(SECRET_PLACE.len() + 1).expect("short");
    let rationals = (description + text_len + 1) & !1;

    let mut tiff = b"II\x2a\x00".to_vec();
    tiff.extend_from_slice(&ifd0.to_le_bytes());
    tiff.extend_from_slice(&3_u16.to_le_bytes());
    entry(
        &mut tiff,
        0x010E,
        ASCII,
        text_len,
        description.to_le_bytes(),
    );
    let [a, b] = orientation.to_le_bytes();
    entry(&mut tiff, 0x0112, SHORT, 1, [a, b, 0, 0]);
    entry(&mut tiff, 0x8825, LONG, 1, gps.to_le_bytes());
    tiff.extend_from_slice(&0_u32.to_le_bytes());
    tiff.extend_from_slice(&2_u16.to_le_bytes());
    entry(&mut tiff, 0x0001, ASCII, 2, *b"N\0\0\0");
    entry(&mut tiff, 0x0002, RATIONAL, 3, rationals.to_le_bytes());
    tiff.extend_from_slice(&0_u32.to_le_bytes());
    tiff.extend_from_slice(SECRET_PLACE);
    tiff.push(0);
    tiff.resize(rationals as usize, 0);
    for (numerator, denominator) in [(59_u32, 1_u32), (26, 1), (1332, 100)] {
        tiff.extend_from_slice(&numerator.to_le_bytes());
        tiff.extend_from_slice(&denominator.to_le_bytes());
    }
    tiff
}

/// A `w`x`h` JPEG with an APP1 Exif segment (GPS, `orientation`) right
/// after its start-of-image marker, as cameras write them.
fn jpeg_with_exif(w: u32, h: u32, orientation: u16) -> Vec<u8> {
    let plain = picture(w, h, ImageFormat::Jpeg);
    let mut payload = b"Exif\0\0".to_vec();
    payload.extend(exif_block(orientation));
    let length = u16::try_from(payload.len() + 2).expect("fits a segment");
    let mut jpeg = plain[..2].to_vec();
    jpeg.extend_from_slice(&[0xFF, 0xE1]);
    jpeg.extend_from_slice(&length.to_be_bytes());
    jpeg.extend(payload);
    jpeg.extend_from_slice(&plain[2..]);
    jpeg
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Posts `image` and returns the bytes of the full image then served.
async fn post_and_fetch(app: &crate::helpers::TestApp, file: &str, image: Vec<u8>) -> Vec<u8> {
    let response = app
        .post_message(
            &[("author", "Ada"), ("location", ""), ("description", file)],
            Some((file, image)),
            None,
        )
        .await;
    assert_eq!(
        response.status(),
        StatusCode::SEE_OTHER,
        "{file}: {}",
        response.text().await.unwrap_or_default()
    );
    let thumb = media_links(&app.get_text("/my").await.1).remove(0);
    let full = thumb.replace("_thumb", "");
    let served = app.get(&format!("/media/{full}")).await;
    assert_eq!(served.status(), StatusCode::OK, "{full}");
    served.bytes().await.expect("bytes").to_vec()
}

#[tokio::test]
async fn stored_images_carry_no_exif_and_no_gps() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let upload = jpeg_with_exif(64, 48, 1);
    assert!(contains(&upload, b"Exif\0\0") && contains(&upload, SECRET_PLACE));
    let image::DynamicImage::ImageRgb8(_) = image::load_from_memory(&upload).expect("valid JPEG")
    else {
        panic!("expected RGB");
    };

    let served = post_and_fetch(&app, "gps.jpg", upload).await;
    assert_eq!(&served[..2], &[0xFF, 0xD8], "still a JPEG");
    assert!(!contains(&served, b"Exif"), "an Exif segment survived");
    assert!(!contains(&served, SECRET_PLACE), "the GPS text survived");
    assert!(
        !contains(&served, &[0xFF, 0xE1]),
        "an APP1 segment survived"
    );
    let decoded = image::load_from_memory(&served).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (64, 48));
}

#[tokio::test]
async fn images_are_stored_upright_by_their_exif_orientation() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    // 6: the camera was turned 90° clockwise; shown upright it is taller
    // than wide.
    let served = post_and_fetch(&app, "turned.jpg", jpeg_with_exif(64, 48, 6)).await;
    let decoded = image::load_from_memory(&served).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (48, 64));
    assert!(!contains(&served, b"Exif"));
}

#[tokio::test]
async fn large_uploads_are_stored_scaled_and_other_formats_as_png() {
    let app = spawn_with(|s| s.max_stored_side = 200).await;
    app.signed_up("ada").await;
    let served = post_and_fetch(&app, "wide.png", picture(900, 300, ImageFormat::Png)).await;
    let decoded = image::load_from_memory(&served).expect("decodes");
    assert_eq!((decoded.width(), decoded.height()), (200, 67));
    let webp = picture(120, 80, ImageFormat::WebP);
    let served = post_and_fetch(&app, "small.webp", webp).await;
    assert_eq!(
        image::guess_format(&served).expect("known"),
        ImageFormat::Png
    );
}

#[tokio::test]
async fn decode_bombs_are_refused_with_a_clear_message() {
    let app = spawn_with(|s| {
        s.max_image_side = 20_000;
        s.decode_memory = 64 << 20;
    })
    .await;
    app.signed_up("ada").await;
    // 8000x8000 of one colour: a small file that decodes to 192 MB.
    let bomb = {
        let mut out = std::io::Cursor::new(Vec::new());
        image::DynamicImage::ImageRgb8(RgbImage::new(8000, 8000))
            .write_to(&mut out, ImageFormat::Png)
            .expect("encode");
        out.into_inner()
    };
    assert!(bomb.len() < 1 << 20, "{} bytes", bomb.len());
    let response = app
        .post_message(
            &[("author", "Ada"), ("description", "bomb")],
            Some(("bomb.png", bomb)),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("body");
    assert!(
        html.contains("8000x8000 pixels needs more memory"),
        "{html}"
    );
}

#[tokio::test]
async fn form_text_is_bounded_in_total_and_in_fields() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let csrf = app.csrf().await;
    let send = |form: multipart::Form| app.client.post(app.url("/save")).multipart(form).send();

    // Each field under its own 16 KiB limit, together far over 64 KiB.
    let mut form = multipart::Form::new().text("csrf", csrf.clone());
    for i in 0..8 {
        form = form.text(format!("extra{i}"), "x".repeat(15 * 1024));
    }
    let response = send(form).await.expect("POST");
    assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("at most 64 KiB in all")
    );

    // Many tiny fields.
    let mut form = multipart::Form::new().text("csrf", csrf);
    for i in 0..100 {
        form = form.text(format!("f{i}"), "x");
    }
    let response = send(form).await.expect("POST");
    assert_eq!(response.status(), StatusCode::BAD_REQUEST);
    assert!(
        response
            .text()
            .await
            .expect("body")
            .contains("too many fields")
    );
}

#[tokio::test]
async fn invisible_only_descriptions_are_refused() {
    let app = spawn_app().await;
    app.signed_up("ada").await;
    let response = app
        .post_message(
            &[
                ("author", "Ada"),
                ("description", "\u{200B}\u{202E}\u{2066}"),
            ],
            Some(("p.png", picture(40, 40, ImageFormat::Png))),
            None,
        )
        .await;
    assert_eq!(response.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let html = response.text().await.expect("body");
    assert!(html.contains("The description has no visible characters."));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_hashing_pool_answers_busy_with_retry_after() {
    // One hash at a time and almost no patience: of a burst of logins,
    // some are answered at once with the busy page; none fails otherwise.
    let app = spawn_with(|s| {
        s.hash_concurrency = Some(1);
        s.busy_wait = std::time::Duration::from_millis(1);
        s.login_failures_per_account = 10_000;
        s.login_failures_per_address = 10_000;
    })
    .await;
    let csrf = app.csrf().await;
    let attempts = (0..24).map(|i| {
        let form = [
            ("csrf", csrf.clone()),
            ("username", format!("nobody{i}")),
            ("password", "wrong password".to_owned()),
        ];
        app.client.post(app.url("/login")).form(&form).send()
    });
    let (mut refused, mut busy) = (0, 0);
    for response in futures_util::future::join_all(attempts).await {
        let response = response.expect("answered");
        match response.status() {
            StatusCode::UNAUTHORIZED => refused += 1,
            StatusCode::SERVICE_UNAVAILABLE => {
                assert!(response.headers().contains_key("retry-after"));
                let html = response.text().await.expect("body");
                assert!(
                    html.contains("The board is busy, please try again in a moment."),
                    "{html}"
                );
                busy += 1;
            }
            other => panic!("unexpected {other}"),
        }
    }
    assert!(refused >= 1 && busy >= 1, "401: {refused}, 503: {busy}");
}

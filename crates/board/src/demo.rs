//! Sample users and messages with generated pictures, so a new board is
//! not an empty page (`board demo`, or `board serve --demo`).

use std::sync::Arc;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use secrecy::SecretString;

use bytes::Bytes;
use image::{DynamicImage, ImageFormat, Rgb, RgbImage};

use crate::auth::csrf::CsrfKey;
use crate::auth::{self, password};
use crate::config::DemoArgs;
use crate::data::{CursorKey, Data, DataSettings};
use crate::images;
use crate::media::{self, MediaName, MediaStore};
use crate::store::{Message, Stores, User};

const LOCATIONS: &[&str] = &[
    "Tallinn",
    "Lisbon",
    "Kyoto",
    "Reykjavík",
    "Valparaíso",
    "Oslo",
    "Cape Town",
    "Hanoi",
    "Montréal",
    "Tbilisi",
    "",
    "Porto",
    "Edinburgh",
    "Marrakesh",
    "Hobart",
    "",
];

const DESCRIPTIONS: &[&str] = &[
    "Morning light over the old town. Worth getting up early for.",
    "Found this little corner on the way home.",
    "The colours tonight were unreal — no filter.",
    "First try at long exposure. Tips welcome!",
    "Rainy day, warm coffee, good book.",
    "View from the top after a three-hour climb.",
    "Street market on Sunday: everything smells of bread and oranges.",
    "The harbour at dusk, boats coming back in.",
    "Someone left a piano in the park and everyone took a turn.",
    "Tried to capture the fog rolling in. Nearly did.",
    "Autumn finally arrived in the garden.",
    "Late train, empty platform, neon reflections.",
];

/// Messages written per batch (one SQLite transaction; 40 DynamoDB
/// `BatchWriteItem`s).
const BATCH: usize = 1000;

/// Distinct pictures at most: demo messages beyond this share them (a
/// million generated JPEGs would take longer than the rows).
const PICTURES: u32 = 64;

/// Fills the board at the URLs of `args`, which must have no users yet.
///
/// # Errors
/// A message when the stores cannot be opened, the board is not empty, or
/// writing fails.
pub async fn run(args: &DemoArgs) -> Result<String, String> {
    let stores = Stores::open(&args.storage.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let media = media::open(&args.storage.media_url)?;
    // A tool's own handle: no cache of its own to keep (a serving fleet's
    // caches time out, or are flushed by restarting it).
    let data = tool_data(stores, media)?;
    let existing = data.user_count().await.map_err(|e| e.to_string())?;
    if existing > 0 {
        return Err(format!(
            "the board at {} already has {existing} users; demo fills only a fresh board",
            args.storage.database_url
        ));
    }
    let started = std::time::Instant::now();
    fill(&data, args.users, args.messages, &args.password).await?;
    Ok(format!(
        "Added {} users (demo1 … demo{}, password `{}`) and {} messages to {} in {:.1} s.",
        args.users,
        args.users,
        args.password,
        args.messages,
        args.storage.database_url,
        started.elapsed().as_secs_f64()
    ))
}

fn tool_data(stores: Stores, media: Arc<dyn MediaStore>) -> Result<Data, String> {
    let secret = SecretString::from(auth::random_hex(32));
    let cache = memocache::Cache::from_url("null://").map_err(|e| e.to_string())?;
    let settings = DataSettings {
        page_size: 50,
        media_base: "/media/".into(),
        user_timeout: Duration::ZERO,
        session_timeout: Duration::ZERO,
        messages_timeout: Duration::ZERO,
        my_messages_timeout: Duration::ZERO,
        posting: crate::data::PostLimits::default(),
    };
    Data::new(
        stores,
        media,
        &cache,
        CsrfKey::new(&secret),
        CursorKey::new(&secret),
        settings,
    )
    .map_err(|e| e.to_string())
}

/// Adds 8 users and 24 messages if the board has no users.
///
/// # Errors
/// When writing fails.
pub async fn fill_if_empty(data: &Data) -> Result<(), String> {
    if data.user_count().await.map_err(|e| e.to_string())? == 0 {
        fill(data, 8, 24, "demo-password").await?;
        tracing::info!("demo data added: users demo1 … demo8, password `demo-password`");
    }
    Ok(())
}

/// Adds `users` users (`demo1`, …) with `password` and `messages` messages
/// spread over them, oldest first, in batches, with a progress bar on a
/// terminal. Up to 64 pictures are generated; further messages share them.
///
/// # Errors
/// When writing fails.
pub async fn fill(data: &Data, users: u32, messages: u32, password: &str) -> Result<(), String> {
    // One hash for all: demo accounts share the password anyway, and this
    // keeps a 50-user demo quick.
    let pw = password.to_owned();
    let hash = tokio::task::spawn_blocking(move || password::hash_now(&pw))
        .await
        .map_err(|e| e.to_string())??;
    let now = auth::now_ms();
    let mut made = Vec::new();
    for n in 1..=users {
        let user = User {
            id: auth::random_hex(16),
            username: format!("demo{n}"),
            created_at: now - i64::from(messages + 1) * 7 * 60_000,
        };
        data.register(&user, &hash)
            .await
            .map_err(|e| e.to_string())?;
        made.push(user);
    }
    if made.is_empty() {
        return Ok(());
    }
    let mut pictures = Vec::new();
    for i in 0..messages.min(PICTURES) {
        let (jpeg, thumb, kind, thumb_kind) = tokio::task::spawn_blocking(move || picture(i))
            .await
            .map_err(|e| e.to_string())??;
        let (full, small) = MediaName::fresh_pair(kind, thumb_kind);
        let media = data.media();
        media
            .put(&full, Bytes::from(jpeg))
            .await
            .map_err(|e| e.to_string())?;
        media
            .put(&small, Bytes::from(thumb))
            .await
            .map_err(|e| e.to_string())?;
        pictures.push((full, small));
    }
    let progress = ProgressBar::new(u64::from(messages)).with_style(
        ProgressStyle::with_template(
            "{msg} [{bar:40}] {pos}/{len} messages, {per_sec}, {eta} left",
        )
        .map_err(|e| e.to_string())?
        .progress_chars("=> "),
    );
    progress.set_message("demo");
    let mut batch = Vec::with_capacity(BATCH);
    // Spread over the last `messages` × 7 minutes, but never more than
    // 7 minutes apart and never in the future.
    let step = if messages > 0 {
        (7 * 60_000)
            .min(10 * 365 * 86_400_000 / i64::from(messages))
            .max(1)
    } else {
        1
    };
    // Ids in posting order (a sequence number, then random bits for this
    // run): still 32 hex
    // digits, but appended at the end of the primary-key index instead of
    // scattered over it, which makes a million-row fill several times
    // faster on SQLite.
    let run = auth::random_hex(10);
    for i in 0..messages {
        let idx = i as usize;
        let user = &made[idx % made.len()];
        let (full, small) = &pictures[idx % pictures.len()];
        batch.push(Message {
            id: format!("{:06x}{:06x}{run}", i >> 24, i & 0xff_ffff),
            user_id: user.id.clone(),
            author: user.username.clone(),
            location: LOCATIONS[idx % LOCATIONS.len()].to_owned(),
            description: DESCRIPTIONS[(idx * 7 + idx / 3) % DESCRIPTIONS.len()].to_owned(),
            image: full.as_str().to_owned(),
            thumbnail: small.as_str().to_owned(),
            created_at: now - i64::from(messages - i) * step,
        });
        if batch.len() == BATCH || i + 1 == messages {
            data.insert_many(&batch).await.map_err(|e| e.to_string())?;
            progress.inc(batch.len() as u64);
            batch.clear();
        }
    }
    progress.finish_and_clear();
    Ok(())
}

type Picture = (
    Vec<u8>,
    Vec<u8>,
    crate::media::ImageKind,
    crate::media::ImageKind,
);

/// A 480x360 landscape-ish picture: a sky gradient, a sun and hills, with
/// colours that vary with `seed`; and its thumbnail.
fn picture(seed: u32) -> Result<Picture, String> {
    let (w, h) = (480_u32, 360_u32);
    let hue = (seed.wrapping_mul(47) % 360) as f32;
    let sky_top = hsv(hue, 0.55, 0.95);
    let sky_bottom = hsv((hue + 40.0) % 360.0, 0.35, 1.0);
    let hill = hsv((hue + 160.0) % 360.0, 0.5, 0.55);
    let hill_far = hsv((hue + 190.0) % 360.0, 0.35, 0.75);
    let sun = hsv((hue + 20.0) % 360.0, 0.25, 1.0);
    let sun_x = 80.0 + (seed.wrapping_mul(73) % 320) as f32;
    let phase = seed as f32 * 0.7;
    let img = RgbImage::from_fn(w, h, |x, y| {
        let (xf, yf) = (x as f32, y as f32);
        let far = 210.0 + 30.0 * ((xf / 60.0) + phase).sin();
        let near = 260.0 + 40.0 * ((xf / 90.0) + phase * 1.3).cos();
        if yf > near {
            return hill;
        }
        if yf > far {
            return hill_far;
        }
        let dx = xf - sun_x;
        let dy = yf - 110.0;
        if dx * dx + dy * dy < 38.0 * 38.0 {
            return sun;
        }
        mix(sky_top, sky_bottom, yf / far)
    });
    let bytes = images::encode(&DynamicImage::ImageRgb8(img), ImageFormat::Jpeg)
        .map_err(|e| e.to_string())?;
    let processed =
        images::process(&bytes, &images::Rules::with_max_side(4096)).map_err(|e| e.to_string())?;
    Ok((
        bytes,
        processed.thumbnail,
        processed.kind,
        processed.thumb_kind,
    ))
}

fn mix(a: Rgb<u8>, b: Rgb<u8>, t: f32) -> Rgb<u8> {
    let t = t.clamp(0.0, 1.0);
    let channel = |i: usize| (f32::from(a[i]) * (1.0 - t) + f32::from(b[i]) * t) as u8;
    Rgb([channel(0), channel(1), channel(2)])
}

fn hsv(h: f32, s: f32, v: f32) -> Rgb<u8> {
    let c = v * s;
    let x = c * (1.0 - ((h / 60.0) % 2.0 - 1.0).abs());
    let m = v - c;
    let (r, g, b) = match (h / 60.0) as u32 {
        0 => (c, x, 0.0),
        1 => (x, c, 0.0),
        2 => (0.0, c, x),
        3 => (0.0, x, c),
        4 => (x, 0.0, c),
        _ => (c, 0.0, x),
    };
    let to = |f: f32| ((f + m) * 255.0).round().clamp(0.0, 255.0) as u8;
    Rgb([to(r), to(g), to(b)])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pictures_are_jpegs_with_thumbnails() {
        let (full, thumb, kind, _) = picture(3).expect("picture");
        assert_eq!(kind, crate::media::ImageKind::Jpeg);
        assert!(images::sniff(&full).is_some());
        assert!(images::sniff(&thumb).is_some());
    }
}

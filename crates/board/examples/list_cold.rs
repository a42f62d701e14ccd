//! Time to show the first page of N messages with the cache empty: the
//! newest page and the count of each listing (every message, one user's)
//! straight on a store, as the board's first `GET /` and `GET /my` after a
//! start (or an invalidation) do. Neither should grow with N.
//!
//! ```text
//! cargo run --release --features aws -p board --example list_cold -- \
//!     --database-url dynamodb://us-east-1?endpoint=http://127.0.0.1:8000 --messages 10000 --page 20
//! ```
//!
//! Fills the store up to `--messages` messages of one user (plain rows, no
//! images: the listing never reads them; `insert_many` in chunks), then
//! times `--rounds` first pages of `--page` messages of each kind and
//! prints the median and the range.

use std::sync::Arc;
use std::time::{Duration, Instant};

use board::store::{Bound, Listing, Message, MessageStore, Stores, User};

struct Args {
    database_url: String,
    messages: usize,
    rounds: usize,
    page: u32,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        database_url: String::new(),
        messages: 10_000,
        rounds: 5,
        page: 20,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--database-url" => args.database_url = value,
            "--messages" => args.messages = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--rounds" => args.rounds = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--page" => args.page = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if args.database_url.is_empty() {
        return Err("--database-url is required".into());
    }
    Ok(args)
}

/// The one user every seeded message belongs to.
async fn owner(stores: &Stores) -> Result<User, String> {
    let err = |e: board::store::StoreError| e.to_string();
    if let Some(found) = stores.users.credentials("lister").await.map_err(err)? {
        return Ok(found.user);
    }
    let user = User {
        id: format!("{:032x}", 0xC01D_u128),
        username: "lister".into(),
        created_at: 1_700_000_000_000,
    };
    stores
        .users
        .create(&user, "not-a-hash")
        .await
        .map_err(err)?;
    Ok(user)
}

async fn fill(messages: &Arc<dyn MessageStore>, user: &User, target: usize) -> Result<(), String> {
    let listing = Listing::User(user.id.clone());
    let have = messages.count(&listing).await.map_err(|e| e.to_string())?;
    let have = usize::try_from(have).map_err(|e| e.to_string())?;
    if have >= target {
        return Ok(());
    }
    eprintln!("filling: {have} -> {target} messages");
    let all: Vec<Message> = (have..target)
        .map(|i| Message {
            id: format!("{:032x}", 0x5EED_0000_0000_u128 + i as u128),
            user_id: user.id.clone(),
            author: "Lister".into(),
            location: "Tallinn".into(),
            description: format!("Message number {i}, a sentence or two long like most are."),
            image: format!("{:032x}.jpg", i),
            thumbnail: format!("{:032x}_thumb.jpg", i),
            created_at: 1_700_000_000_000 + i as i64,
        })
        .collect();
    for chunk in all.chunks(500) {
        messages
            .insert_many(chunk)
            .await
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn summary(label: &str, mut times: Vec<Duration>, count: u64) {
    times.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    println!(
        "{label:<10} {count:>6} messages: median {:8.1} ms  (min {:.1}, max {:.1}, {} rounds)",
        ms(times[times.len() / 2]),
        ms(times[0]),
        ms(times[times.len() - 1]),
        times.len()
    );
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let args = args()?;
    board::store::migrate(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let stores = Stores::open(&args.database_url)
        .await
        .map_err(|e| e.to_string())?;
    let user = owner(&stores).await?;
    fill(&stores.messages, &user, args.messages).await?;

    let (mut all, mut mine) = (Vec::new(), Vec::new());
    let (mut all_count, mut mine_count) = (0, 0);
    let first_page = |listing: Listing| {
        let messages = Arc::clone(&stores.messages);
        let page = args.page;
        async move {
            let started = Instant::now();
            messages
                .page(&listing, &Bound::Newest, page)
                .await
                .map_err(|e| e.to_string())?;
            let count = messages.count(&listing).await.map_err(|e| e.to_string())?;
            Ok::<_, String>((started.elapsed(), count))
        }
    };
    for _ in 0..args.rounds.max(1) {
        let (took, count) = first_page(Listing::All).await?;
        all.push(took);
        all_count = count;
        let (took, count) = first_page(Listing::User(user.id.clone())).await?;
        mine.push(took);
        mine_count = count;
    }
    println!("{}", args.database_url);
    summary("home", all, all_count);
    summary("/my", mine, mine_count);
    Ok(())
}

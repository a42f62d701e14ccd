//! Time to list N messages with the cache empty: `MessageStore::all()` and
//! `by_user()` straight on a store, as the board's first `GET /` and
//! `GET /my` after a start (or an invalidation) do.
//!
//! ```text
//! cargo run --release --features aws -p board --example list_cold -- \
//!     --database-url dynamodb://us-east-1?endpoint=http://127.0.0.1:8000 --messages 10000
//! ```
//!
//! Fills the store up to `--messages` messages of one user (plain rows, no
//! images: the listing never reads them), then times `--rounds` listings of
//! each kind and prints the median and the range.

use std::sync::Arc;
use std::time::{Duration, Instant};

use board::store::{Message, MessageStore, Stores, User};

struct Args {
    database_url: String,
    messages: usize,
    rounds: usize,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        database_url: String::new(),
        messages: 10_000,
        rounds: 5,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--database-url" => args.database_url = value,
            "--messages" => args.messages = value.parse().map_err(|e| format!("{flag}: {e}"))?,
            "--rounds" => args.rounds = value.parse().map_err(|e| format!("{flag}: {e}"))?,
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
    let have = messages
        .by_user(&user.id)
        .await
        .map_err(|e| e.to_string())?
        .len();
    if have >= target {
        return Ok(());
    }
    eprintln!("filling: {have} -> {target} messages");
    let mut tasks = tokio::task::JoinSet::new();
    for i in have..target {
        let messages = Arc::clone(messages);
        let message = Message {
            id: format!("{:032x}", 0x5EED_0000_0000_u128 + i as u128),
            user_id: user.id.clone(),
            author: "Lister".into(),
            location: "Tallinn".into(),
            description: format!("Message number {i}, a sentence or two long like most are."),
            image: format!("{:032x}.jpg", i),
            thumbnail: format!("{:032x}_thumb.jpg", i),
            created_at: 1_700_000_000_000 + i as i64,
        };
        tasks.spawn(async move { messages.insert(&message).await });
        if tasks.len() >= 32 {
            if let Some(done) = tasks.join_next().await {
                done.map_err(|e| e.to_string())?
                    .map_err(|e| e.to_string())?;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        done.map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn summary(label: &str, mut times: Vec<Duration>, count: usize) {
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
    for _ in 0..args.rounds.max(1) {
        let started = Instant::now();
        all_count = stores
            .messages
            .all()
            .await
            .map_err(|e| e.to_string())?
            .len();
        all.push(started.elapsed());
        let started = Instant::now();
        mine_count = stores
            .messages
            .by_user(&user.id)
            .await
            .map_err(|e| e.to_string())?
            .len();
        mine.push(started.elapsed());
    }
    println!("{}", args.database_url);
    summary("all()", all, all_count);
    summary("by_user()", mine, mine_count);
    Ok(())
}

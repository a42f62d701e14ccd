//! The post budget of a fleet (issue 27): counted in the shared Redis, so
//! a flood split across two boards gets one budget, not one per board (a
//! budget each process kept alone would be N times the budget).

use super::*;

/// The budget the two boards run with: 10 posts per account in 10
/// minutes (the other budgets at their defaults, far above the flood).
const BUDGET: usize = 10;

/// POSTs one message to `board`; the status.
async fn post(fleet: &Fleet, board: &Board, session: &str, csrf: &str, n: usize) -> StatusCode {
    let form = multipart::Form::new()
        .text("csrf", csrf.to_owned())
        .text("author", "Fleet")
        .text("description", format!("flood {n}"))
        .part(
            "image",
            multipart::Part::bytes(picture()).file_name("p.png"),
        );
    fleet
        .http
        .post(board.url("/save"))
        .header(COOKIE, format!("board_session={session}"))
        .multipart(form)
        .send()
        .await
        .expect("POST /save")
        .status()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_flood_split_across_two_boards_gets_one_budget() {
    let dir = tempfile::tempdir().expect("temp dir");
    let redis = RedisServer::start();
    let cache_url = format!("tiered+redis://127.0.0.1:{}/", redis.port());
    let mut spec = Spec::embedded(dir.path(), &cache_url);
    spec.env.push((
        "BOARD_POST_BUDGET_PER_ACCOUNT".into(),
        format!("{BUDGET}/10m"),
    ));
    let boards = ["a", "b"]
        .iter()
        .map(|name| Board::start_with(dir.path(), name, &spec, None))
        .collect();
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let fleet = Fleet {
        boards,
        redis,
        http,
        _dir: dir,
    };
    let (a, b) = (&fleet.boards[0], &fleet.boards[1]);
    let session = fleet.register_and_login(a, "flooder").await;
    let csrf = fleet.session_csrf(a, &session).await;
    // 40 posts at once, every other one on each board.
    let posts = (0..4 * BUDGET).map(|n| {
        let board = if n % 2 == 0 { a } else { b };
        post(&fleet, board, &session, &csrf, n)
    });
    let statuses = futures_util::future::join_all(posts).await;
    let count = |status| statuses.iter().filter(|s| **s == status).count();
    assert_eq!(count(StatusCode::SEE_OTHER), BUDGET, "{statuses:?}");
    assert_eq!(count(StatusCode::TOO_MANY_REQUESTS), 3 * BUDGET);
    // One budget for both boards (each alone would have let 10 through).
    let (_, mine) = fleet.get(b, "/my", Some(&session)).await;
    assert_eq!(message_ids(&mine).len(), BUDGET);
    let files = std::fs::read_dir(fleet._dir.path().join("media"))
        .expect("media dir")
        .count();
    assert_eq!(files, 2 * BUDGET, "two files per accepted post, none else");
}

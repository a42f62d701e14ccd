//! `board`: serve the message board, fill it with demo data, create its
//! tables (`board migrate`), or list the largest accounts (`board
//! accounts`).

use std::process::ExitCode;

use board::config::{Cli, Command, Settings};
use board::{Application, telemetry};
use clap::Parser;

/// mimalloc instead of glibc's malloc: glibc keeps freed blocks of up to
/// 32 MiB in per-thread arenas once its dynamic mmap threshold has risen
/// (every Argon2 hash frees 19 MiB, resizes free up to 16 MiB), so a flood
/// of logins left the process at 338 MiB although only two hashes ever run
/// at once; mimalloc returns freed memory to the system within
/// milliseconds (72 MiB in the same flood). `tests/api/bombs.rs` holds it.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let _logs = telemetry::init("info");
    // Fault injection from `FAILPOINTS` (feature `failpoints`; nothing
    // without it).
    let _failpoints = fail::FailScenario::setup();
    match cli.command {
        Some(Command::Demo(args)) => match board::demo::run(&args).await {
            Ok(summary) => {
                println!("{summary}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("board demo: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Migrate(args)) => match board::store::migrate(&args.database_url).await {
            Ok(report) => {
                println!("{report}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("board migrate: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Accounts(args)) => match board::admin::largest_accounts(&args).await {
            Ok(table) => {
                print!("{table}");
                ExitCode::SUCCESS
            }
            Err(error) => {
                eprintln!("board accounts: {error}");
                ExitCode::FAILURE
            }
        },
        Some(Command::Serve(settings)) => serve(&settings).await,
        None => match Settings::from_env() {
            Ok(settings) => serve(&settings).await,
            Err(error) => error.exit(),
        },
    }
}

async fn serve(settings: &Settings) -> ExitCode {
    let app = match Application::build(settings).await {
        Ok(app) => app,
        Err(error) => {
            eprintln!("board: {error}");
            return ExitCode::from(u8::try_from(error.exit_code()).unwrap_or(1));
        }
    };
    tracing::info!(address = %app.local_addr(), "serving on http://{}", app.local_addr());
    if let Some(metrics) = app.metrics_addr() {
        tracing::info!(address = %metrics, "metrics on http://{metrics}/metrics");
    }
    match app.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("board: server failed: {error}");
            ExitCode::FAILURE
        }
    }
}

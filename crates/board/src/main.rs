//! `board`: serve the message board, fill it with demo data, or create its
//! tables (`board migrate`).

use std::process::ExitCode;

use board::config::{Cli, Command, Settings};
use board::{Application, telemetry};
use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    telemetry::init("info");
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

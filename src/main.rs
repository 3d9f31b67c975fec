use std::process::ExitCode;

use clap::Parser;
use pipeline_service::config::{Cli, Command, Settings};
use pipeline_service::startup::{Application, StartupError};
use pipeline_service::{probe, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_raw(cli.settings) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!("pipeline-service: {error}");
            return ExitCode::from(2);
        }
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => serve(settings).await,
        Command::Healthcheck => match probe::health_ok(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("pipeline-service: unhealthy: {reason}");
                ExitCode::FAILURE
            }
        },
    }
}

async fn serve(settings: Settings) -> ExitCode {
    telemetry::install(telemetry::build_subscriber(settings.log_format, "info"));
    let application = match Application::build(&settings).await {
        Ok(application) => application,
        Err(error) => {
            tracing::error!(%error, "startup failed");
            eprintln!("pipeline-service: {error}");
            let code = if matches!(error, StartupError::OracleUnavailable) {
                2
            } else {
                1
            };
            return ExitCode::from(code);
        }
    };
    match application.run_until_stopped().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(%error, "server stopped with an error");
            ExitCode::FAILURE
        }
    }
}

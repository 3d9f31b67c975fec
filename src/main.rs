use std::process::ExitCode;

use clap::Parser;
use pipeline_service::config::{Cli, Settings};
use pipeline_service::startup::{Application, StartupError};
use pipeline_service::telemetry;

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

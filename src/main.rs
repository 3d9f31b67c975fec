use std::io::IsTerminal;
use std::process::ExitCode;

use clap::Parser;
use pipeline_service::compact::compact_jsonl;
use pipeline_service::config::{oracle_schema, Backend, Cli, Command, Settings};
use pipeline_service::domain::FlexDateTime;
use pipeline_service::import::import_file;
use pipeline_service::repository::oracle::sql::{add_key_columns, ddl};
use pipeline_service::repository::oracle::OraclePipelineRepository;
use pipeline_service::startup::{build_repository, Application};
use pipeline_service::telemetry::LogFilter;
use pipeline_service::{probe, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Some(Command::Gen {
        records,
        out,
        seed,
        pipelines,
    }) = &cli.command
    {
        return generate_file(*records, *pipelines, out, *seed);
    }
    if let Some(Command::Ddl { add_idempotency }) = cli.command {
        // Needs only the table and column map, not a database.
        return match oracle_schema(&cli.settings) {
            Ok(schema) if add_idempotency => {
                print!("{}", add_key_columns(&schema));
                ExitCode::SUCCESS
            }
            Ok(schema) => {
                print!("{}", ddl(&schema));
                ExitCode::SUCCESS
            }
            Err(error) => fail_config(&error),
        };
    }
    let settings = match Settings::from_raw(cli.settings) {
        Ok(settings) => settings,
        Err(error) => return fail_config(&error),
    };
    let log_filter = match LogFilter::from_env() {
        Ok(filter) => filter,
        Err(error) => return fail_config(&error),
    };
    let logging = |default_filter: &str| {
        telemetry::install(telemetry::build_subscriber(
            settings.log_format,
            &log_filter,
            default_filter,
        ));
    };
    match cli.command.unwrap_or(Command::Serve) {
        Command::Serve => {
            logging("info");
            serve(settings).await
        }
        Command::Healthcheck => match probe::health_ok(&settings) {
            Ok(()) => ExitCode::SUCCESS,
            Err(reason) => {
                eprintln!("pipeline-service: unhealthy: {reason}");
                ExitCode::FAILURE
            }
        },
        Command::Import { file } => {
            logging("warn");
            import(settings, &file).await
        }
        Command::Compact {
            older_than,
            archive,
            dry_run,
        } => {
            logging("warn");
            compact(settings, older_than, archive.as_deref(), dry_run).await
        }
        Command::Ddl { .. } | Command::Gen { .. } => ExitCode::SUCCESS,
    }
}

fn generate_file(records: u64, pipelines: u64, out: &std::path::Path, seed: u64) -> ExitCode {
    let result = std::fs::File::create(out).and_then(|file| {
        let mut writer = std::io::BufWriter::with_capacity(1 << 20, file);
        let summary =
            pipeline_service::generate::generate_pipelines(&mut writer, records, pipelines, seed)?;
        std::io::Write::flush(&mut writer)?;
        Ok(summary)
    });
    match result {
        Ok(s) => {
            println!(
                "wrote {} lines ({} bytes) to {}: {} valid, {} legacy, {} corrupt",
                s.lines,
                s.bytes,
                out.display(),
                s.valid,
                s.legacy,
                s.corrupt
            );
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pipeline-service: gen: {}: {error}", out.display());
            ExitCode::FAILURE
        }
    }
}

fn fail_config(error: &dyn std::fmt::Display) -> ExitCode {
    eprintln!("pipeline-service: {error}");
    ExitCode::from(2)
}

async fn serve(settings: Settings) -> ExitCode {
    let application = match Application::build(&settings).await {
        Ok(application) => application,
        Err(error) => {
            // One line on standard error, like a configuration error: not
            // also a log line saying the same.
            eprintln!("pipeline-service: {error}");
            return ExitCode::FAILURE;
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

async fn compact(
    settings: Settings,
    days: f64,
    archive: Option<&std::path::Path>,
    dry_run: bool,
) -> ExitCode {
    if !(days.is_finite() && days >= 0.0) {
        eprintln!("pipeline-service: compact: --older-than must be a number of days ≥ 0");
        return ExitCode::from(2);
    }
    let now = chrono::Utc::now().timestamp_micros();
    let cutoff = now - (days * 86_400e6) as i64;
    let result = match settings.backend {
        Backend::Jsonl => {
            let path = settings.jsonl_path.clone();
            let archive = archive.map(std::path::Path::to_path_buf);
            tokio::task::spawn_blocking(move || {
                compact_jsonl(&path, cutoff, archive.as_deref(), dry_run)
                    .map_err(|e| format!("{}: {e}", path.display()))
            })
            .await
            .unwrap_or_else(|e| Err(e.to_string()))
        }
        Backend::Oracle => {
            let Some(oracle) = settings.oracle.as_ref() else {
                return ExitCode::from(2);
            };
            match OraclePipelineRepository::connect(oracle).await {
                Ok(repository) => {
                    let archive = archive.map(std::path::Path::to_path_buf);
                    let cutoff = FlexDateTime::from_instant_micros(cutoff);
                    tokio::task::spawn_blocking(move || {
                        repository
                            .compact_blocking(cutoff, archive.as_deref(), dry_run)
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .unwrap_or_else(|e| Err(e.to_string()))
                }
                Err(error) => Err(error.to_string()),
            }
        }
    };
    match result {
        Ok(report) => {
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pipeline-service: compact failed: {error}");
            ExitCode::FAILURE
        }
    }
}

async fn import(settings: Settings, file: &std::path::Path) -> ExitCode {
    if settings.backend == Backend::Jsonl
        && std::fs::canonicalize(file).ok() == std::fs::canonicalize(&settings.jsonl_path).ok()
    {
        eprintln!(
            "pipeline-service: import: {} is the store itself",
            file.display()
        );
        return ExitCode::from(2);
    }
    let repository = match build_repository(&settings).await {
        Ok(repository) => repository,
        Err(error) => {
            eprintln!("pipeline-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    let on_terminal = std::io::stderr().is_terminal();
    let result = import_file(repository.as_ref(), file, |report| {
        if on_terminal {
            eprint!(
                "\r{} lines read, {} imported, {} skipped",
                report.lines_read,
                report.imported,
                report.skipped.len()
            );
        }
    })
    .await;
    if on_terminal {
        eprintln!();
    }
    match result {
        Ok(report) => {
            for (line, reason) in &report.skipped {
                eprintln!("skipped line {line}: {reason}");
            }
            println!("{report}");
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pipeline-service: import failed: {error}");
            ExitCode::FAILURE
        }
    }
}

use std::future::Future;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use pipeline_service::config::{
    backend, oracle_schema, postgres_settings, Backend, Cli, Command, RawSettings, Settings,
};
use pipeline_service::domain::FlexDateTime;
use pipeline_service::import::{check_input, import_file, progress_bar, show_progress};
use pipeline_service::repository::oracle::sql::{add_key_columns, add_offset_columns, ddl};
use pipeline_service::repository::postgres::{migrate, PostgresRepository};
use pipeline_service::startup::{build_repository, build_repository_for_rewrite, Application};
use pipeline_service::telemetry::LogFilter;
use pipeline_service::{probe, telemetry};

#[tokio::main]
async fn main() -> ExitCode {
    let Cli { command, settings } = Cli::read();
    match command.unwrap_or(Command::Serve) {
        Command::Serve => with_settings(settings, Some("info"), serve).await,
        Command::Healthcheck => with_settings(settings, None, healthcheck).await,
        Command::Import { file } => {
            with_settings(settings, Some("warn"), |s| import(s, file)).await
        }
        Command::Compact {
            older_than,
            archive,
            dry_run,
        } => {
            let compact = |s| compact(s, older_than, archive, dry_run);
            with_settings(settings, Some("warn"), compact).await
        }
        Command::Ddl {
            add_idempotency,
            add_offsets,
        } => print_ddl(&settings, add_idempotency, add_offsets),
        Command::Migrate => migrate_schema(settings).await,
        Command::Gen {
            records,
            out,
            seed,
            pipelines,
        } => generate_file(records, pipelines, &out, seed),
    }
}

/// Runs `command` with the validated settings and, when it logs, logging
/// installed with `default_log_filter` unless `RUST_LOG` says otherwise; or
/// stops with the reason the settings or `RUST_LOG` are not valid.
async fn with_settings<F: Future<Output = ExitCode>>(
    raw: RawSettings,
    default_log_filter: Option<&str>,
    command: impl FnOnce(Settings) -> F,
) -> ExitCode {
    let settings = match Settings::from_raw(raw) {
        Ok(settings) => settings,
        Err(error) => return fail_config(&error),
    };
    let log_filter = match LogFilter::from_env() {
        Ok(filter) => filter,
        Err(error) => return fail_config(&error),
    };
    if let Some(default) = default_log_filter {
        telemetry::install(telemetry::build_subscriber(
            settings.log_format,
            &log_filter,
            default,
        ));
    }
    command(settings).await
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

async fn healthcheck(settings: Settings) -> ExitCode {
    match probe::health_ok(&settings) {
        Ok(()) => ExitCode::SUCCESS,
        Err(reason) => {
            eprintln!("pipeline-service: unhealthy: {reason}");
            ExitCode::FAILURE
        }
    }
}

/// The DDL needs only the table and column map (or, for PostgreSQL, the
/// embedded migrations), not a database.
fn print_ddl(raw: &RawSettings, add_idempotency: bool, add_offsets: bool) -> ExitCode {
    let postgres = match backend(raw) {
        Ok(backend) => backend == Backend::Postgres,
        Err(error) => return fail_config(&error),
    };
    if postgres {
        if add_idempotency || add_offsets {
            eprintln!("pipeline-service: ddl: --add-idempotency and --add-offsets are for Oracle tables; PostgreSQL's migrations include those columns");
            return ExitCode::from(2);
        }
        print!("{}", migrate::script());
        return ExitCode::SUCCESS;
    }
    match oracle_schema(raw) {
        Ok(schema) if add_idempotency => print!("{}", add_key_columns(&schema)),
        Ok(schema) if add_offsets => print!("{}", add_offset_columns(&schema)),
        Ok(schema) => print!("{}", ddl(&schema)),
        Err(error) => return fail_config(&error),
    }
    ExitCode::SUCCESS
}

/// Brings the PostgreSQL schema up to date: needs only the connection
/// settings, whatever PIPELINE_BACKEND says.
async fn migrate_schema(raw: RawSettings) -> ExitCode {
    let settings = match postgres_settings(
        &raw.postgres,
        pipeline_service::repository::insert::DEFAULT_KEY_RETENTION,
    ) {
        Ok(settings) => settings,
        Err(error) => return fail_config(&error),
    };
    match PostgresRepository::connect(&settings).await {
        Ok(repository) => {
            let migrated = repository.migrated();
            if migrated.from == migrated.to {
                println!("schema at version {}; nothing to do", migrated.to);
            } else {
                println!(
                    "schema migrated from version {} to {}",
                    migrated.from, migrated.to
                );
            }
            ExitCode::SUCCESS
        }
        Err(error) => {
            eprintln!("pipeline-service: migrate: {error}");
            ExitCode::FAILURE
        }
    }
}

fn generate_file(records: u64, pipelines: u64, out: &Path, seed: u64) -> ExitCode {
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

async fn compact(
    settings: Settings,
    days: f64,
    archive: Option<PathBuf>,
    dry_run: bool,
) -> ExitCode {
    if !(days.is_finite() && days >= 0.0) {
        eprintln!("pipeline-service: compact: --older-than must be a number of days ≥ 0");
        return ExitCode::from(2);
    }
    let now = chrono::Utc::now().timestamp_micros();
    let cutoff = FlexDateTime::from_instant_micros(now - (days * 86_400e6) as i64);
    let repository = match build_repository_for_rewrite(&settings).await {
        Ok(repository) => repository,
        Err(error) => {
            eprintln!("pipeline-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    match repository
        .compact(cutoff, archive.as_deref(), dry_run)
        .await
    {
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

async fn import(settings: Settings, file: PathBuf) -> ExitCode {
    let store = (settings.backend == Backend::Jsonl).then_some(settings.jsonl_path.as_path());
    let total_bytes = match check_input(&file, store) {
        Ok(length) => length,
        Err(error) => {
            eprintln!("pipeline-service: import: {error}");
            return ExitCode::from(2);
        }
    };
    let repository = match build_repository(&settings).await {
        Ok(repository) => repository,
        Err(error) => {
            eprintln!("pipeline-service: {error}");
            return ExitCode::FAILURE;
        }
    };
    // A bar with the rate and the time left for a person watching; a
    // script or a log gets the summary alone.
    let bar = std::io::stderr()
        .is_terminal()
        .then(|| progress_bar(total_bytes));
    let result = import_file(repository.as_ref(), &file, |report| {
        if let Some(bar) = &bar {
            show_progress(bar, report);
        }
    })
    .await;
    if let Some(bar) = bar {
        bar.finish();
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

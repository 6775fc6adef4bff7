//! The `modelhub` command line: `serve` (the default), `migrate`, `create-admin`, `schema`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use modelhub::{
    config::Config,
    services::accounts::{self, Registration},
};
use tokio::net::TcpListener;
use tracing_subscriber::EnvFilter;

/// mimalloc: the request path allocates many small objects from several threads, where it
/// is markedly faster than the system allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[derive(Parser)]
#[command(
    name = "modelhub",
    version,
    about = "Model Hub: store, version, find and download ML models"
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Create an administrator, or promote an existing user. The password comes from
    /// MODELHUB_ADMIN_PASSWORD or a prompt.
    CreateAdmin {
        #[arg(long)]
        username: String,
        #[arg(long)]
        email: String,
    },
    /// Print the GraphQL schema (SDL), as committed in schema.graphql.
    Schema,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging() {
    let filter = EnvFilter::try_from_env("MODELHUB_LOG")
        .or_else(|_| EnvFilter::try_from_default_env())
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,sea_orm=warn"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()));
    if std::env::var("MODELHUB_LOG_FORMAT").is_ok_and(|f| f == "json") {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn run(command: Command) -> Result<()> {
    match command {
        Command::Schema => {
            print!("{}", modelhub::graphql::sdl());
            Ok(())
        }
        Command::Serve => serve(Config::from_env()?).await,
        Command::Migrate => {
            modelhub::open_state(Config::from_env()?).await?;
            tracing::info!("migrations applied");
            Ok(())
        }
        Command::CreateAdmin { username, email } => {
            create_admin(Config::from_env()?, username, email).await
        }
    }
}

async fn serve(config: Config) -> Result<()> {
    let bind = config.bind;
    let app = modelhub::build_app(config).await?;
    let swept = app
        .state
        .blobs
        .sweep_staging()
        .await
        .context("MODELHUB_STORAGE_URL: cannot clean the staging area")?;
    if swept > 0 {
        tracing::info!(
            files = swept,
            "removed uploads left unfinished by an earlier run"
        );
    }
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("MODELHUB_BIND: cannot listen on {bind}"))?;
    tracing::info!(address = %bind, playground = %format!("http://{bind}/playground"), "Model Hub is serving");
    modelhub::serve(listener, app, shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutting down: finishing in-flight requests");
}

async fn create_admin(config: Config, username: String, email: String) -> Result<()> {
    let password = match std::env::var("MODELHUB_ADMIN_PASSWORD") {
        Ok(password) if !password.is_empty() => password,
        _ => rpassword::prompt_password(format!("Password for {username}: "))
            .context("MODELHUB_ADMIN_PASSWORD is unset and no password could be read")?,
    };
    let state = modelhub::open_state(config).await?;
    let (user, created) = accounts::create_admin(
        &state,
        Registration {
            username,
            email,
            password,
        },
    )
    .await
    .map_err(|e| anyhow::anyhow!("{}: {}", e.code().as_str(), e.message()))?;
    if created {
        println!("created administrator {} ({})", user.username, user.id);
    } else {
        println!("promoted {} ({}) to administrator", user.username, user.id);
    }
    Ok(())
}

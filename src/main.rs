//! The `modelhub` command line: `serve` (the default), `migrate`, `create-admin`, `schema`,
//! `gc`, `verify`, `reinspect`.

use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use std::time::Duration;

use modelhub::{
    config::Config,
    services::{
        accounts::{self, Registration},
        inspection, leases, maintenance,
    },
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
    /// Delete blobs no version uses (and leftover staging files), older than the grace period;
    /// print what was freed.
    Gc {
        /// Leave files younger than this many minutes (uploads may be in flight).
        #[arg(long, default_value_t = 60)]
        grace_minutes: u64,
    },
    /// Re-hash every blob a version uses and report missing or corrupt ones (exit code 1 if
    /// any).
    Verify,
    /// Inspect stored versions again under the current rules (MODELHUB_PICKLE_ALLOW and the
    /// built-in lists) and update their verdicts: those whose report was made under other
    /// rules, or every one with --all. The server does the former at start-up.
    Reinspect {
        #[arg(long)]
        all: bool,
    },
}

/// How old an unused blob must be before the background collection removes it, and how often
/// that collection runs.
const GC_GRACE: Duration = Duration::from_secs(3600);
/// How long the re-inspection lease holds unless renewed: it is renewed while the work goes
/// on, so another replica takes over this soon after one dies mid-way.
const REINSPECT_LEASE: Duration = Duration::from_secs(60);
/// How soon the start-up re-inspection tries again after a failure.
const REINSPECT_RETRY: Duration = Duration::from_secs(2);

/// Inspects again the versions inspected under other rules than today's, one replica at a
/// time: waits for the lease while another replica holds it (and takes over once a dead
/// holder's lapses), renews it while working, gives it back, and tries again after a failure
/// (the database not answering yet, say) until the work is done.
async fn reinspect_at_start(state: modelhub::state::AppState) {
    loop {
        let wait = match leases::take(&state, "reinspect", REINSPECT_LEASE).await {
            Ok(true) => {
                // Ends only if another replica took the lease over (this one seemed dead).
                let renew = async {
                    loop {
                        tokio::time::sleep(REINSPECT_LEASE / 3).await;
                        match leases::take(&state, "reinspect", REINSPECT_LEASE).await {
                            Ok(true) => {}
                            Ok(false) => return,
                            Err(e) => {
                                tracing::warn!(error = %describe(e), "cannot renew the re-inspection lease")
                            }
                        }
                    }
                };
                let done = tokio::select! {
                    done = inspection::reinspect(&state, false) => done,
                    () = renew => {
                        tracing::warn!("the re-inspection lease was taken over; the other replica goes on");
                        return;
                    }
                };
                if let Err(e) = leases::release(&state, "reinspect").await {
                    tracing::warn!(error = %describe(e), "the re-inspection lease will lapse by itself");
                }
                match done {
                    Ok(report) => {
                        if report.inspected > 0 {
                            tracing::info!(
                                inspected = report.inspected,
                                changed = report.changed,
                                "versions inspected again under the current rules"
                            );
                        }
                        return;
                    }
                    Err(e) => {
                        tracing::warn!(error = %describe(e), "re-inspection failed; trying again");
                        REINSPECT_RETRY
                    }
                }
            }
            // Another replica is at it (or died at it: its lease lapses).
            Ok(false) => {
                tracing::info!("another replica holds the re-inspection lease; waiting for it");
                REINSPECT_LEASE / 4
            }
            Err(e) => {
                tracing::warn!(error = %describe(e), "cannot take the re-inspection lease; trying again");
                REINSPECT_RETRY
            }
        };
        tokio::time::sleep(wait).await;
    }
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
        Command::Gc { grace_minutes } => {
            let state = modelhub::open_state(Config::from_env()?).await?;
            let report = maintenance::gc(&state, Duration::from_secs(grace_minutes * 60))
                .await
                .map_err(describe)?;
            println!(
                "deleted {} unused blobs ({} bytes); kept {} younger than {grace_minutes} min; removed {} staging files, {} expired drafts, {} expired LFS objects, {} abandoned parts, {} expired resumable uploads and {} old events",
                report.deleted,
                report.freed_bytes,
                report.kept_recent,
                report.staging_removed,
                report.drafts_expired,
                report.lfs_objects_expired,
                report.parts_removed,
                report.resumable_expired,
                report.events_purged
            );
            Ok(())
        }
        Command::Reinspect { all } => {
            let state = modelhub::open_state(Config::from_env()?).await?;
            let report = inspection::reinspect(&state, all).await.map_err(describe)?;
            println!(
                "inspected {} versions again: {} verdicts changed",
                report.inspected, report.changed
            );
            Ok(())
        }
        Command::Verify => {
            let state = modelhub::open_state(Config::from_env()?).await?;
            let (checked, problems) = maintenance::verify(&state).await.map_err(describe)?;
            for problem in &problems {
                println!("{problem:?}");
            }
            println!("checked {checked} blobs: {} problems", problems.len());
            if problems.is_empty() {
                Ok(())
            } else {
                anyhow::bail!("{} blobs are missing or corrupt", problems.len())
            }
        }
    }
}

/// A service error for the command line: its code and message, and for an internal error its
/// whole cause.
fn describe(err: modelhub::error::AppError) -> anyhow::Error {
    match err.cause() {
        Some(cause) => anyhow::anyhow!("{}: {cause}", err.code().as_str()),
        None => anyhow::anyhow!("{}: {}", err.code().as_str(), err.message()),
    }
}

async fn serve(config: Config) -> Result<()> {
    let bind = config.bind;
    let grace = config.shutdown_grace;
    let app = modelhub::build_app(config).await?;
    // What a crash left in the staging area goes before the first request.
    match app.state.blobs.sweep_staging(GC_GRACE).await {
        Ok(0) => {}
        Ok(files) => tracing::info!(files, "removed uploads cut short by a crash"),
        Err(e) => tracing::warn!(error = %e, "could not clean the staging area; gc will retry"),
    }
    // Versions inspected under other rules than today's get a new verdict, in the background,
    // by one replica.
    tokio::spawn(reinspect_at_start(app.state.clone()));
    // Blobs no version uses and expired drafts, collected in the background now and every
    // GC_GRACE, by the replica holding the lease (renewed at each run; another replica takes
    // it over once it lapses).
    let state = app.state.clone();
    tokio::spawn(async move {
        let mut every = tokio::time::interval(GC_GRACE);
        loop {
            every.tick().await;
            match leases::take(&state, "gc", GC_GRACE + GC_GRACE / 2).await {
                Ok(true) => {
                    if let Err(e) = maintenance::gc(&state, GC_GRACE).await {
                        tracing::warn!(error = %describe(e), "background garbage collection failed");
                    }
                }
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %describe(e), "cannot take the gc lease"),
            }
        }
    });
    let listener = TcpListener::bind(bind)
        .await
        .with_context(|| format!("MODELHUB_BIND: cannot listen on {bind}"))?;
    let address = listener.local_addr()?;
    tracing::info!(%address, playground = %format!("http://{address}/playground"), "Model Hub is serving");
    // After a signal, in-flight requests get `grace` to finish; then the process stops, and
    // removes the staging files of uploads cut short.
    let (stopping, stopped) = tokio::sync::oneshot::channel::<()>();
    let signal = async move {
        shutdown_signal().await;
        let _ = stopping.send(());
    };
    let state = app.state.clone();
    tokio::select! {
        result = modelhub::serve(listener, app, signal) => result?,
        () = async {
            let _ = stopped.await;
            tokio::time::sleep(grace).await;
        } => tracing::warn!(?grace, "in-flight requests did not finish in time"),
    }
    // Counts noted by requests cut off at the deadline are written all the same.
    modelhub::flush_downloads(&state).await;
    let cut_short = state.blobs.clear_own_staging()?;
    tracing::info!(uploads_cut_short = cut_short, "stopped");
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
    .map_err(describe)?;
    if created {
        println!("created administrator {} ({})", user.username, user.id);
    } else {
        println!("promoted {} ({}) to administrator", user.username, user.id);
    }
    Ok(())
}

//! The `driftstack` binary: parses the command line, loads configuration, sets up logging and
//! hands over to library code. `serve` runs the service; the other commands administer the
//! configured database directly and print only the requested value on stdout.

mod mcp_bridge;

use std::process::ExitCode;

use api::{apikey::KeyMode, config::Config};
use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;
use tracing_subscriber::{EnvFilter, fmt, prelude::*};

#[derive(Parser)]
#[command(
    name = "driftstack",
    version,
    about = "Headless browser sessions as a service"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the API (and, by default, an in-process browser runner).
    Serve,
    /// Run a runner node: a browser pool serving the cluster's API nodes only (needs
    /// DRIFTSTACK_CLUSTER_TOKEN; see docs/DEPLOYMENT.md).
    Runner,
    /// Apply pending database migrations and exit.
    Migrate,
    /// Print the OpenAPI document.
    Openapi,
    /// A stdio MCP server for local MCP clients, relaying to a Driftstack's `/mcp` (the API key
    /// comes from DRIFTSTACK_API_KEY; see docs/MCP.md).
    Mcp {
        /// The Driftstack to talk to, e.g. `https://driftstack.example.com`.
        #[arg(long)]
        url: String,
    },
    /// Manage accounts.
    Accounts {
        #[command(subcommand)]
        command: AccountsCommand,
    },
    /// Manage API keys.
    Keys {
        #[command(subcommand)]
        command: KeysCommand,
    },
    /// Check the audit log.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// List the runner registry (one JSON object per line): id, address, state, capacity,
    /// live sessions, last heartbeat.
    Runners,
    /// Who still calls deprecated routes, every account (one JSON object per line): account,
    /// credential, route, day, calls (docs/VERSIONING.md).
    DeprecatedCalls,
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every account's hash chain; exits 1 naming the first altered entry of each
    /// broken chain.
    Verify,
}

#[derive(Subcommand)]
enum AccountsCommand {
    /// Create an account whose owner (verified) has this email; prints the account id.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long)]
        password: Option<String>,
        /// Default: `self_hosted`, or `trial` when billing is configured.
        #[arg(long)]
        tier: Option<String>,
    },
    /// Move the account of this member to another tier.
    SetTier {
        #[arg(long)]
        email: String,
        #[arg(long)]
        tier: String,
    },
}

#[derive(Subcommand)]
enum KeysCommand {
    /// Create an API key for the account of this member; prints the key.
    Create {
        #[arg(long)]
        email: String,
        #[arg(long, default_value = "CLI key")]
        name: String,
        /// `live` or `test`; default by tier.
        #[arg(long)]
        mode: Option<String>,
        /// Comma-separated scopes, e.g. `sessions:read,sessions:write`; default all.
        #[arg(long, value_delimiter = ',')]
        scopes: Option<Vec<String>>,
    },
}

fn init_tracing() {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn,chromiumoxide=off"));
    let json = std::env::var("DRIFTSTACK_LOG_FORMAT").is_ok_and(|v| v == "json");
    // Each enabled span's duration when it closes (e.g. the `phase` spans of the hot path).
    let spans = if std::env::var("DRIFTSTACK_LOG_SPANS").is_ok_and(|v| v == "1") {
        fmt::format::FmtSpan::CLOSE
    } else {
        fmt::format::FmtSpan::NONE
    };
    let registry = tracing_subscriber::registry().with(filter);
    if json {
        registry
            .with(
                fmt::layer()
                    .json()
                    .with_span_events(spans)
                    .with_writer(std::io::stderr),
            )
            .init();
    } else {
        registry
            .with(
                fmt::layer()
                    .with_span_events(spans)
                    .with_writer(std::io::stderr),
            )
            .init();
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // TLS for clients that take the process-wide provider (the S3 blob store); the others bring
    // their own. Installing twice is harmless.
    let _ = rustls::crypto::ring::default_provider().install_default();
    if let Command::Openapi = cli.command {
        print!("{}", api::openapi_json());
        return ExitCode::SUCCESS;
    }
    if let Command::Mcp { url } = &cli.command {
        return match mcp_bridge::run_blocking(url) {
            Ok(()) => ExitCode::SUCCESS,
            Err(err) => {
                eprintln!("driftstack mcp: {err}");
                ExitCode::from(2)
            }
        };
    }
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    init_tracing();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command, config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

async fn run(command: Command, config: Config) -> anyhow::Result<()> {
    match command {
        Command::Serve => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            api::serve(config, shutdown).await
        }
        Command::Runner => {
            let shutdown = CancellationToken::new();
            tokio::spawn(cancel_on_signal(shutdown.clone()));
            api::serve(
                api::config::Config {
                    runner_only: true,
                    ..config
                },
                shutdown,
            )
            .await
        }
        Command::Migrate => {
            let db = api::open_database(&config).await?;
            db.close().await;
            Ok(())
        }
        Command::Openapi | Command::Mcp { .. } => Ok(()),
        Command::DeprecatedCalls => {
            let db = api::open_database(&config).await?;
            let listed = api::store::deprecated_calls::DeprecatedCallStore::new(db.clone())
                .all()
                .await;
            db.close().await;
            for row in listed? {
                println!("{}", serde_json::to_string(&row)?);
            }
            Ok(())
        }
        Command::Runners => {
            let db = api::open_database(&config).await?;
            let listed = runner::registry::RunnerRegistry::new(db.clone())
                .list()
                .await;
            db.close().await;
            for r in listed? {
                println!(
                    "{}",
                    serde_json::json!({
                        "id": r.id.as_str(),
                        "address": r.address,
                        "state": r.state.as_str(),
                        "capacity": r.capacity,
                        "live_sessions": r.live_sessions,
                        "version": r.version,
                        "started_at": r.started_at,
                        "heartbeat_at": r.heartbeat_at,
                    })
                );
            }
            Ok(())
        }
        Command::Accounts { command } => {
            let state = api::build_state(config, String::new(), false).await?;
            let result = match command {
                AccountsCommand::Create {
                    email,
                    password,
                    tier,
                } => {
                    let tier = tier
                        .unwrap_or_else(|| api::service::accounts::default_tier(&state).to_owned());
                    let id = api::service::accounts::create_account(
                        &state,
                        &email,
                        password.as_deref(),
                        &tier,
                    )
                    .await?;
                    println!("{id}");
                    Ok(())
                }
                AccountsCommand::SetTier { email, tier } => {
                    api::service::accounts::set_tier(&state, &email, &tier).await
                }
            };
            state.db.close().await;
            result
        }
        Command::Audit {
            command: AuditCommand::Verify,
        } => {
            let state = api::build_state(config, String::new(), false).await?;
            let result = state.audit.verify().await;
            state.db.close().await;
            let (checked, breaks) = result?;
            if breaks.is_empty() {
                println!("ok: {checked} entries, every chain intact");
                return Ok(());
            }
            for b in &breaks {
                println!(
                    "broken: account {} at entry {}: {}",
                    b.account_id.as_deref().unwrap_or("(none)"),
                    b.entry_id,
                    b.reason
                );
            }
            anyhow::bail!("{} audit chain(s) broken", breaks.len())
        }
        Command::Keys {
            command:
                KeysCommand::Create {
                    email,
                    name,
                    mode,
                    scopes,
                },
        } => {
            let mode = match mode.as_deref() {
                None => None,
                Some(m) => Some(
                    KeyMode::parse(m)
                        .ok_or_else(|| anyhow::anyhow!("--mode must be live or test"))?,
                ),
            };
            let state = api::build_state(config, String::new(), false).await?;
            let result =
                api::service::accounts::create_key(&state, &email, &name, mode, scopes).await;
            state.db.close().await;
            println!("{}", result?);
            Ok(())
        }
    }
}

/// Cancels `token` on SIGTERM or SIGINT.
async fn cancel_on_signal(token: CancellationToken) {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {},
                    _ = term.recv() => {},
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
    tracing::info!("signal received: shutting down");
    token.cancel();
}

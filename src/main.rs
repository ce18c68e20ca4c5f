//! The `tripletex-sync` binary: parse the command line, set up logging, dispatch to the library.

use std::path::PathBuf;
use std::process::ExitCode;

mod commands;

use clap::{Parser, Subcommand};
use tripletex_sync::config::DEFAULT_CONFIG_PATH;
use tripletex_sync::logging::{self, LogFormat};
use tripletex_sync::status::Request;

use commands::exit;

/// Keeps web shops' Tripletex integrations healthy: session tokens that never lapse, polite rate
/// limiting, and customer/invoice numbering that never collides with Tripletex's own.
#[derive(Parser)]
#[command(version)]
struct Cli {
    /// The main configuration file.
    #[arg(long, global = true, env = "TRIPLETEX_SYNC_CONFIG", default_value = DEFAULT_CONFIG_PATH)]
    config: PathBuf,
    /// Log format: auto = journald when stderr is the journal (under systemd), else text.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Auto)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon until SIGTERM/SIGINT (SIGHUP reloads shops.d, SIGUSR1 runs a pass now).
    Run,
    /// Run one verification pass now and print the results.
    /// Exit 0: all ok/warn; 1: any conflict or error verdict; 2: could not run.
    Check {
        /// Only this shop (repeatable).
        #[arg(long = "shop", value_name = "NAME")]
        shops: Vec<String>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show what is recorded, per shop (works while the daemon runs): one line per shop and
    /// check, problems first, fitted to the terminal.
    /// Exit 0; with --problems 1 if anything needs attention; 2: could not run.
    Status {
        /// Print JSON instead of a table.
        #[arg(long, conflicts_with = "wide")]
        json: bool,
        /// The full table: sessions, since when, whole summaries and fixes.
        #[arg(long, short = 'l')]
        wide: bool,
        /// Only what needs attention (conflict, rejected key, error, warn, stale); exit 1 if
        /// anything does, else 0.
        #[arg(long)]
        problems: bool,
        /// Only this shop (repeatable).
        #[arg(long = "shop", value_name = "NAME")]
        shops: Vec<String>,
    },
    /// Check the configuration and token files without touching the network. Exit 0 or 2.
    Validate,
    /// Notifications to the platform (the `[notify]` table).
    Notify {
        #[command(subcommand)]
        command: NotifyCommand,
    },
    /// Run the daemon against the built-in Tripletex simulator's demo shops, then print status.
    Demo {
        /// How long the daemon runs.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
    },
    /// Serve the Tripletex simulator (for trying a config without a Tripletex account).
    Sim {
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:8080")]
        listen: std::net::SocketAddr,
        /// Scenario file (companies, keys, customers, invoices); default: the demo world.
        #[arg(long)]
        scenario: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum NotifyCommand {
    /// Send one signed `test` message now and print the platform's answer.
    /// Exit 0: delivered; 1: refused or failed; 2: could not run (configuration).
    Test,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Err(e) = logging::init(cli.log_format) {
        eprintln!("error: {e}");
        return ExitCode::from(exit::COULD_NOT_RUN);
    }
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(exit::COULD_NOT_RUN);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Run => commands::run(&cli.config).await,
            Command::Check { shops, json } => commands::check(&cli.config, &shops, json).await,
            Command::Status {
                json,
                wide,
                problems,
                shops,
            } => {
                let request = Request {
                    json,
                    wide,
                    problems,
                    shops,
                };
                commands::status(&cli.config, &request)
            }
            Command::Validate => commands::validate(&cli.config),
            Command::Notify {
                command: NotifyCommand::Test,
            } => commands::notify_test(&cli.config).await,
            Command::Demo { seconds } => commands::demo(seconds).await,
            Command::Sim { listen, scenario } => commands::sim(listen, scenario.as_deref()).await,
        }
    });
    // Not an unbounded wait for blocking tasks: one stuck in a broken sled handle never ends.
    runtime.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("error: {}", commands::one_line(&e));
            ExitCode::from(exit::COULD_NOT_RUN)
        }
    }
}

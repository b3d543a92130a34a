//! The command line: `serve` runs the server; the other commands are gRPC
//! clients of a running server that print JSON lines (pipe them into `jq`).

mod calls;
mod client;
mod health;
mod ingest;
mod serve;
mod subscribe;
mod token;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use client::{ClientArgs, Conn, field_violations_json};
pub(crate) use serve::signal_watch;

/// switchboard: one canonical call lifecycle from many telephony vendors,
/// streamed over gRPC.
#[derive(Parser, Debug)]
#[command(name = "switchboard", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the server.
    Serve(Box<crate::config::ServeArgs>),
    /// Send vendor payloads to a server (one per file, or one per line of stdin).
    Ingest(ingest::IngestArgs),
    /// Stream call events as CloudEvents-shaped JSON lines.
    Subscribe(subscribe::SubscribeArgs),
    /// Print stored events from a start point until the live head, then exit.
    Replay(subscribe::ReplayArgs),
    /// Query calls.
    Calls(calls::CallsArgs),
    /// Check a server's gRPC health; exits 0 when it is SERVING.
    Health(health::HealthArgs),
    /// Hold a vendor WebSocket open and send its events to a server.
    #[command(subcommand)]
    Connect(crate::connect::ConnectCommand),
    /// Manage bearer tokens.
    #[command(subcommand)]
    Token(token::TokenCommand),
}

/// Runs a parsed command line and returns the process exit code.
pub fn run(cli: Cli) -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Serve(args) => serve::run(*args).await,
            Command::Ingest(args) => ingest::run(args).await,
            Command::Subscribe(args) => subscribe::run(args).await,
            Command::Replay(args) => subscribe::replay(args).await,
            Command::Calls(args) => calls::run(args).await,
            Command::Health(args) => health::run(args).await,
            Command::Connect(cmd) => crate::connect::run(cmd).await,
            Command::Token(cmd) => token::run(cmd),
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

//! `switchboard token new`: a fresh random token and its config entry.

use std::process::ExitCode;

use crate::auth::{Role, new_token};
use crate::domain::TenantId;

/// `token` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum TokenCommand {
    /// Print a new random token and the `[[tokens]]` entry (with its SHA-256)
    /// to add to the auth file. The token itself is shown only once.
    New {
        /// The tenant the token acts for.
        #[arg(long)]
        tenant: String,
        /// Roles, comma-separated: ingest, subscribe, query, admin.
        #[arg(long, value_delimiter = ',', value_parser = |s: &str| Role::parse(s).ok_or(format!("unknown role {s:?}; one of ingest, subscribe, query, admin")))]
        roles: Vec<Role>,
        /// A label for logs (default: `<tenant>-<roles>`).
        #[arg(long)]
        name: Option<String>,
    },
}

/// Runs a `token` subcommand.
pub fn run(cmd: TokenCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TokenCommand::New { tenant, roles, name } => {
            let tenant = TenantId::parse(&tenant).map_err(|e| anyhow::anyhow!("invalid tenant: {e}"))?;
            anyhow::ensure!(!roles.is_empty(), "give at least one role with --roles");
            let name = name.unwrap_or_else(|| {
                format!("{tenant}-{}", roles.iter().map(|r| r.name()).collect::<Vec<_>>().join("-"))
            });
            let (token, entry) =
                new_token(&name, &tenant, &roles).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
            println!("# token (give it to the client; it is not stored anywhere):\n{token}\n");
            println!("# add this entry to the auth file (--auth-file) or the config file:\n{entry}");
            Ok(ExitCode::SUCCESS)
        }
    }
}

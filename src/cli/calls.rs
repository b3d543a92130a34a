//! `switchboard calls get ID` and `switchboard calls list`.

use std::process::ExitCode;

use super::ClientArgs;
use super::client::parse_vendor;
use crate::codec::proto::v1 as pb;
use crate::codec::proto::v1::call_service_client::CallServiceClient;
use crate::domain::Direction;
use crate::grpc::json;

/// `calls` flags.
#[derive(clap::Args, Debug)]
pub struct CallsArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(subcommand)]
    command: CallsCommand,
}

/// `calls` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum CallsCommand {
    /// Print one call.
    Get {
        /// The call id.
        call_id: String,
    },
    /// Print calls, newest first, one JSON object per line.
    List {
        /// active, ended or any.
        #[arg(long, default_value = "any")]
        state: String,
        /// Only this vendor.
        #[arg(long, value_parser = parse_vendor)]
        vendor: Option<i32>,
        /// Only this direction.
        #[arg(long, value_parser = |s: &str| Direction::from_name(s).map(Direction::number).ok_or(format!("unknown direction {s}")))]
        direction: Option<i32>,
        /// Only calls of this agent.
        #[arg(long, default_value = "")]
        agent_id: String,
        /// Only calls of this queue.
        #[arg(long, default_value = "")]
        queue_id: String,
        /// Calls per page.
        #[arg(long, default_value_t = 50)]
        page_size: i32,
        /// Follow `next_page_token` to the end.
        #[arg(long)]
        all: bool,
    },
}

/// Runs a `calls` subcommand.
pub async fn run(args: CallsArgs) -> anyhow::Result<ExitCode> {
    let mut client = CallServiceClient::new(args.client.connect().await?);
    let tenant_id = args.client.tenant.clone();
    match args.command {
        CallsCommand::Get { call_id } => {
            let resp = client.get_call(pb::GetCallRequest { call_id, tenant_id }).await?;
            println!("{}", json::message(&resp.into_inner().call.unwrap_or_default(), "switchboard.v1.Call"));
        }
        CallsCommand::List { state, vendor, direction, agent_id, queue_id, page_size, all } => {
            let state = match state.to_ascii_lowercase().as_str() {
                "active" => pb::CallStateFilter::Active,
                "ended" => pb::CallStateFilter::Ended,
                "any" => pb::CallStateFilter::Any,
                other => anyhow::bail!("unknown state {other:?}; one of active, ended, any"),
            };
            let filter = pb::ListCallsFilter {
                state: state as i32,
                vendor: vendor.unwrap_or(0),
                direction: direction.unwrap_or(0),
                agent_id,
                queue_id,
            };
            let mut page_token = String::new();
            loop {
                let req = pb::ListCallsRequest {
                    filter: Some(filter.clone()),
                    page_size,
                    page_token,
                    tenant_id: tenant_id.clone(),
                };
                let resp = client.list_calls(req).await?.into_inner();
                for call in &resp.calls {
                    println!("{}", json::message(call, "switchboard.v1.Call"));
                }
                if !all || resp.next_page_token.is_empty() {
                    break;
                }
                page_token = resp.next_page_token;
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

//! `switchboard subscribe` and `switchboard replay`.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};

use super::ClientArgs;
use super::client::parse_vendor;
use crate::codec::proto::v1 as pb;
use crate::codec::proto::v1::call_service_client::CallServiceClient;
use crate::domain::{Direction, EventType};
use crate::grpc::json;

/// Filters shared by `subscribe` and `replay`.
#[derive(clap::Args, Debug, Clone)]
pub struct FilterArgs {
    /// Only this call (repeatable).
    #[arg(long = "call-id")]
    call_ids: Vec<String>,
    /// Only this conversation (repeatable).
    #[arg(long = "conversation-id")]
    conversation_ids: Vec<String>,
    /// Only this event type, e.g. CALL_ENDED (repeatable).
    #[arg(long = "type", value_parser = |s: &str| EventType::from_name(s.trim_start_matches("EVENT_TYPE_")).map(EventType::number).ok_or(format!("unknown event type {s}")))]
    types: Vec<i32>,
    /// Only this vendor (repeatable).
    #[arg(long = "vendor", value_parser = parse_vendor)]
    vendors: Vec<i32>,
    /// Only this direction: inbound, outbound, internal (repeatable).
    #[arg(long = "direction", value_parser = |s: &str| Direction::from_name(s.trim_start_matches("DIRECTION_")).map(Direction::number).ok_or(format!("unknown direction {s}")))]
    directions: Vec<i32>,
    /// Only calls of this agent (repeatable).
    #[arg(long = "agent-id")]
    agent_ids: Vec<String>,
    /// Only calls of this queue (repeatable).
    #[arg(long = "queue-id")]
    queue_ids: Vec<String>,
}

impl FilterArgs {
    fn to_proto(&self) -> pb::SubscribeFilter {
        pb::SubscribeFilter {
            call_ids: self.call_ids.clone(),
            conversation_ids: self.conversation_ids.clone(),
            types: self.types.clone(),
            vendors: self.vendors.clone(),
            directions: self.directions.clone(),
            agent_ids: self.agent_ids.clone(),
            queue_ids: self.queue_ids.clone(),
        }
    }
}

/// Where to start.
#[derive(clap::Args, Debug, Clone)]
#[group(multiple = false)]
pub struct StartArgs {
    /// Resume after this sequence.
    #[arg(long)]
    after: Option<u64>,
    /// Start at events received at or after this RFC 3339 time.
    #[arg(long)]
    since: Option<DateTime<Utc>>,
    /// Start at the oldest event in the log.
    #[arg(long)]
    from_beginning: bool,
}

impl StartArgs {
    fn to_proto(&self) -> Option<pb::subscribe_request::Start> {
        use pb::subscribe_request::Start;
        if let Some(n) = self.after {
            Some(Start::AfterSequence(n))
        } else if let Some(t) = self.since {
            Some(Start::Since(crate::codec::convert::timestamp(t)))
        } else if self.from_beginning {
            Some(Start::FromBeginning(true))
        } else {
            None
        }
    }
}

/// `subscribe` flags.
#[derive(clap::Args, Debug)]
pub struct SubscribeArgs {
    #[command(flatten)]
    client: ClientArgs,
    #[command(flatten)]
    start: StartArgs,
    #[command(flatten)]
    filter: FilterArgs,
    /// First print the current state of every matching active call.
    #[arg(long)]
    snapshot: bool,
    /// Heartbeat interval for this stream (e.g. 5s).
    #[arg(long, value_parser = |s: &str| humantime::parse_duration(s))]
    heartbeat: Option<Duration>,
    /// Also print checkpoints.
    #[arg(long)]
    checkpoints: bool,
}

/// `replay` flags.
#[derive(clap::Args, Debug)]
pub struct ReplayArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// Resume after this sequence (default: from the beginning).
    #[arg(long)]
    after: Option<u64>,
    /// Start at events received at or after this RFC 3339 time.
    #[arg(long, conflicts_with = "after")]
    since: Option<DateTime<Utc>>,
    #[command(flatten)]
    filter: FilterArgs,
}

async fn stream(
    client: &ClientArgs,
    req: pb::SubscribeRequest,
    print_checkpoints: bool,
    stop_when_caught_up: bool,
) -> anyhow::Result<ExitCode> {
    let mut calls = CallServiceClient::new(client.connect().await?);
    let mut stream = calls.subscribe(req).await.context("subscribe failed")?.into_inner();
    while let Some(msg) = stream.message().await.context("stream failed")? {
        let checkpoint = match &msg.response {
            Some(pb::subscribe_response::Response::Checkpoint(c)) => Some(c.reason()),
            _ => None,
        };
        if checkpoint.is_none() || print_checkpoints {
            println!("{}", json::cloud_event(&msg));
        }
        if stop_when_caught_up && checkpoint == Some(pb::CheckpointReason::CaughtUp) {
            break;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Streams until interrupted or the server ends the stream.
pub async fn run(args: SubscribeArgs) -> anyhow::Result<ExitCode> {
    let req = pb::SubscribeRequest {
        filter: Some(args.filter.to_proto()),
        start: args.start.to_proto(),
        include_snapshot: args.snapshot,
        tenant_id: args.client.tenant.clone(),
        heartbeat_interval: args
            .heartbeat
            .map(|d| prost_types::Duration { seconds: d.as_secs() as i64, nanos: d.subsec_nanos() as i32 }),
    };
    stream(&args.client, req, args.checkpoints, false).await
}

/// Prints the log from the start point up to the live head.
pub async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let start = StartArgs {
        after: args.after,
        since: args.since,
        from_beginning: args.after.is_none() && args.since.is_none(),
    };
    let req = pb::SubscribeRequest {
        filter: Some(args.filter.to_proto()),
        start: start.to_proto(),
        include_snapshot: false,
        tenant_id: args.client.tenant.clone(),
        heartbeat_interval: None,
    };
    stream(&args.client, req, false, true).await
}

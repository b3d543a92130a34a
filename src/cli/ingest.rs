//! `switchboard ingest`: sends payloads from files or stdin.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use serde_json::json;
use tokio::io::{AsyncBufReadExt, BufReader};

use super::ClientArgs;
use super::client::parse_vendor;
use crate::codec::proto::v1 as pb;
use crate::codec::proto::v1::ingest_service_client::IngestServiceClient;
use crate::grpc::json;

/// `ingest` flags.
#[derive(clap::Args, Debug)]
pub struct IngestArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The vendor (`auto` detects it from each payload).
    #[arg(long, default_value = "auto", value_parser = parse_vendor)]
    vendor: i32,
    /// The vendor event type, for payloads that carry none (bare Xelion CallEvent).
    #[arg(long, default_value = "")]
    vendor_event_type: String,
    /// An idempotency key; with several payloads `-N` is appended to each.
    #[arg(long, default_value = "")]
    request_id: String,
    /// The agent or user on whose behalf the payloads are sent (what a browser
    /// relay sets: the logged-in agent of an 8x8 agent panel or Salesforce).
    #[arg(long, default_value = "")]
    agent_id: String,
    /// Treat each line of every file as one payload (JSON lines).
    #[arg(long)]
    lines: bool,
    /// Payload files; `-` reads one payload per line from stdin.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// Sends every payload; exits non-zero if any was rejected.
pub async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let mut client = IngestServiceClient::new(args.client.connect().await?);
    let mut payloads: Vec<(String, Vec<u8>)> = Vec::new();
    for file in &args.files {
        if file.as_os_str() == "-" {
            let mut lines = BufReader::new(tokio::io::stdin()).lines();
            let mut n = 0;
            while let Some(line) = lines.next_line().await? {
                n += 1;
                if !line.trim().is_empty() {
                    payloads.push((format!("stdin:{n}"), line.into_bytes()));
                }
            }
        } else {
            let bytes = tokio::fs::read(file).await.with_context(|| format!("cannot read {}", file.display()))?;
            if args.lines {
                for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
                    if !line.iter().all(u8::is_ascii_whitespace) {
                        payloads.push((format!("{}:{}", file.display(), i + 1), line.to_vec()));
                    }
                }
            } else {
                payloads.push((file.display().to_string(), bytes));
            }
        }
    }
    let many = payloads.len() > 1;
    let mut failed = 0;
    for (i, (origin, payload)) in payloads.into_iter().enumerate() {
        let request_id = match (args.request_id.is_empty(), many) {
            (true, _) => String::new(),
            (false, false) => args.request_id.clone(),
            (false, true) => format!("{}-{}", args.request_id, i + 1),
        };
        let req = pb::IngestRequest {
            vendor: args.vendor,
            payload: payload.into(),
            tenant_id: args.client.tenant.clone(),
            request_id,
            vendor_event_type: args.vendor_event_type.clone(),
            received_at: None,
            agent_id: args.agent_id.clone(),
        };
        match client.ingest(req).await {
            Ok(resp) => {
                let mut out = json::message(resp.get_ref(), "switchboard.v1.IngestResponse");
                out["source"] = json!(origin);
                println!("{out}");
            }
            Err(status) => {
                failed += 1;
                let details = super::field_violations_json(&status);
                println!(
                    "{}",
                    json!({"source": origin, "error": {"code": format!("{:?}", status.code()), "message": status.message(), "violations": details}})
                );
            }
        }
    }
    Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

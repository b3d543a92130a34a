//! `switchboard health`: the container's own health check (the Helm test
//! hook runs it against the Service).

use std::process::ExitCode;
use std::time::Duration;

use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use super::ClientArgs;

/// `health` flags.
#[derive(clap::Args, Debug)]
pub struct HealthArgs {
    #[command(flatten)]
    client: ClientArgs,
    /// The service to check; empty checks the server as a whole.
    #[arg(long, default_value = "")]
    service: String,
    /// Give up after this long.
    #[arg(long, default_value = "5s", value_parser = |s: &str| humantime::parse_duration(s))]
    timeout: Duration,
}

/// Exits 0 when the service is SERVING, 1 otherwise.
pub async fn run(args: HealthArgs) -> anyhow::Result<ExitCode> {
    let check = async {
        let channel = args.client.connect().await?;
        let resp = HealthClient::new(channel).check(HealthCheckRequest { service: args.service.clone() }).await?;
        anyhow::Ok(resp.into_inner().status())
    };
    match tokio::time::timeout(args.timeout, check).await {
        Ok(Ok(status)) => {
            println!("{}", status.as_str_name());
            Ok(if status == ServingStatus::Serving { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Ok(Err(e)) => {
            eprintln!("health check failed: {e:#}");
            Ok(ExitCode::FAILURE)
        }
        Err(_) => {
            eprintln!("health check timed out after {:?}", args.timeout);
            Ok(ExitCode::FAILURE)
        }
    }
}

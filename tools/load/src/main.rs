//! `switchboard-load`: the load generator of BENCHMARKS.md.
//!
//! It starts the switchboard server (and nats-server where a scenario needs
//! it) as child processes on free loopback ports, drives Ingest with
//! distinct, realistic payloads rendered from the vendor fixtures, runs
//! subscribers that check order and loss and record end-to-end latency, and
//! measures each scenario against its baseline in the same run: the no-op
//! RPCs of `switchboard.bench.v1.BenchService` (same server, same client,
//! same bytes) and nats-server core pub/sub. Every scenario ends with one
//! summary line (see `scenarios`); `scripts/bench` collects them.

mod client;
mod connect;
mod footprint;
mod payloads;
mod procs;
mod scenarios;
mod soak;

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

fn secs(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).or_else(|_| s.parse::<f64>().map(Duration::from_secs_f64)).map_err(|e| e.to_string())
}

/// Drives switchboard and its same-run baselines; prints one summary line
/// per scenario (BENCHMARKS.md).
#[derive(Parser, Debug)]
#[command(name = "switchboard-load", version)]
struct Cli {
    /// The switchboard server binary, built with the `bench` feature
    /// [default: `switchboard` beside this one].
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// The nats-server binary (Debian package `nats-server`).
    #[arg(long, global = true, default_value = "/usr/sbin/nats-server")]
    nats_bin: PathBuf,
    /// Vendor fixtures directory.
    #[arg(long, global = true, default_value = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/fixtures"))]
    fixtures: PathBuf,
    /// Scratch directory for the servers' data.
    #[arg(long, global = true, default_value = "target/bench/work")]
    work_dir: PathBuf,
    /// Pin the servers to these CPUs with taskset (e.g. `1`); the load
    /// generator should then run on the others (`taskset -c 0 …`).
    #[arg(long, global = true)]
    pin: Option<String>,
    /// Worker threads of the servers (TOKIO_WORKER_THREADS, GOMAXPROCS).
    #[arg(long, global = true)]
    server_workers: Option<usize>,
    /// Worker threads of the load generator's runtime [default: CPUs available to it].
    #[arg(long, global = true)]
    client_workers: Option<usize>,
    /// HTTP/2 connections (K) for unary load and subscribers.
    #[arg(long, global = true, default_value_t = 4)]
    channels: usize,
    /// Measured window of each run (e.g. `5s`).
    #[arg(long, global = true, value_parser = secs, default_value = "5s")]
    window: Duration,
    /// Warmup before each window.
    #[arg(long, global = true, value_parser = secs, default_value = "1s")]
    warmup: Duration,
    /// Baseline/ours pairs, interleaved (the median ratio is reported).
    #[arg(long, global = true, default_value_t = 3)]
    pairs: usize,
    #[command(subcommand)]
    scenario: Scenario,
}

#[derive(Subcommand, Debug)]
enum Scenario {
    /// S1: Ingest throughput on the memory store (non-durable ack) vs no-op unary.
    S1 {
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// S2: Ingest throughput on sqlite (durable ack, group commit) vs no-op
    /// unary, and acks per fsync across concurrencies.
    S2 {
        /// Requests in flight of the A/B pairs.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
        /// Concurrencies of the acks-per-fsync sweep (empty to skip).
        #[arg(long, value_delimiter = ',', default_value = "1,16,64")]
        sweep: Vec<usize>,
    },
    /// S4: end-to-end Ingest → subscriber latency vs the no-op stream.
    S4 {
        /// Ingest requests per second (open loop).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Subscribers.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
    },
    /// S5: server CPU per delivery vs nats-server core pub/sub.
    S5 {
        /// Subscriber counts to sweep.
        #[arg(long, value_delimiter = ',', default_value = "100,1000")]
        subscribers: Vec<usize>,
        /// Deliveries per second (the publish rate is this / N).
        #[arg(long, default_value_t = 50_000.0)]
        deliveries: f64,
    },
    /// S6(a): resident memory per idle stream.
    S6a {
        /// Idle streams.
        #[arg(long, default_value_t = 10_000)]
        subscribers: usize,
        /// Connections they share.
        #[arg(long, default_value_t = 100)]
        connections: usize,
        /// How long they idle before RSS is read.
        #[arg(long, value_parser = secs, default_value = "3s")]
        idle: Duration,
    },
    /// S7: slow subscribers (a share stops reading) vs all fast.
    S7 {
        /// Subscribers.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
        /// Share that stops reading, in percent.
        #[arg(long, default_value_t = 10)]
        slow_percent: usize,
        /// Ingest requests per second.
        #[arg(long, default_value_t = 200.0)]
        rate: f64,
        /// How long the slow ones stop reading (and the window of each run).
        #[arg(long, value_parser = secs, default_value = "10s")]
        stall: Duration,
    },
    /// S8: replay from the log vs the no-op stream's single-stream rate.
    S8 {
        /// Reuse this sqlite data directory (e.g. the one S2 left).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Ingest until the log holds at least this many events.
        #[arg(long, default_value_t = 50_000)]
        events: u64,
    },
    /// S10: Ingest on the NATS JetStream store (`--store nats`) vs raw
    /// JetStream publishes of the same bytes.
    S10 {
        /// Requests in flight.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// S13: the sqlite store's bytes on disk per event vs the encoded
    /// `CallUpdate` bytes per event (`--workload single`: S13b).
    S13 {
        /// `mix8`: Salesforce calls of eight events; `single`: one event each.
        #[arg(long, value_enum, default_value = "mix8")]
        workload: footprint::Workload,
        /// Calls to ingest.
        #[arg(long, default_value_t = 10_000)]
        calls: u64,
        /// Calls in flight (each call's events in order).
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// CONNECT: frames per second through `switchboard connect
    /// 8x8-event-streaming` from a local Pulsar endpoint into Ingest (sqlite)
    /// vs direct Ingest of the same frames at the same concurrency.
    Connect {
        /// Ingest requests in flight, of the connector (`--concurrency`) and of the direct baseline.
        #[arg(long, default_value_t = 16)]
        concurrency: usize,
        /// Frames the endpoint keeps unacknowledged (Pulsar's receiver queue).
        #[arg(long, default_value_t = 1000)]
        max_unacked: u64,
    },
    /// soak: RSS growth per thousand events under sustained Ingest of whole
    /// calls with retention bounding the log (BENCHMARKS.md, "Memory under
    /// sustained ingest"). Long: not part of the short suite.
    Soak {
        /// Stores to soak, one fresh server each, in turn.
        #[arg(long, value_delimiter = ',', default_value = "memory,sqlite,nats")]
        stores: Vec<String>,
        /// Ingest events per second, all connections together.
        #[arg(long, default_value_t = 2000.0)]
        rate: f64,
        /// Ingest connections (clients).
        #[arg(long, default_value_t = 2)]
        clients: usize,
        /// Calls in flight per connection.
        #[arg(long, default_value_t = 4)]
        calls_in_flight: usize,
        /// Ingest time per store, warm-up included.
        #[arg(long, value_parser = secs, default_value = "240s")]
        duration: Duration,
        /// RSS samples before this are left out of the slope (retention and
        /// the dedup window reach their bounds) ...
        #[arg(long = "soak-warmup", value_parser = secs, default_value = "90s")]
        soak_warmup: Duration,
        /// ... and before this many events (the phone cache holds the
        /// 10,000 numbers after 60,000).
        #[arg(long, default_value_t = 100_000)]
        warmup_events: u64,
        /// The server's --retention-max-events.
        #[arg(long, default_value_t = 20_000)]
        retention_events: u64,
        /// The server's --dedup-window.
        #[arg(long, value_parser = secs, default_value = "10s")]
        dedup_window: Duration,
        /// Subscribers opened and dropped per second (0: none).
        #[arg(long, default_value_t = 0.0)]
        churn: f64,
        /// Fail above this RSS slope, bytes per thousand events.
        #[arg(long, default_value_t = 1024.0)]
        max_slope: f64,
    },
    /// S10b: e2e latency with Ingest on one replica and subscribers on
    /// another (two servers on one nats-server -js) vs on the same one.
    S10b {
        /// Ingest requests per second (open loop).
        #[arg(long, default_value_t = 1000.0)]
        rate: f64,
        /// Subscribers.
        #[arg(long, default_value_t = 100)]
        subscribers: usize,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = cli.client_workers {
        rt.worker_threads(n);
    }
    let rt = match rt.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match rt.block_on(run(cli)) {
        Ok(summary) => {
            for (what, ok) in &summary.checks {
                if !ok {
                    println!("  FAILED check: {what}");
                }
            }
            println!("{}", summary.line());
            if summary.meets() { ExitCode::SUCCESS } else { ExitCode::from(1) }
        }
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(cli: Cli) -> anyhow::Result<scenarios::Summary> {
    let server_bin = match cli.server_bin {
        Some(p) => p,
        None => std::env::current_exe()?.with_file_name("switchboard"),
    };
    anyhow::ensure!(
        server_bin.exists(),
        "no server binary at {} (build it: cargo build --release --workspace --features bench)",
        server_bin.display()
    );
    let ctx = scenarios::Ctx {
        server_bin,
        nats_bin: cli.nats_bin,
        fixtures: cli.fixtures,
        work_dir: cli.work_dir,
        pin: procs::Pin { cpus: cli.pin, workers: cli.server_workers },
        channels: cli.channels.max(1),
        window: cli.window,
        warmup: cli.warmup,
        pairs: cli.pairs.max(1),
    };
    std::fs::create_dir_all(&ctx.work_dir)?;
    let fixtures = payloads::load(&ctx.fixtures)?;
    client::now_ns();
    match cli.scenario {
        Scenario::S1 { concurrency } => scenarios::unary(&ctx, fixtures, false, concurrency, &[]).await,
        Scenario::S2 { concurrency, sweep } => scenarios::unary(&ctx, fixtures, true, concurrency, &sweep).await,
        Scenario::S4 { rate, subscribers } => scenarios::e2e(&ctx, fixtures, rate, subscribers).await,
        Scenario::S5 { subscribers, deliveries } => {
            scenarios::fan_out_cpu(&ctx, fixtures, &subscribers, deliveries).await
        }
        Scenario::S6a { subscribers, connections, idle } => {
            scenarios::idle_memory(&ctx, subscribers, connections, idle).await
        }
        Scenario::S7 { subscribers, slow_percent, rate, stall } => {
            scenarios::slow(&ctx, fixtures, subscribers, slow_percent, rate, stall).await
        }
        Scenario::S8 { data_dir, events } => scenarios::replay(&ctx, fixtures, data_dir, events).await,
        Scenario::S13 { workload, calls, concurrency } => {
            footprint::footprint(&ctx, fixtures, workload, calls, concurrency).await
        }
        Scenario::S10 { concurrency } => scenarios::jetstream(&ctx, fixtures, concurrency).await,
        Scenario::Connect { concurrency, max_unacked } => {
            connect::connect(&ctx, fixtures, concurrency, max_unacked).await
        }
        Scenario::S10b { rate, subscribers } => scenarios::jetstream_e2e(&ctx, fixtures, rate, subscribers).await,
        Scenario::Soak {
            stores,
            rate,
            clients,
            calls_in_flight,
            duration,
            soak_warmup,
            warmup_events,
            retention_events,
            dedup_window,
            churn,
            max_slope,
        } => {
            let spec = soak::SoakSpec {
                stores,
                rate,
                clients,
                calls_in_flight,
                duration,
                warmup: soak_warmup,
                warmup_events,
                retention_events,
                dedup_window,
                churn,
                max_slope,
            };
            soak::soak(&ctx, &spec).await
        }
    }
}

//! The connector scenario (`switchboard-load connect`, BENCHMARKS.md
//! "Connector throughput"): frames per second from a local Pulsar WebSocket
//! endpoint through `switchboard connect 8x8-event-streaming` into Ingest
//! (sqlite store), against `switchboard-load` driving Ingest directly with
//! the same payloads (the 8x8 Event Streaming Pulsar frames, each rendered
//! distinct) at the connector's concurrency, in the same run, A/B
//! interleaved.
//!
//! The endpoint speaks the Pulsar consumer protocol the connector expects:
//! `X-API-Key`, data frames `{messageId, payload, publishTime, …}`, one ack
//! `{"messageId": …}` per frame. It keeps at most `--max-unacked` frames
//! outstanding (Pulsar's receiver queue) and sends the next as each ack
//! comes back; only acknowledged frames count. Between its windows it stops
//! feeding, so the direct Ingest baseline runs alone.

use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio_tungstenite::tungstenite::Message;

use crate::client::{self, Requests, Unary};
use crate::payloads::Fixture;
use crate::procs::{self, Server};
use crate::scenarios::{Ctx, Summary, check_unary, median, prepare, print_unary, with_cpu};

const API_KEY: &str = "bench-key";

/// The frames in flight and the acks counted.
struct Feed {
    reqs: Arc<Requests>,
    feeding: AtomicBool,
    sent: AtomicU64,
    acked: AtomicU64,
    max_unacked: u64,
    wake: Notify,
}

impl Feed {
    fn unacked(&self) -> u64 {
        self.sent.load(Ordering::Acquire).saturating_sub(self.acked.load(Ordering::Acquire))
    }
}

/// Serves the Pulsar consumer endpoint to whoever connects with the key.
async fn serve(listener: TcpListener, feed: Arc<Feed>) {
    while let Ok((stream, _)) = listener.accept().await {
        let feed = feed.clone();
        tokio::spawn(async move {
            #[allow(clippy::result_large_err)] // tungstenite's callback signature
            let check = |req: &tokio_tungstenite::tungstenite::handshake::server::Request,
                         resp: tokio_tungstenite::tungstenite::handshake::server::Response| {
                if req.headers().get("X-API-Key").and_then(|v| v.to_str().ok()) == Some(API_KEY) {
                    Ok(resp)
                } else {
                    let mut r = tokio_tungstenite::tungstenite::handshake::server::ErrorResponse::new(None);
                    *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::UNAUTHORIZED;
                    Err(r)
                }
            };
            let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, check).await else { return };
            let (mut write, mut read) = ws.split();
            let reader = {
                let feed = feed.clone();
                tokio::spawn(async move {
                    while let Some(Ok(msg)) = read.next().await {
                        if let Message::Text(t) = msg
                            && t.as_str().starts_with("{\"messageId\"")
                        {
                            feed.acked.fetch_add(1, Ordering::AcqRel);
                            feed.wake.notify_one();
                        }
                    }
                })
            };
            loop {
                let wake = feed.wake.notified();
                if feed.feeding.load(Ordering::Acquire) && feed.unacked() < feed.max_unacked {
                    let n = feed.reqs.next();
                    let payload = feed.reqs.fixture(n).payload(n);
                    let Ok(text) = String::from_utf8(payload.to_vec()) else { break };
                    feed.sent.fetch_add(1, Ordering::AcqRel);
                    if write.feed(Message::text(text)).await.is_err() {
                        break;
                    }
                    if feed.unacked().is_multiple_of(64) && write.flush().await.is_err() {
                        break;
                    }
                    continue;
                }
                if write.flush().await.is_err() {
                    break;
                }
                wake.await;
            }
            reader.abort();
        });
    }
}

/// A running connector process.
struct Connector {
    child: Child,
    metrics: SocketAddr,
}

impl Connector {
    fn start(ctx: &Ctx, url: &str, server: &Server, concurrency: usize) -> anyhow::Result<Connector> {
        let metrics: SocketAddr = format!("127.0.0.1:{}", procs::free_port()?).parse()?;
        let dir = ctx.fresh_dir("connect-data")?;
        // Not pinned like the servers: the connector is a client, so it shares
        // the load generator's CPU (the whole suite runs under taskset -c 0).
        let child = Command::new(&ctx.server_bin)
            .args(["connect", "8x8-event-streaming", "--url", url, "--api-key", API_KEY])
            .args(["--addr", &format!("http://{}", server.grpc)])
            .args(["--concurrency", &concurrency.to_string(), "--metrics-listen", &metrics.to_string()])
            .args(["--log-format", "json", "--log-level", "warn"])
            .arg("--data-dir")
            .arg(dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("cannot start {} connect", ctx.server_bin.display()))?;
        Ok(Connector { child, metrics })
    }

    fn metric(&self, name: &str) -> f64 {
        procs::metric_sum(&procs::scrape(self.metrics).unwrap_or_default(), name)
    }

    fn outcome(&self, outcome: &str) -> f64 {
        let text = procs::scrape(self.metrics).unwrap_or_default();
        text.lines()
            .filter(|l| {
                l.starts_with("switchboard_connector_ingested_total{") && l.contains(&format!("outcome=\"{outcome}\""))
            })
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum()
    }
}

impl Drop for Connector {
    fn drop(&mut self) {
        let _ = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The 8x8 Event Streaming Pulsar frames of interactions among the accepted
/// fixtures. The agent-status frame is left out: its template renders every
/// request with the same `agentId`, i.e. one agent changing state thousands
/// of times a second, which the connector (rightly) ingests one at a time in
/// order; direct Ingest has no such order to keep.
fn frames(fixtures: Vec<Fixture>) -> Vec<Fixture> {
    fixtures.into_iter().filter(|f| f.name.starts_with("8x8_event_streaming/frame-interaction")).collect()
}

/// Runs the scenario: `pairs` interleaved windows of direct Ingest and of the
/// connector, both at `concurrency` requests in flight over one HTTP/2 connection.
pub async fn connect(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    concurrency: usize,
    max_unacked: u64,
) -> anyhow::Result<Summary> {
    println!(
        "CONNECT: Pulsar endpoint → switchboard connect 8x8-event-streaming → Ingest (sqlite) vs switchboard-load → Ingest, \
         same frames, C={concurrency}, one HTTP/2 connection each; endpoint keeps ≤ {max_unacked} unacked; {}",
        ctx.describe()
    );
    let fixtures = frames(fixtures);
    anyhow::ensure!(!fixtures.is_empty(), "no 8x8_event_streaming/frame-*.json fixtures");
    let server = Server::start(&ctx.spec("sqlite", "connect", &[])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    let chans = client::channels(server.grpc, 1).await?;
    let pid = server.pid();

    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("ws://{}/ws/v2/consumer/persistent/bench/event-v1/all/switchboard-bench", listener.local_addr()?);
    let feed = Arc::new(Feed {
        reqs: reqs.clone(),
        feeding: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        acked: AtomicU64::new(0),
        max_unacked,
        wake: Notify::new(),
    });
    let endpoint = tokio::spawn(serve(listener, feed.clone()));
    let connector = Connector::start(ctx, &url, &server, concurrency)?;
    let connected = Instant::now() + Duration::from_secs(30);
    while connector.metric("switchboard_connector_connected") < 1.0 {
        if Instant::now() > connected {
            bail!("the connector did not connect within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    let (mut ours, mut base, mut ratios) = (Vec::new(), Vec::new(), Vec::new());
    let mut checks = Vec::new();
    for pair in 0..ctx.pairs {
        let (b, bcpu) = with_cpu(
            pid,
            client::closed_loop(Unary::Ingest, &chans, reqs.clone(), concurrency, ctx.warmup, ctx.window),
        )
        .await;
        print_unary(&format!("pair {} Ingest direct", pair + 1), &b, &bcpu);
        checks.extend(check_unary("Ingest direct", &b, true));

        let (rate, cpu_us, connector_us) = {
            feed.feeding.store(true, Ordering::Release);
            feed.wake.notify_one();
            tokio::time::sleep(ctx.warmup).await;
            let cpu = || (procs::cpu_micros(pid), procs::cpu_micros(connector.child.id()));
            let (a0, t0, c0) = (feed.acked.load(Ordering::Acquire), Instant::now(), cpu());
            tokio::time::sleep(ctx.window).await;
            let (a1, t1, c1) = (feed.acked.load(Ordering::Acquire), Instant::now(), cpu());
            feed.feeding.store(false, Ordering::Release);
            let frames = (a1 - a0).max(1) as f64;
            ((a1 - a0) as f64 / (t1 - t0).as_secs_f64(), (c1.0 - c0.0) as f64 / frames, (c1.1 - c0.1) as f64 / frames)
        };
        // Let the frames in flight drain before the next direct window.
        let drained = Instant::now() + Duration::from_secs(30);
        while feed.unacked() > 0 && Instant::now() < drained {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        println!(
            "  {:<22} {rate:>8.0} frames/s acknowledged; server {cpu_us:.1} µs/frame; connector {connector_us:.1} µs/frame; {} unacked after draining",
            format!("pair {} connector", pair + 1),
            feed.unacked()
        );
        ours.push(rate);
        base.push(b.rate());
        ratios.push(rate / b.rate());
    }
    let acked = feed.acked.load(Ordering::Acquire) as f64;
    let accepted = connector.outcome("accepted");
    let invalid = connector.outcome("invalid");
    println!(
        "  connector totals: {acked:.0} acknowledged, {accepted:.0} ACCEPTED, {:.0} DUPLICATE, {:.0} IGNORED, {invalid:.0} INVALID, {:.0} retries",
        connector.outcome("duplicate"),
        connector.outcome("ignored"),
        connector.metric("switchboard_connector_retries_total")
    );
    checks.push(("connector: every acknowledged frame was ACCEPTED".into(), accepted >= acked && invalid == 0.0));
    checks.push(("connector: nothing left unacknowledged".into(), feed.unacked() == 0));
    let spread = |v: &[f64]| (v.iter().cloned().fold(f64::INFINITY, f64::min), v.iter().cloned().fold(0.0, f64::max));
    let (lo, hi) = spread(&ratios);
    println!("  throughput ratio connector/direct: median {:.3} (spread {lo:.3}..{hi:.3})", median(ratios.clone()));
    drop(connector);
    endpoint.abort();
    server.stop();
    Ok(Summary {
        scenario: "CONNECT",
        metric: "frames_per_s".into(),
        ours: median(ours),
        baseline_name: "ingest_direct".into(),
        baseline: median(base),
        ratio: median(ratios),
        target: 0.5,
        checks,
    })
}

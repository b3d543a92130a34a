//! The soak scenario (BENCHMARKS.md, "Memory under sustained ingest"): does
//! a server that ingests all day hold its memory once retention bounds the
//! log?
//!
//! For each store in turn, a fresh server runs with count retention, a short
//! retention interval and a short dedup window, and `clients` connections
//! ingest whole Salesforce Voice calls (start, connect, hold, resume, end,
//! wrap-up; one event per request; every call new, customer numbers cycling
//! over 10,000) at `rate` events/s, optionally with subscribers connecting
//! and dropping. The server's RSS is sampled once a second against the
//! number of events ingested (written to `<work dir>/soak-<store>.csv`);
//! after the warm-up (a time and a number of events, long enough for the
//! log, the dedup window and the phone cache to reach their bounds) the
//! slope of RSS over events gives the growth in bytes per thousand events.
//! Everything the server keeps is bounded by a count or a window, so the
//! slope must be about zero; the scenario fails above `max_slope` (1 KiB per
//! thousand events by default). The slope is Theil–Sen's (the median of the
//! slopes between every two samples): a leak is a line, but a bounded
//! structure that settles at a new size when a shared machine lets the rate
//! rise (the dedup window then holds more keys, and its hash table doubles)
//! is one step, which a least-squares line (printed too) would spread over
//! the window.
//!
//! `/metrics` is scraped once, after the run: a scrape drains buffered
//! histogram samples, and the soak must see the server as an operator
//! without Prometheus would.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use switchboard::proto::v1 as pb;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use tonic::transport::Channel;

use crate::client::{self, Stream};
use crate::procs::{self, Nats, Server};
use crate::scenarios::{Ctx, Summary};

/// What the soak does to each store.
#[derive(Clone, Debug)]
pub struct SoakSpec {
    /// `memory`, `sqlite`, `nats`.
    pub stores: Vec<String>,
    /// Events per second, all clients together.
    pub rate: f64,
    /// Ingest connections.
    pub clients: usize,
    /// Calls in flight per connection.
    pub calls_in_flight: usize,
    /// Ingest time per store, warm-up included.
    pub duration: Duration,
    /// Samples before this are not in the slope...
    pub warmup: Duration,
    /// ... nor before this many events (every bounded structure full: the
    /// log, the dedup window, the phone cache's 10,000 numbers).
    pub warmup_events: u64,
    /// `--retention-max-events`.
    pub retention_events: u64,
    /// `--dedup-window`.
    pub dedup_window: Duration,
    /// Subscribers opened and dropped per second (0: none).
    pub churn: f64,
    /// The largest acceptable slope, bytes per thousand events.
    pub max_slope: f64,
}

/// The events of one Salesforce Voice call, in order.
const CALL: [&str; 6] = ["callstarted", "callconnected", "hold", "resume", "callended", "wrapupended"];

/// The payload of event `i` of call `n` (a new call id for every `n`, the
/// customer's number cycling over 10,000).
fn call_event(salt: u32, n: u64, i: usize) -> String {
    let call_id = format!("{salt:08x}-5b7d-4e3a-9c61-{n:012x}");
    let number = format!("+1 (415) 200-{:04}", n % 10_000);
    let ty = CALL[i];
    match ty {
        "callstarted" | "callconnected" => format!(
            r#"{{"type":"{ty}","detail":{{"callId":"{call_id}","callType":"inbound","participant":"{number}"}}}}"#
        ),
        "hold" | "resume" => format!(r#"{{"type":"{ty}","detail":{{"callId":"{call_id}","participant":"{number}"}}}}"#),
        _ => format!(r#"{{"type":"{ty}","detail":{{"callId":"{call_id}"}}}}"#),
    }
}

#[derive(Default)]
struct Counts {
    events: AtomicU64,
    accepted: AtomicU64,
    errors: AtomicU64,
    churned: AtomicU64,
}

/// One store's result.
struct Run {
    store: String,
    /// Theil–Sen, bytes per thousand events: the gate.
    slope: f64,
    /// Least squares, for comparison.
    ols: f64,
    /// Theil–Sen of the anonymous part alone (the heap; RSS less mapped
    /// files such as sqlite's database).
    anon: f64,
    events: u64,
    accepted: u64,
    errors: u64,
    churned: u64,
    rss_warm: u64,
    rss_end: u64,
    rate: f64,
}

/// The Theil–Sen slope of `y` over `x`: the median of the slopes between
/// every two points. A leak is a line and has the same slope as by least
/// squares; a bounded structure that settles at a new size (a hash table
/// doubling when the rate rises, so the dedup window holds more keys) is
/// one step, which least squares spreads over the whole window and the
/// median ignores.
fn median_slope(points: &[(f64, f64)]) -> f64 {
    let mut slopes = Vec::with_capacity(points.len() * points.len() / 2);
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if b.0 > a.0 {
                slopes.push((b.1 - a.1) / (b.0 - a.0));
            }
        }
    }
    if slopes.is_empty() {
        return f64::NAN;
    }
    slopes.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let n = slopes.len();
    if n % 2 == 1 { slopes[n / 2] } else { (slopes[n / 2 - 1] + slopes[n / 2]) / 2.0 }
}

/// Least-squares slope of `y` over `x`.
fn slope(points: &[(f64, f64)]) -> f64 {
    let n = points.len() as f64;
    if points.len() < 2 {
        return f64::NAN;
    }
    let (mx, my) = (points.iter().map(|p| p.0).sum::<f64>() / n, points.iter().map(|p| p.1).sum::<f64>() / n);
    let sxy: f64 = points.iter().map(|(x, y)| (x - mx) * (y - my)).sum();
    let sxx: f64 = points.iter().map(|(x, _)| (x - mx) * (x - mx)).sum();
    sxy / sxx
}

/// Ingests whole calls on `ch` until `stop`, `per_task` events/s per call
/// stream.
async fn ingest_calls(
    ch: Channel,
    next_call: Arc<AtomicU64>,
    counts: Arc<Counts>,
    stop: Arc<AtomicBool>,
    salt: u32,
    period: Duration,
) {
    let mut client = IngestServiceClient::new(ch);
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        let n = next_call.fetch_add(1, Ordering::Relaxed);
        for i in 0..CALL.len() {
            tick.tick().await;
            let req = pb::IngestRequest {
                vendor: pb::Vendor::SalesforceVoice as i32,
                payload: bytes::Bytes::from(call_event(salt, n, i)),
                ..Default::default()
            };
            match client.ingest(req).await {
                Ok(r) => {
                    counts.events.fetch_add(1, Ordering::Relaxed);
                    if r.into_inner().outcome == pb::IngestOutcome::Accepted as i32 {
                        counts.accepted.fetch_add(1, Ordering::Relaxed);
                    }
                }
                Err(_) => {
                    counts.errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Opens a live subscription and drops it `churn` times a second.
async fn churn_subscribers(ch: Channel, churn: f64, counts: Arc<Counts>, stop: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / churn));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !stop.load(Ordering::Relaxed) {
        tick.tick().await;
        if let Ok(mut s) = client::open_stream(&ch, &Stream::Subscribe).await {
            use futures_util::StreamExt as _;
            let _ = tokio::time::timeout(Duration::from_millis(200), s.next()).await;
            counts.churned.fetch_add(1, Ordering::Relaxed);
        }
    }
}

async fn soak_one(ctx: &Ctx, spec: &SoakSpec, store: &str) -> anyhow::Result<Run> {
    let dedup = format!("{}ms", spec.dedup_window.as_millis());
    let retention = spec.retention_events.to_string();
    let mut args = vec!["--retention-max-events", &retention, "--retention-interval", "1s", "--dedup-window", &dedup];
    let nats = match store {
        "nats" => Some(Nats::start_jetstream(&ctx.nats_bin, &ctx.pin, &ctx.fresh_dir("soak-jetstream")?)?),
        _ => None,
    };
    if let Some(n) = &nats {
        args.extend(["--nats-url", n.url.as_str()]);
    }
    let server = Server::start(&ctx.spec(store, &format!("soak-{store}"), &args)?)?;
    let pid = server.pid();
    let chans = client::channels(server.grpc, spec.clients.max(1)).await?;
    let counts = Arc::new(Counts::default());
    let stop = Arc::new(AtomicBool::new(false));
    let next_call = Arc::new(AtomicU64::new(0));
    let salt = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as u32);
    let tasks_n = spec.clients.max(1) * spec.calls_in_flight.max(1);
    let period = Duration::from_secs_f64(tasks_n as f64 / spec.rate.max(1.0));
    let mut tasks = Vec::new();
    for t in 0..tasks_n {
        tasks.push(tokio::spawn(ingest_calls(
            chans[t % chans.len()].clone(),
            next_call.clone(),
            counts.clone(),
            stop.clone(),
            salt,
            period,
        )));
    }
    if spec.churn > 0.0 {
        let ch = client::channels(server.grpc, 1).await?.remove(0);
        tasks.push(tokio::spawn(churn_subscribers(ch, spec.churn, counts.clone(), stop.clone())));
    }
    let started = Instant::now();
    let mut samples = Vec::new();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut rss_warm = 0;
    let mut events_warm = 0;
    let mut last_print = Instant::now();
    let mut csv = String::from("seconds,events,rss_bytes,rss_anon_bytes,rss_file_bytes\n");
    let mut anon = Vec::new();
    let mut warm_at = None;
    loop {
        tick.tick().await;
        let t = started.elapsed();
        let (events, rss) = (counts.events.load(Ordering::Relaxed), procs::rss_kib(pid) * 1024);
        let (rss_anon, rss_file) = procs::rss_split_kib(pid);
        csv.push_str(&format!("{:.1},{events},{rss},{},{}\n", t.as_secs_f64(), rss_anon * 1024, rss_file * 1024));
        if t >= spec.warmup && events >= spec.warmup_events {
            warm_at.get_or_insert(t);
            if samples.is_empty() {
                rss_warm = rss;
                events_warm = events;
            }
            samples.push((events as f64 / 1000.0, rss as f64));
            anon.push((events as f64 / 1000.0, (rss_anon * 1024) as f64));
        }
        if last_print.elapsed() >= Duration::from_secs(15) || t >= spec.duration {
            last_print = Instant::now();
            println!(
                "  {store}: {:>4.0} s {:>9} events, RSS {:>7.1} MiB{}",
                t.as_secs_f64(),
                events,
                rss as f64 / 1048576.0,
                if samples.len() >= 5 {
                    format!(", slope so far {:.0} B per 1000 events", median_slope(&samples))
                } else {
                    String::new()
                }
            );
        }
        if t >= spec.duration {
            break;
        }
        if server_gone(pid) {
            anyhow::bail!("the {store} server exited during the soak");
        }
    }
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = tokio::time::timeout(Duration::from_secs(5), t).await;
    }
    let rss_end = procs::rss_kib(pid) * 1024;
    let events = counts.events.load(Ordering::Relaxed);
    let measured = events.saturating_sub(events_warm);
    let warm_at = warm_at.unwrap_or(spec.duration);
    let secs = spec.duration.saturating_sub(warm_at).as_secs_f64();
    let _ = std::fs::write(ctx.work_dir.join(format!("soak-{store}.csv")), csv);
    anyhow::ensure!(
        samples.len() >= 10,
        "{store}: only {} samples after the warm-up ({:?} and {} events; {events} events in {:?}): run longer",
        samples.len(),
        spec.warmup,
        spec.warmup_events,
        spec.duration
    );
    // After the run: the server's own entry counts, where it exports them.
    let text = procs::scrape(server.metrics).unwrap_or_default();
    let entries: Vec<&str> = text.lines().filter(|l| l.starts_with("switchboard_store_entries")).collect();
    if !entries.is_empty() {
        println!("  {store}: after the run: {}", entries.join(", "));
    }
    server.stop();
    drop(nats);
    Ok(Run {
        store: store.to_string(),
        slope: median_slope(&samples),
        ols: slope(&samples),
        anon: median_slope(&anon),
        events,
        accepted: counts.accepted.load(Ordering::Relaxed),
        errors: counts.errors.load(Ordering::Relaxed),
        churned: counts.churned.load(Ordering::Relaxed),
        rss_warm,
        rss_end,
        rate: measured as f64 / secs.max(1e-9),
    })
}

fn server_gone(pid: u32) -> bool {
    !std::path::Path::new(&format!("/proc/{pid}")).exists()
}

/// Runs the soak on every store of `spec`.
pub async fn soak(ctx: &Ctx, spec: &SoakSpec) -> anyhow::Result<Summary> {
    println!(
        "soak: whole Salesforce calls at {:.0} events/s over {} connection(s) ({} calls in flight each), \
         {:?} per store (warm-up: {:?} and {} events); --retention-max-events {} --retention-interval 1s \
         --dedup-window {:?}; subscriber churn {}/s; stores {}; {}",
        spec.rate,
        spec.clients,
        spec.calls_in_flight,
        spec.duration,
        spec.warmup,
        spec.warmup_events,
        spec.retention_events,
        spec.dedup_window,
        spec.churn,
        spec.stores.join(","),
        ctx.pin.describe()
    );
    anyhow::ensure!(spec.duration >= spec.warmup + Duration::from_secs(10), "the soak needs ≥ 10 s after warm-up");
    let mut runs = Vec::new();
    for store in &spec.stores {
        let r = soak_one(ctx, spec, store).await?;
        println!(
            "  {}: {} events ({:.0}/s after warm-up), {} accepted, {} errors, {} subscribers churned; \
             RSS {:.1} MiB after warm-up → {:.1} MiB: slope {:.0} B per 1000 events (Theil–Sen; least squares {:.0}; \
             anonymous memory alone {:.0}; samples: {}/soak-{}.csv)",
            r.store,
            r.events,
            r.rate,
            r.accepted,
            r.errors,
            r.churned,
            r.rss_warm as f64 / 1048576.0,
            r.rss_end as f64 / 1048576.0,
            r.slope,
            r.ols,
            r.anon,
            ctx.work_dir.display(),
            r.store
        );
        runs.push(r);
    }
    let worst = runs.iter().map(|r| r.slope).fold(f64::NEG_INFINITY, f64::max);
    let mut checks = Vec::new();
    for r in &runs {
        checks.push((
            format!("{}: RSS slope ≤ {:.0} B per 1000 events", r.store, spec.max_slope),
            r.slope <= spec.max_slope,
        ));
        checks.push((format!("{}: Ingest without errors", r.store), r.errors == 0));
        checks.push((format!("{}: ≥ 99% ACCEPTED", r.store), r.accepted as f64 >= 0.99 * r.events.max(1) as f64));
    }
    Ok(Summary {
        scenario: "soak",
        metric: "rss_bytes_per_1000_events".into(),
        ours: worst,
        baseline_name: "limit".into(),
        baseline: spec.max_slope,
        ratio: spec.max_slope / worst.max(1.0),
        target: 1.0,
        checks,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_has_its_slope() {
        let pts: Vec<(f64, f64)> = (0..10).map(|i| (i as f64, 3.0 * i as f64 + 7.0)).collect();
        assert!((slope(&pts) - 3.0).abs() < 1e-9);
        assert!((median_slope(&pts) - 3.0).abs() < 1e-9);
    }

    #[test]
    fn one_step_is_not_a_slope() {
        let pts: Vec<(f64, f64)> = (0..100).map(|i| (i as f64, if i < 30 { 10.0 } else { 14.0 })).collect();
        assert!(slope(&pts) > 0.01);
        assert_eq!(median_slope(&pts), 0.0);
    }

    #[test]
    fn calls_are_new_and_numbers_cycle() {
        assert_ne!(call_event(1, 1, 0), call_event(1, 2, 0));
        assert_eq!(
            call_event(1, 1, 0).replace("000000000001", ""),
            call_event(1, 10_001, 0).replace("000000002711", "")
        );
        for (i, ty) in CALL.iter().enumerate() {
            let v: serde_json::Value = serde_json::from_str(&call_event(7, 42, i)).unwrap();
            assert_eq!(v["type"], *ty);
        }
    }
}

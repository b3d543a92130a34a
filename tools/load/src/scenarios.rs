//! The scenarios of BENCHMARKS.md (performance.md §7), each measured against
//! its baseline in the same run, A/B interleaved where that applies. Each
//! prints its details and then exactly one summary line:
//!
//! `scenario=<id> metric=<name> ours=<v> baseline=<name>:<v> ratio=<v> target=<v> meets=<yes|no>`
//!
//! `ratio` is ours/baseline for higher-is-better metrics and baseline/ours
//! for lower-is-better ones, so a larger ratio is always better.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use tonic::transport::Channel;

use crate::client::{self, Control, Frame, Requests, Stream, SubReport, Unary, UnaryResult};
use crate::payloads::{self, Fixture};
use crate::procs::{self, Nats, Pin, Server, ServerSpec};

/// Settings shared by every scenario.
#[derive(Clone, Debug)]
pub struct Ctx {
    /// The `switchboard` binary.
    pub server_bin: PathBuf,
    /// The `nats-server` binary.
    pub nats_bin: PathBuf,
    /// `tests/fixtures`.
    pub fixtures: PathBuf,
    /// Scratch space for data directories.
    pub work_dir: PathBuf,
    /// Pinning of the servers.
    pub pin: Pin,
    /// HTTP/2 connections for unary load and for subscribers.
    pub channels: usize,
    /// Measured window per run.
    pub window: Duration,
    /// Warmup per run.
    pub warmup: Duration,
    /// A/B pairs.
    pub pairs: usize,
}

/// One summary line.
pub struct Summary {
    pub scenario: &'static str,
    pub metric: String,
    pub ours: f64,
    pub baseline_name: String,
    pub baseline: f64,
    pub ratio: f64,
    pub target: f64,
    /// Extra conditions besides `ratio >= target` (all must hold).
    pub checks: Vec<(String, bool)>,
}

impl Summary {
    /// Whether the target and every check are met.
    pub fn meets(&self) -> bool {
        self.ratio.is_finite() && self.ratio >= self.target && self.checks.iter().all(|(_, ok)| *ok)
    }

    /// The summary line.
    pub fn line(&self) -> String {
        format!(
            "scenario={} metric={} ours={} baseline={}:{} ratio={:.3} target={} meets={}",
            self.scenario,
            self.metric,
            fmt(self.ours),
            self.baseline_name,
            fmt(self.baseline),
            self.ratio,
            self.target,
            if self.meets() { "yes" } else { "no" }
        )
    }
}

fn fmt(v: f64) -> String {
    if v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.4}")
    }
}

pub(crate) fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// The per-pair results of an A/B scenario; the summary reports the
/// medians (performance.md §4.2: interleaved pairs, median of ratios).
#[derive(Default)]
struct Pairs {
    ours: Vec<f64>,
    base: Vec<f64>,
    ratios: Vec<f64>,
}

impl Pairs {
    fn push(&mut self, ours: f64, base: f64, ratio: f64) {
        self.ours.push(ours);
        self.base.push(base);
        self.ratios.push(ratio);
    }

    fn summary(
        self,
        scenario: &'static str,
        metric: impl Into<String>,
        baseline_name: &str,
        target: f64,
        checks: Vec<(String, bool)>,
    ) -> Summary {
        Summary {
            scenario,
            metric: metric.into(),
            ours: median(self.ours),
            baseline_name: baseline_name.into(),
            baseline: median(self.base),
            ratio: median(self.ratios),
            target,
            checks,
        }
    }
}

/// The store's group-commit counters (commits, acknowledged ingests), from
/// one scrape.
fn group_commits(server: &Server) -> (f64, f64) {
    let [commits, acks] =
        server.metric_sums(["switchboard_store_group_size_count", "switchboard_store_group_size_sum"]);
    (commits, acks)
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

fn lat(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {:.3} ms, p99 {:.3} ms, p99.9 {:.3} ms, max {:.3} ms (n={})",
        ms(h, 0.5),
        ms(h, 0.99),
        ms(h, 0.999),
        h.max() as f64 / 1000.0,
        h.len()
    )
}

/// CPU used by the server and by this process while `f` runs.
pub(crate) struct Cpu {
    server_us: u64,
    client_us: u64,
    wall: Duration,
}

impl Cpu {
    fn cores(us: u64, wall: Duration) -> f64 {
        us as f64 / 1e6 / wall.as_secs_f64()
    }

    fn describe(&self) -> String {
        format!(
            "server {:.2} cores, client {:.2} cores",
            Cpu::cores(self.server_us, self.wall),
            Cpu::cores(self.client_us, self.wall)
        )
    }
}

pub(crate) async fn with_cpu<T>(pid: u32, f: impl std::future::Future<Output = T>) -> (T, Cpu) {
    let me = std::process::id();
    let (s0, c0, t0) = (procs::cpu_micros(pid), procs::cpu_micros(me), Instant::now());
    let out = f.await;
    let cpu = Cpu {
        server_us: procs::cpu_micros(pid).saturating_sub(s0),
        client_us: procs::cpu_micros(me).saturating_sub(c0),
        wall: t0.elapsed(),
    };
    (out, cpu)
}

impl Ctx {
    /// An empty scratch directory `name` (what a previous run left is gone).
    pub(crate) fn fresh_dir(&self, name: &str) -> anyhow::Result<PathBuf> {
        let dir = self.work_dir.join(name);
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        Ok(dir)
    }

    pub(crate) fn spec(&self, store: &str, name: &str, extra: &[&str]) -> anyhow::Result<ServerSpec> {
        let dir = self.fresh_dir(name)?;
        Ok(ServerSpec {
            bin: self.server_bin.clone(),
            store: store.into(),
            data_dir: dir,
            args: extra.iter().map(|s| s.to_string()).collect(),
            pin: self.pin.clone(),
        })
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{}; {} channels; warmup {:?}, window {:?}, {} pair(s)",
            self.pin.describe(),
            self.channels,
            self.warmup,
            self.window,
            self.pairs
        )
    }
}

/// Sends three distinct renderings of every fixture, keeps the fixtures all
/// three of which were ACCEPTED, and captures the updates they produced (the
/// baselines stream those same events).
pub async fn prepare(server: &Server, fixtures: Vec<Fixture>, first: u64) -> anyhow::Result<Arc<Requests>> {
    let ch = client::channels(server.grpc, 1).await?.remove(0);
    let mut capture = CallServiceClient::new(ch.clone()).subscribe(pb::SubscribeRequest::default()).await?.into_inner();
    let mut ingest = IngestServiceClient::new(ch);
    let mut n = first;
    let mut kept = Vec::new();
    let mut events = 0usize;
    let mut dropped = Vec::new();
    for f in fixtures {
        let mut ok = true;
        for _ in 0..3 {
            n += 1;
            match ingest.ingest(f.request(n)).await {
                Ok(r) => {
                    let r = r.into_inner();
                    events += r.events.len();
                    if r.outcome != pb::IngestOutcome::Accepted as i32 {
                        ok = false;
                    }
                }
                Err(_) => ok = false,
            }
        }
        if ok { kept.push(f) } else { dropped.push(f.name.clone()) }
    }
    let mut updates = Vec::with_capacity(events);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while updates.len() < events {
        let msg = tokio::select! {
            m = capture.next() => m,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match msg {
            Some(Ok(pb::SubscribeResponse { response: Some(pb::subscribe_response::Response::Update(u)) })) => {
                updates.push(u)
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    let vendors: std::collections::BTreeSet<&str> =
        kept.iter().map(|f| f.name.split('/').next().unwrap_or("")).collect();
    println!(
        "  payloads: {} fixtures ACCEPTED as distinct requests ({} vendors: {}); {} dropped{}",
        kept.len(),
        vendors.len(),
        vendors.into_iter().collect::<Vec<_>>().join(", "),
        dropped.len(),
        if dropped.is_empty() { String::new() } else { format!(" ({})", dropped.join(", ")) }
    );
    anyhow::ensure!(!updates.is_empty(), "no updates captured from the probe");
    let sizes: Vec<f64> = kept.iter().map(|f| f.payload(n + 1).len() as f64).collect();
    println!(
        "  payload bytes: median {:.0}, min {:.0}, max {:.0}; captured {} update frames for the baselines",
        median(sizes.clone()),
        sizes.iter().cloned().fold(f64::INFINITY, f64::min),
        sizes.iter().cloned().fold(0.0, f64::max),
        updates.len()
    );
    let mut reqs = Requests::new(payloads::interleave(kept), n + 1);
    reqs.updates = updates;
    Ok(Arc::new(reqs))
}

pub(crate) fn check_unary(name: &str, r: &UnaryResult, ingest: bool) -> Vec<(String, bool)> {
    let mut checks = vec![(format!("{name}: no errors"), r.errors == 0)];
    if ingest {
        checks.push((format!("{name}: ≥ 99% ACCEPTED"), r.accepted_share() >= 0.99));
    }
    checks
}

pub(crate) fn print_unary(label: &str, r: &UnaryResult, cpu: &Cpu) {
    println!(
        "  {label:<22} {:>8.0} req/s{}; {}; server {:.1} µs/req; {}; accepted {:.2}%{}{}",
        r.rate(),
        if r.events > 0 {
            format!(" ({:.0} events/s)", r.events as f64 / r.elapsed.as_secs_f64())
        } else {
            String::new()
        },
        lat(&r.latency),
        cpu.server_us as f64 / r.total_ok.max(1) as f64,
        cpu.describe(),
        r.accepted_share() * 100.0,
        if r.not_accepted > 0 { format!(", {} not accepted", r.not_accepted) } else { String::new() },
        match &r.first_error {
            Some(e) => format!(", {} errors (first: {e})", r.errors),
            None => String::new(),
        }
    );
}

/// S1 (memory store, non-durable ack) and S2 (sqlite, durable group commit):
/// Ingest vs Noop throughput at concurrency C, same client, same bytes.
pub async fn unary(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    durable: bool,
    concurrency: usize,
    sweep: &[usize],
) -> anyhow::Result<Summary> {
    let (id, store) = if durable { ("S2", "sqlite") } else { ("S1", "memory") };
    println!(
        "{id}: Ingest ({store} store{}) vs no-op unary, closed loop C={concurrency}; {}",
        if durable { ", durable group commit" } else { "" },
        ctx.describe()
    );
    let server = Server::start(&ctx.spec(store, &id.to_lowercase(), &[])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    let chans = client::channels(server.grpc, ctx.channels).await?;
    let pid = server.pid();
    let mut pairs = Pairs::default();
    let mut efficiencies = Vec::new();
    let mut checks = Vec::new();
    for pair in 0..ctx.pairs {
        let (b, bcpu) =
            with_cpu(pid, client::closed_loop(Unary::Noop, &chans, reqs.clone(), concurrency, ctx.warmup, ctx.window))
                .await;
        print_unary(&format!("pair {} no-op", pair + 1), &b, &bcpu);
        let (commits0, acks0) = group_commits(&server);
        let (o, ocpu) = with_cpu(
            pid,
            client::closed_loop(Unary::Ingest, &chans, reqs.clone(), concurrency, ctx.warmup, ctx.window),
        )
        .await;
        print_unary(&format!("pair {} Ingest", pair + 1), &o, &ocpu);
        if durable {
            let (commits, acks) = group_commits(&server);
            let (commits, acks) = (commits - commits0, acks - acks0);
            println!("  {:<22} {:.1} acks per commit (fsync), {commits:.0} commits", "", acks / commits.max(1.0));
        }
        checks.extend(check_unary("no-op", &b, false));
        checks.extend(check_unary("Ingest", &o, true));
        let b_us = bcpu.server_us as f64 / b.total_ok.max(1) as f64;
        let o_us = ocpu.server_us as f64 / o.total_ok.max(1) as f64;
        efficiencies.push(b_us / o_us);
        pairs.push(o.rate(), b.rate(), o.rate() / b.rate());
    }
    let spread = |v: &[f64]| {
        let lo = v.iter().cloned().fold(f64::INFINITY, f64::min);
        let hi = v.iter().cloned().fold(0.0, f64::max);
        (lo, hi)
    };
    let (blo, bhi) = spread(&pairs.base);
    if bhi > blo * 1.10 {
        println!(
            "  note: no-op runs differ by {:.0}% (> 10%): a noisy neighbour; read the ratio with care",
            (bhi / blo - 1.0) * 100.0
        );
    }
    let (rlo, rhi) = spread(&pairs.ratios);
    println!(
        "  throughput ratio D = Ingest/no-op: median {:.3} (spread {rlo:.3}..{rhi:.3}); CPU efficiency E = no-op µs/req ÷ Ingest µs/req: median {:.3}",
        median(pairs.ratios.clone()),
        median(efficiencies)
    );
    if durable && !sweep.is_empty() {
        let mut per_commit = Vec::new();
        for &c in sweep {
            let (commits0, acks0) = group_commits(&server);
            let (o, ocpu) =
                with_cpu(pid, client::closed_loop(Unary::Ingest, &chans, reqs.clone(), c, ctx.warmup, ctx.window))
                    .await;
            let (commits, acks) = group_commits(&server);
            let (commits, acks) = (commits - commits0, acks - acks0);
            let apc = acks / commits.max(1.0);
            print_unary(&format!("C={c} Ingest"), &o, &ocpu);
            println!(
                "  {:<22} {apc:.1} acks per commit (fsync), {:.0} fsyncs/s",
                "",
                commits / ocpu.wall.as_secs_f64()
            );
            checks.extend(check_unary(&format!("Ingest C={c}"), &o, true));
            per_commit.push((c, apc));
        }
        let grows = per_commit.windows(2).all(|w| w[1].1 > w[0].1);
        println!(
            "  acks per fsync by concurrency: {}",
            per_commit.iter().map(|(c, a)| format!("C={c}: {a:.1}")).collect::<Vec<_>>().join(", ")
        );
        checks.push(("acks per fsync grow with concurrency".into(), grows));
    }
    server.stop();
    Ok(pairs.summary(id, format!("ingest_rps_c{concurrency}"), "noop_unary", 0.6, checks))
}

/// What one fan-out run measured.
struct FanOut {
    publish: UnaryResult,
    subs: Vec<SubReport>,
    expected: u64,
    cpu: Cpu,
    /// The server's RSS as the run began (before its subscribers opened).
    rss_start_kib: u64,
    rss_max_kib: u64,
    /// The anonymous part of it (`RssAnon`: heap, queues, transport
    /// buffers), without the database pages SQLite's readers map.
    anon_start_kib: u64,
    anon_max_kib: u64,
    lag_detect: Option<Duration>,
}

impl FanOut {
    fn latency(&self, slow: Option<bool>) -> Histogram<u64> {
        let mut h = client::histogram();
        for s in self.subs.iter().filter(|s| slow.is_none_or(|x| x == s.slow)) {
            let _ = h.add(&s.latency);
        }
        h
    }

    fn delivered(&self) -> u64 {
        self.subs.iter().map(|s| s.updates).sum()
    }

    /// Loss and order: strict per subscriber for the log (ours), by count for
    /// the baselines (their frames carry the client's numbering).
    fn loss(&self, strict: bool, slow: Option<bool>) -> (u64, u64, usize) {
        let mut missing = 0;
        let mut disorder = 0;
        let mut errors = 0;
        for s in self.subs.iter().filter(|s| slow.is_none_or(|x| x == s.slow)) {
            if strict {
                missing += client::missing(s, self.expected) + s.gaps;
                disorder += s.disorder;
            } else {
                missing += self.expected.saturating_sub(s.updates);
            }
            if s.error.is_some() {
                errors += 1;
            }
        }
        (missing, disorder, errors)
    }
}

/// Which system a fan-out run drives.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum System {
    /// Ingest → Subscribe.
    Ours,
    /// NoopPublish → NoopSubscribe (B2).
    Noop,
}

struct FanOutSpec {
    subscribers: usize,
    slow: usize,
    rate: f64,
    window: Duration,
    /// How long slow subscribers stay stalled after the window ends (they
    /// resume then and must catch up).
    catch_up: Duration,
    /// Ingest on this server instead of the subscribers' one (another
    /// replica on the same NATS).
    ingest_at: Option<std::net::SocketAddr>,
}

/// One fan-out run: `subscribers` streams (the slow ones on their own
/// connections with a small receive window), open-loop publishing at `rate`.
async fn fan_out(
    ctx: &Ctx,
    server: &Server,
    reqs: &Arc<Requests>,
    system: System,
    spec: &FanOutSpec,
) -> anyhow::Result<FanOut> {
    let (rss_start_kib, anon_start_kib) = procs::rss_and_anon_kib(server.pid());
    let k = ctx.channels.max(spec.subscribers.div_ceil(500));
    let chans = client::channels(server.grpc, k).await?;
    let slow_chans = if spec.slow > 0 {
        client::channels_with(server.grpc, spec.slow.div_ceil(5).max(1), Some(64 * 1024)).await?
    } else {
        Vec::new()
    };
    let pub_chans = client::channels(spec.ingest_at.unwrap_or(server.grpc), ctx.channels).await?;
    let ctl = Control::new();
    let horizon = ctx.warmup + spec.window + spec.catch_up + Duration::from_secs(30);
    if spec.slow == 0 {
        // Nobody stalls (Control starts with slow readers stalled).
        ctl.resume_at_ns.store(0, Ordering::Relaxed);
    }
    let deadline = tokio::time::Instant::now() + horizon;
    let which = match system {
        System::Ours => Stream::Subscribe,
        System::Noop => Stream::Noop,
    };
    let mut subs = Vec::with_capacity(spec.subscribers);
    for i in 0..spec.subscribers {
        let slow = i < spec.slow;
        let ch = if slow { &slow_chans[i % slow_chans.len()] } else { &chans[i % chans.len()] };
        let stream = client::open_stream(ch, &which).await.context("opening a subscriber")?;
        subs.push(tokio::spawn(client::subscriber(stream, ctl.clone(), slow, deadline)));
    }
    // Let every stream reach the live path.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let pid = server.pid();
    let lagged0 = server.metric("switchboard_subscriber_lagged_total");
    ctl.measure_from_ns.store(client::now_ns() + ctx.warmup.as_nanos() as u64, Ordering::Relaxed);
    let kind = match system {
        System::Ours => Unary::Ingest,
        System::Noop => Unary::Publish,
    };
    let stall_from = Instant::now();
    let watching = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let watch = {
        let metrics = server.metrics;
        let slow = spec.slow as f64;
        let watching = watching.clone();
        tokio::spawn(async move {
            let (mut rss_max, mut anon_max) = (0, 0);
            let mut detected = None;
            while watching.load(Ordering::Relaxed) {
                let (rss, anon) = procs::rss_and_anon_kib(pid);
                (rss_max, anon_max) = (rss_max.max(rss), anon_max.max(anon));
                if slow > 0.0 && detected.is_none() {
                    let text = tokio::task::spawn_blocking(move || procs::scrape(metrics)).await;
                    if let Ok(Ok(text)) = text
                        && procs::metric_sum(&text, "switchboard_subscriber_lagged_total") - lagged0 >= slow
                    {
                        detected = Some(stall_from.elapsed());
                    }
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            (rss_max, anon_max, detected)
        })
    };
    let fast_from = spec.slow;
    let ((publish, expected), cpu) = with_cpu(pid, async {
        let publish = client::open_loop(kind, &pub_chans, reqs.clone(), spec.rate, ctx.warmup, spec.window).await;
        let expected = match system {
            System::Ours => publish.max_sequence,
            System::Noop => publish.total_ok,
        };
        // Drain: the fast subscribers should have everything within moments.
        let want = (spec.subscribers - spec.slow) as u64 * expected;
        if system == System::Ours {
            ctl.stop_at_sequence.store(expected, Ordering::Relaxed);
        }
        let drain_until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < drain_until {
            let done = match system {
                System::Noop => ctl.received.load(Ordering::Relaxed) >= want,
                System::Ours => subs[fast_from..].iter().all(|h| h.is_finished()),
            };
            if done {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        (publish, expected)
    })
    .await;
    if system == System::Noop {
        // Baseline frames carry the client's numbering: stop everyone once
        // the counts are in (or the drain timed out).
        ctl.stop_at_sequence.store(0, Ordering::Relaxed);
    }
    if spec.slow > 0 {
        // Keep the slow ones stalled until the catch-up point, then let them
        // read: they continue from the log.
        let resume = stall_from + ctx.warmup + spec.window + spec.catch_up;
        tokio::time::sleep_until(resume.into()).await;
    }
    ctl.resume_at_ns.store(0, Ordering::Relaxed);
    let mut reports = Vec::with_capacity(subs.len());
    for h in subs {
        reports.push(h.await?);
    }
    watching.store(false, Ordering::Relaxed);
    let (rss_max, anon_max, detected) = watch.await.unwrap_or_else(|_| {
        let (rss, anon) = procs::rss_and_anon_kib(pid);
        (rss, anon, None)
    });
    Ok(FanOut {
        publish,
        subs: reports,
        expected,
        cpu,
        rss_start_kib,
        rss_max_kib: rss_max,
        anon_start_kib,
        anon_max_kib: anon_max,
        lag_detect: detected,
    })
}

fn print_fan_out(label: &str, f: &FanOut, strict: bool) {
    let (missing, disorder, errors) = f.loss(strict, None);
    println!(
        "  {label:<26} publish {:.0}/s (p99 {:.3} ms, {} errors); delivered {} ({:.0}/s); e2e {}; {}; server {:.2} µs/delivery; loss {missing}, disorder {disorder}, ended early {errors}; RSS max {:.1} MiB",
        f.publish.rate(),
        ms(&f.publish.latency, 0.99),
        f.publish.errors,
        f.delivered(),
        f.delivered() as f64 / f.cpu.wall.as_secs_f64(),
        lat(&f.latency(None)),
        f.cpu.describe(),
        f.cpu.server_us as f64 / f.delivered().max(1) as f64,
        f.rss_max_kib as f64 / 1024.0
    );
}

/// S4: end-to-end ingest → subscriber latency at `rate` with `subscribers`,
/// against the no-op stream at the same load plus the Ingest p99.
pub async fn e2e(ctx: &Ctx, fixtures: Vec<Fixture>, rate: f64, subscribers: usize) -> anyhow::Result<Summary> {
    println!(
        "S4: e2e Ingest → {subscribers} subscribers at {rate:.0} req/s (sqlite) vs no-op stream; {}",
        ctx.describe()
    );
    let server = Server::start(&ctx.spec("sqlite", "s4", &[])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    let spec = FanOutSpec { subscribers, slow: 0, rate, window: ctx.window, catch_up: Duration::ZERO, ingest_at: None };
    let mut ours_p99 = Vec::new();
    let mut bounds = Vec::new();
    let mut checks = Vec::new();
    for pair in 0..ctx.pairs {
        let b = fan_out(ctx, &server, &reqs, System::Noop, &spec).await?;
        print_fan_out(&format!("pair {} no-op stream", pair + 1), &b, false);
        let o = fan_out(ctx, &server, &reqs, System::Ours, &spec).await?;
        print_fan_out(&format!("pair {} Ingest+Subscribe", pair + 1), &o, true);
        let (missing, disorder, errors) = o.loss(true, None);
        checks.push((format!("pair {}: zero loss", pair + 1), missing == 0 && errors == 0));
        checks.push((format!("pair {}: order kept", pair + 1), disorder == 0));
        checks.extend(check_unary("Ingest", &o.publish, true));
        checks.extend(check_unary("NoopPublish", &b.publish, false));
        let bound = ms(&b.latency(None), 0.99) + ms(&o.publish.latency, 0.99) + 2.0;
        println!(
            "  pair {}: bound = no-op stream p99 {:.3} + Ingest p99 {:.3} + 2 ms = {bound:.3} ms; ours e2e p99 {:.3} ms",
            pair + 1,
            ms(&b.latency(None), 0.99),
            ms(&o.publish.latency, 0.99),
            ms(&o.latency(None), 0.99)
        );
        ours_p99.push(ms(&o.latency(None), 0.99));
        bounds.push(bound);
    }
    server.stop();
    let (ours, bound) = (median(ours_p99), median(bounds));
    Ok(Summary {
        scenario: "S4",
        metric: "e2e_p99_ms".into(),
        ours,
        baseline_name: "noop_stream_p99+ingest_p99+2ms".into(),
        baseline: bound,
        ratio: bound / ours,
        target: 1.0,
        checks,
    })
}

/// S5: server CPU per delivery at a fixed delivered rate across subscriber
/// counts, against nats-server core pub/sub and the no-op stream.
pub async fn fan_out_cpu(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    counts: &[usize],
    deliveries: f64,
) -> anyhow::Result<Summary> {
    println!(
        "S5: fan-out CPU per delivery at {deliveries:.0} deliveries/s, N ∈ {counts:?}; vs nats-server core and the no-op stream; {}",
        ctx.describe()
    );
    let server = Server::start(&ctx.spec("sqlite", "s5", &[])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    let nats = Nats::start(&ctx.nats_bin, &ctx.pin)?;
    let mut ratios = Vec::new();
    let mut ours_us = Vec::new();
    let mut nats_us = Vec::new();
    let mut checks = Vec::new();
    for &n in counts {
        let rate = deliveries / n as f64;
        let spec =
            FanOutSpec { subscribers: n, slow: 0, rate, window: ctx.window, catch_up: Duration::ZERO, ingest_at: None };
        let b = fan_out(ctx, &server, &reqs, System::Noop, &spec).await?;
        print_fan_out(&format!("N={n} no-op stream"), &b, false);
        let o = fan_out(ctx, &server, &reqs, System::Ours, &spec).await?;
        print_fan_out(&format!("N={n} Ingest+Subscribe"), &o, true);
        let p = nats_run(ctx, &nats, &reqs, n, rate).await?;
        print_fan_out(&format!("N={n} nats-server"), &p, false);
        let per = |f: &FanOut| f.cpu.server_us as f64 / f.delivered().max(1) as f64;
        let (o_us, b_us, p_us) = (per(&o), per(&b), per(&p));
        println!(
            "  N={n}: µs/delivery ours {o_us:.2}, no-op stream {b_us:.2} (ours/no-op {:.2}), nats {p_us:.2} (nats/ours {:.3})",
            o_us / b_us,
            p_us / o_us
        );
        let (missing, disorder, errors) = o.loss(true, None);
        checks.push((format!("N={n}: zero loss, order kept"), missing == 0 && disorder == 0 && errors == 0));
        ratios.push(p_us / o_us);
        ours_us.push(o_us);
        nats_us.push(p_us);
    }
    drop(nats);
    server.stop();
    if ours_us.len() >= 2 {
        let (first, last) = (ours_us[0], ours_us[ours_us.len() - 1]);
        println!(
            "  linearity: µs/delivery at N={} is {:.2}× that at N={}",
            counts[counts.len() - 1],
            last / first,
            counts[0]
        );
        checks.push(("cost per delivery does not rise with N (≤ 1.2×)".into(), last <= first * 1.2));
    }
    let worst =
        ratios.iter().cloned().enumerate().fold((0, f64::INFINITY), |a, (i, r)| if r < a.1 { (i, r) } else { a });
    Ok(Summary {
        scenario: "S5",
        metric: format!("server_cpu_us_per_delivery_n{}", counts[worst.0]),
        ours: ours_us[worst.0],
        baseline_name: "nats_server".into(),
        baseline: nats_us[worst.0],
        ratio: worst.1,
        target: 0.667,
        checks,
    })
}

async fn nats_run(ctx: &Ctx, nats: &Nats, reqs: &Arc<Requests>, n: usize, rate: f64) -> anyhow::Result<FanOut> {
    let k = ctx.channels.max(n.div_ceil(500));
    let ctl = Control::new();
    let deadline = tokio::time::Instant::now() + ctx.warmup + ctx.window + Duration::from_secs(30);
    let subject = "switchboard.bench";
    let tasks = client::nats_subscribers(&nats.url, subject, n, k, ctl.clone(), deadline).await?;
    tokio::time::sleep(Duration::from_millis(300)).await;
    ctl.measure_from_ns.store(client::now_ns() + ctx.warmup.as_nanos() as u64, Ordering::Relaxed);
    let pid = nats.pid();
    let (published, cpu) = with_cpu(pid, async {
        let published = client::nats_publish(&nats.url, subject, reqs.clone(), rate, ctx.warmup, ctx.window).await;
        let want = published.as_ref().map_or(0, |p| *p * n as u64);
        let until = Instant::now() + Duration::from_secs(5);
        while Instant::now() < until && ctl.received.load(Ordering::Relaxed) < want {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        published
    })
    .await;
    let published = published?;
    ctl.stop_at_sequence.store(0, Ordering::Relaxed);
    let mut subs = Vec::with_capacity(n);
    for t in tasks {
        subs.push(t.await?);
    }
    let publish = UnaryResult {
        done: published,
        accepted: published,
        not_accepted: 0,
        errors: 0,
        first_error: None,
        latency: client::histogram(),
        elapsed: ctx.warmup + ctx.window,
        max_sequence: published,
        events: published,
        total_ok: published,
    };
    let (rss, anon) = procs::rss_and_anon_kib(pid);
    Ok(FanOut {
        publish,
        subs,
        expected: published,
        cpu,
        rss_start_kib: rss,
        rss_max_kib: rss,
        anon_start_kib: anon,
        anon_max_kib: anon,
        lag_detect: None,
    })
}

/// S6(a): resident memory per idle stream with `n` streams over `k`
/// connections, ours (Subscribe) vs the no-op stream, each in a fresh server.
pub async fn idle_memory(ctx: &Ctx, n: usize, k: usize, idle: Duration) -> anyhow::Result<Summary> {
    println!(
        "S6(a): {n} idle streams over {k} connections, idle {idle:?}; Subscribe vs no-op stream; {}",
        ctx.describe()
    );
    let mut per = [0.0f64; 2];
    for (i, system) in [System::Noop, System::Ours].into_iter().enumerate() {
        let server = Server::start(&ctx.spec("sqlite", "s6a", &[])?)?;
        let pid = server.pid();
        let chans = client::channels(server.grpc, k).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let before = procs::rss_kib(pid);
        let which = if system == System::Ours { Stream::Subscribe } else { Stream::Noop };
        let opened = Instant::now();
        let streams: Vec<_> = futures_util::stream::iter(0..n)
            .map(|i| {
                let ch = chans[i % k].clone();
                let which = which.clone();
                async move { client::open_stream(&ch, &which).await }
            })
            .buffer_unordered(256)
            .collect()
            .await;
        let ok = streams.iter().filter(|s| s.is_ok()).count();
        let open_time = opened.elapsed();
        tokio::time::sleep(idle).await;
        let after = procs::rss_kib(pid);
        per[i] = (after.saturating_sub(before)) as f64 / ok.max(1) as f64;
        println!(
            "  {:<18} {ok}/{n} streams open in {:.1} s; RSS {:.1} → {:.1} MiB: {:.2} KiB per stream",
            if system == System::Ours { "Subscribe" } else { "no-op stream" },
            open_time.as_secs_f64(),
            before as f64 / 1024.0,
            after as f64 / 1024.0,
            per[i]
        );
        if ok < n {
            if let Some(Err(e)) = streams.iter().find(|s| s.is_err()) {
                println!("  first failure: {e:#}");
            }
            bail!("only {ok} of {n} streams opened");
        }
        drop(streams);
        server.stop();
    }
    let (b2, ours) = (per[0], per[1]);
    Ok(Summary {
        scenario: "S6a",
        metric: "idle_rss_kib_per_stream".into(),
        ours,
        baseline_name: "noop_stream".into(),
        baseline: b2,
        ratio: b2 / ours,
        target: 0.667,
        checks: vec![("≤ 8 KiB per idle stream".into(), ours <= 8.0)],
    })
}

/// S7: `slow_percent` of `subscribers` stop reading while ingest goes on at
/// `rate`; compared with the same load all fast.
pub async fn slow(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    subscribers: usize,
    slow_percent: usize,
    rate: f64,
    stall: Duration,
) -> anyhow::Result<Summary> {
    let n_slow = (subscribers * slow_percent).div_ceil(100);
    println!(
        "S7: {subscribers} subscribers, {n_slow} of them stop reading for {stall:?}, Ingest at {rate:.0} req/s (sqlite); vs all fast; {}",
        ctx.describe()
    );
    let server = Server::start(&ctx.spec("sqlite", "s7", &[])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    // Memory allowance per slow subscriber: its live queue (records of about
    // the captured frame size) plus the transport's buffers (h2 send buffer
    // 400 KiB, 64 KiB receive window, socket buffers).
    let frame_kib = reqs.update_bytes(0, 0, 0, true).len() as f64 / 1024.0;
    let allowance_kib = n_slow as f64 * (1024.0 * frame_kib + 2048.0);
    let fast = FanOutSpec { subscribers, slow: 0, rate, window: stall, catch_up: Duration::ZERO, ingest_at: None };
    let with_slow = FanOutSpec {
        subscribers,
        slow: n_slow,
        rate,
        window: stall,
        catch_up: Duration::from_secs(1),
        ingest_at: None,
    };
    let (mut pairs, mut ingest_ok) = (Pairs::default(), Vec::new());
    let mut checks = Vec::new();
    for pair in 1..=ctx.pairs {
        let a = fan_out(ctx, &server, &reqs, System::Ours, &fast).await?;
        print_fan_out(&format!("pair {pair} all fast"), &a, true);
        let b = fan_out(ctx, &server, &reqs, System::Ours, &with_slow).await?;
        print_fan_out(&format!("pair {pair} {slow_percent}% slow"), &b, true);
        let (a_p99, b_p99) = (ms(&a.latency(None), 0.99), ms(&b.latency(Some(false)), 0.99));
        let (a_ing, b_ing) = (ms(&a.publish.latency, 0.99), ms(&b.publish.latency, 0.99));
        let (slow_missing, slow_disorder, slow_errors) = b.loss(true, Some(true));
        let (fast_missing, fast_disorder, _) = b.loss(true, Some(false));
        let slow_caught_up = b.subs.iter().filter(|s| s.slow && s.last >= b.expected).count();
        // What the slow subscribers hold is what the run with them grew
        // beyond what the same run grew all fast: the server's caches (the
        // log's hot tail, SQLite's pages) grow through the whole scenario
        // with the log, and would otherwise count against the later run.
        // Anonymous memory only: the database pages SQLite's readers map
        // (`mmap_size`) are the kernel's file cache, and they arrive in a
        // step when a checkpoint grows the file (about 24 MiB at once in
        // pair 3), on either side of a run's first sample.
        let growth = |f: &FanOut| f.anon_max_kib.saturating_sub(f.anon_start_kib) as f64;
        let rss_extra = growth(&b) - growth(&a);
        println!("  pair {pair}: fast subscribers' e2e p99: all fast {a_p99:.3} ms, with slow {b_p99:.3} ms");
        println!("  pair {pair}: Ingest p99: all fast {a_ing:.3} ms, with slow {b_ing:.3} ms");
        println!(
            "  pair {pair}: slow subscribers detected (moved to the log) {}; {slow_caught_up}/{n_slow} caught up; loss {slow_missing}, disorder {slow_disorder}, ended early {slow_errors}",
            match b.lag_detect {
                Some(d) => format!("after {:.1} s", d.as_secs_f64()),
                None => "never".into(),
            }
        );
        println!(
            "  pair {pair}: RSS all fast {:.1} → max {:.1} MiB, with slow {:.1} → max {:.1} MiB; anonymous all fast {:.1} → max {:.1} MiB, with slow {:.1} → max {:.1} MiB (grew {:+.1} MiB more; allowance {:.1} MiB)",
            a.rss_start_kib as f64 / 1024.0,
            a.rss_max_kib as f64 / 1024.0,
            b.rss_start_kib as f64 / 1024.0,
            b.rss_max_kib as f64 / 1024.0,
            a.anon_start_kib as f64 / 1024.0,
            a.anon_max_kib as f64 / 1024.0,
            b.anon_start_kib as f64 / 1024.0,
            b.anon_max_kib as f64 / 1024.0,
            rss_extra / 1024.0,
            allowance_kib / 1024.0
        );
        checks.extend([
            (format!("pair {pair}: fast subscribers lose nothing, in order"), fast_missing == 0 && fast_disorder == 0),
            (
                format!("pair {pair}: slow subscribers catch up from the log with zero loss, in order"),
                slow_missing == 0 && slow_disorder == 0 && slow_errors == 0 && slow_caught_up == n_slow,
            ),
            (
                format!("pair {pair}: every slow subscriber detected within 10 s"),
                b.lag_detect.is_some_and(|d| d <= Duration::from_secs(10) + ctx.warmup),
            ),
            (
                format!("pair {pair}: Ingest no errors, ≥ 99% ACCEPTED"),
                b.publish.errors == 0 && b.publish.accepted_share() >= 0.99,
            ),
            (
                format!("pair {pair}: anonymous RSS bounded by the per-slow-subscriber allowance"),
                rss_extra <= allowance_kib,
            ),
        ]);
        ingest_ok.push((a_ing * 1.5 + 1.0) / b_ing);
        pairs.push(b_p99, a_p99, a_p99 / b_p99);
    }
    server.stop();
    checks.push((
        "Ingest p99 with slow ≤ 1.5 × all fast + 1 ms (ingest never blocks; median of pairs)".into(),
        median(ingest_ok) >= 1.0,
    ));
    Ok(pairs.summary("S7", "fast_sub_e2e_p99_ms", "all_fast", 0.667, checks))
}

/// S8: replay of the whole log through Subscribe (from the beginning) vs the
/// no-op stream's single-stream rate replaying pre-encoded frames from memory.
pub async fn replay(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    data_dir: Option<PathBuf>,
    min_events: u64,
) -> anyhow::Result<Summary> {
    println!("S8: replay from the log (sqlite) vs no-op stream single-stream rate; {}", ctx.describe());
    let mut spec = ctx.spec("sqlite", "s8", &[])?;
    if let Some(dir) = data_dir {
        spec.data_dir = dir;
    }
    let server = Server::start(&spec)?;
    // A reused log (S2's, or an earlier S8's) holds earlier ids: number
    // these above S2's and apart from other runs (ids carry the low 32 bits
    // of the request number).
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let reqs = prepare(&server, fixtures, 0x8000_0000 + (secs % 100_000) * 10_000).await?;
    let ch = client::channels(server.grpc, 1).await?.remove(0);
    let mut last = log_last(&ch).await?;
    if last < min_events {
        println!("  log holds {last} events; ingesting up to {min_events}");
        let chans = client::channels(server.grpc, ctx.channels).await?;
        while last < min_events {
            let r =
                client::closed_loop(Unary::Ingest, &chans, reqs.clone(), 64, Duration::ZERO, Duration::from_secs(2))
                    .await;
            anyhow::ensure!(r.errors == 0, "preload failed: {:?}", r.first_error);
            last = last.max(r.max_sequence);
        }
    }
    println!("  log holds {last} events");
    let pid = server.pid();
    let mut pairs = Pairs::default();
    let update = {
        let mut v: Vec<_> = (0..reqs.updates.len() as u64).map(|i| reqs.update_bytes(i, 1, 0, false)).collect();
        v.sort_by_key(|b| b.len());
        v[v.len() / 2].clone()
    };
    // Each run repeats whole passes (a fresh stream each) until the window
    // is used up, so a small log still gives a stable rate.
    let passes = |which: Stream| {
        let grpc = server.grpc;
        let window = ctx.window;
        async move {
            let (mut n, mut t, mut short) = (0u64, Duration::ZERO, false);
            while t < window {
                let ch = client::channels(grpc, 1).await?.remove(0);
                let (k, d) = read_until(&ch, which.clone(), last).await;
                short |= k < last;
                n += k;
                t += d;
            }
            anyhow::Ok((n, t, short))
        }
    };
    for pair in 0..ctx.pairs {
        let (b, cb) = with_cpu(pid, passes(Stream::NoopReplay(update.clone(), last))).await;
        let (n_b, t_b, _) = b?;
        let rb = n_b as f64 / t_b.as_secs_f64();
        let (o, co) = with_cpu(pid, passes(Stream::SubscribeFromBeginning)).await;
        let (n_o, t_o, short) = o?;
        let ro = n_o as f64 / t_o.as_secs_f64();
        println!(
            "  pair {}: no-op stream {n_b} frames in {:.2} s = {rb:.0}/s ({}); replay {n_o} events in {:.2} s = {ro:.0}/s ({})",
            pair + 1,
            t_b.as_secs_f64(),
            cb.describe(),
            t_o.as_secs_f64(),
            co.describe()
        );
        anyhow::ensure!(!short, "a replay returned fewer than the {last} events in the log");
        pairs.push(ro, rb, ro / rb);
    }
    server.stop();
    Ok(pairs.summary("S8", "replay_events_per_s", "noop_stream_single", 0.5, vec![]))
}

/// The last sequence in the log (from a live subscription's first
/// checkpoint).
async fn log_last(ch: &Channel) -> anyhow::Result<u64> {
    let mut s = client::open_stream(ch, &Stream::Subscribe).await?;
    match s.next().await {
        Some(Ok(Frame::Checkpoint { sequence, .. })) => Ok(sequence),
        other => bail!("expected a checkpoint, got {other:?}"),
    }
}

/// Reads `count` updates from a stream; returns how many and how long.
async fn read_until(ch: &Channel, which: Stream, count: u64) -> (u64, Duration) {
    let t0 = Instant::now();
    let Ok(mut s) = client::open_stream(ch, &which).await else { return (0, t0.elapsed()) };
    let mut n = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
    while n < count {
        let m = tokio::select! {
            m = s.next() => m,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match m {
            Some(Ok(Frame::Update { .. })) => n += 1,
            Some(Ok(Frame::Checkpoint { reason, .. })) if reason == pb::CheckpointReason::CaughtUp as i32 => break,
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    (n, t0.elapsed())
}

/// S10: Ingest on the NATS JetStream store vs raw JetStream publishes (awaited
/// acks) of the same payload bytes at the same concurrency, against one
/// nats-server with JetStream. Needs a server built with `--store nats`.
pub async fn jetstream(ctx: &Ctx, fixtures: Vec<Fixture>, concurrency: usize) -> anyhow::Result<Summary> {
    println!("S10: Ingest (--store nats) vs raw JetStream publish, closed loop C={concurrency}; {}", ctx.describe());
    let js_dir = ctx.fresh_dir("s10-jetstream")?;
    let nats = Nats::start_jetstream(&ctx.nats_bin, &ctx.pin, &js_dir)?;
    let server = Server::start(&ctx.spec("nats", "s10", &["--nats-url", &nats.url])?)?;
    let reqs = prepare(&server, fixtures, 0).await?;
    let chans = client::channels(server.grpc, ctx.channels).await?;
    let js = async_nats::jetstream::new(async_nats::connect(&nats.url).await?);
    js.get_or_create_stream(async_nats::jetstream::stream::Config {
        name: "SWITCHBOARD_BENCH_RAW".into(),
        subjects: vec!["bench.raw.>".into()],
        ..Default::default()
    })
    .await?;
    let (pid, nats_pid) = (server.pid(), nats.pid());
    let (mut pairs, mut checks) = (Pairs::default(), Vec::new());
    for pair in 0..ctx.pairs {
        let n0 = procs::cpu_micros(nats_pid);
        let (raw, cpu) = with_cpu(pid, raw_publish(&js, reqs.clone(), concurrency, ctx.warmup, ctx.window)).await;
        let raw = raw?;
        println!(
            "  pair {} JetStream publish {:>8.0}/s; {}; nats-server {:.2} cores",
            pair + 1,
            raw.rate(),
            lat(&raw.latency),
            Cpu::cores(procs::cpu_micros(nats_pid) - n0, cpu.wall)
        );
        let n0 = procs::cpu_micros(nats_pid);
        let (o, ocpu) = with_cpu(
            pid,
            client::closed_loop(Unary::Ingest, &chans, reqs.clone(), concurrency, ctx.warmup, ctx.window),
        )
        .await;
        print_unary(&format!("pair {} Ingest", pair + 1), &o, &ocpu);
        println!("  {:<22} nats-server {:.2} cores", "", Cpu::cores(procs::cpu_micros(nats_pid) - n0, ocpu.wall));
        checks.extend(check_unary("Ingest", &o, true));
        checks.push((format!("pair {}: JetStream publishes without errors", pair + 1), raw.errors == 0));
        pairs.push(o.rate(), raw.rate(), o.rate() / raw.rate());
    }
    server.stop();
    drop(nats);
    Ok(pairs.summary("S10", format!("ingest_rps_c{concurrency}"), "jetstream_publish", 0.5, checks))
}

/// S10, the other half: end-to-end latency across replicas. Two servers on
/// one `nats-server -js`; Ingest on A at `rate` (open loop) with
/// `subscribers` on B, against the same load with the subscribers on A.
/// Our own bound: across replicas within twice the same-replica p99.
pub async fn jetstream_e2e(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    rate: f64,
    subscribers: usize,
) -> anyhow::Result<Summary> {
    println!(
        "S10b: e2e Ingest on replica A → {subscribers} subscribers on replica B at {rate:.0} req/s (--store nats) vs subscribers on A; {}",
        ctx.describe()
    );
    let js_dir = ctx.fresh_dir("s10b-jetstream")?;
    let nats = Nats::start_jetstream(&ctx.nats_bin, &ctx.pin, &js_dir)?;
    let a = Server::start(&ctx.spec("nats", "s10b-a", &["--nats-url", &nats.url])?)?;
    let b = Server::start(&ctx.spec("nats", "s10b-b", &["--nats-url", &nats.url])?)?;
    let reqs = prepare(&a, fixtures, 0).await?;
    let same = FanOutSpec { subscribers, slow: 0, rate, window: ctx.window, catch_up: Duration::ZERO, ingest_at: None };
    let across = FanOutSpec { ingest_at: Some(a.grpc), ..same };
    let (mut pairs, mut checks) = (Pairs::default(), Vec::new());
    for pair in 0..ctx.pairs {
        let s = fan_out(ctx, &a, &reqs, System::Ours, &same).await?;
        print_fan_out(&format!("pair {} same replica", pair + 1), &s, true);
        let x = fan_out(ctx, &b, &reqs, System::Ours, &across).await?;
        print_fan_out(&format!("pair {} across replicas", pair + 1), &x, true);
        for (what, f) in [("same replica", &s), ("across replicas", &x)] {
            let (missing, disorder, errors) = f.loss(true, None);
            checks.push((format!("pair {} {what}: zero loss", pair + 1), missing == 0 && errors == 0));
            checks.push((format!("pair {} {what}: order kept", pair + 1), disorder == 0));
            checks.extend(check_unary("Ingest", &f.publish, true));
        }
        let (sp, xp) = (ms(&s.latency(None), 0.99), ms(&x.latency(None), 0.99));
        println!(
            "  pair {}: e2e p99 same replica {sp:.3} ms, across replicas {xp:.3} ms (p50 {:.3} vs {:.3} ms)",
            pair + 1,
            ms(&s.latency(None), 0.5),
            ms(&x.latency(None), 0.5)
        );
        pairs.push(xp, sp, sp / xp);
    }
    b.stop();
    a.stop();
    drop(nats);
    Ok(pairs.summary("S10b", "e2e_p99_ms_across_replicas", "same_replica_p99", 0.5, checks))
}

/// Closed-loop JetStream publishes of the fixture payloads, each awaiting its
/// ack.
async fn raw_publish(
    js: &async_nats::jetstream::Context,
    reqs: Arc<Requests>,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<UnaryResult> {
    let start = Instant::now();
    let (measure_from, end) = (start + warmup, start + warmup + window);
    let mut tasks = Vec::with_capacity(concurrency);
    for _ in 0..concurrency {
        let (js, reqs) = (js.clone(), reqs.clone());
        tasks.push(tokio::spawn(async move {
            let (mut done, mut errors, mut hist) = (0u64, 0u64, client::histogram());
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let n = reqs.next();
                let payload = reqs.fixture(n).payload(n);
                let ok = match js.publish(format!("bench.raw.{}", n % 64), payload).await {
                    Ok(ack) => ack.await.is_ok(),
                    Err(_) => false,
                };
                let t1 = Instant::now();
                if t0 >= measure_from && t1 <= end {
                    done += 1;
                    errors += u64::from(!ok);
                    let _ = hist.record((t1 - t0).as_micros().max(1) as u64);
                }
            }
            (done, errors, hist)
        }));
    }
    let (mut done, mut errors, mut latency) = (0, 0, client::histogram());
    for t in tasks {
        let (d, e, h) = t.await?;
        done += d;
        errors += e;
        let _ = latency.add(h);
    }
    Ok(UnaryResult {
        done,
        accepted: done - errors,
        not_accepted: 0,
        errors,
        first_error: None,
        latency,
        elapsed: window,
        max_sequence: 0,
        events: 0,
        total_ok: done - errors,
    })
}

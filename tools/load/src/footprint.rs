//! S13: the sqlite store's footprint. Ingests a workload into a fresh
//! `serve --store sqlite`, stops the server (its shutdown checkpoints the
//! WAL into the file), and compares the bytes on disk per event with the
//! encoded `CallUpdate` bytes per event of the same events, read back by a
//! from-the-beginning subscription:
//!
//! `ratio = encoded CallUpdate bytes per event / on-disk bytes per event`
//!
//! Two workloads, one summary line each (BENCHMARKS.md, "Storage
//! footprint"): `mix8`, whole Salesforce calls of eight events (start,
//! connect, hold, resume, mute, unmute, end, wrap-up; S13), and `single`,
//! calls of one event (S13b). It also prints the page size and, from
//! SQLite's `dbstat`, the bytes of every table and index.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use prost::Message;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;

use crate::client;
use crate::payloads::Fixture;
use crate::procs::Server;
use crate::scenarios::{Ctx, Summary};

/// The events of one call in the `mix8` workload, in order.
const MIX8: [&str; 8] =
    ["callstarted", "callconnected", "hold", "resume", "mute", "unmute", "callended", "wrapupended"];

/// Which workload.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Workload {
    /// Salesforce calls of eight events each (S13).
    Mix8,
    /// Calls of one event each (S13b).
    Single,
}

impl Workload {
    fn events(self) -> &'static [&'static str] {
        match self {
            Workload::Mix8 => &MIX8,
            Workload::Single => &MIX8[..1],
        }
    }

    fn id(self) -> &'static str {
        match self {
            Workload::Mix8 => "S13",
            Workload::Single => "S13b",
        }
    }

    fn target(self) -> f64 {
        match self {
            Workload::Mix8 => 0.6,
            Workload::Single => 0.3,
        }
    }
}

/// One table's or index's share of the file.
struct Part {
    name: String,
    bytes: u64,
    pages: u64,
    /// Bytes of payload the pages hold (fill = payload / bytes).
    payload: u64,
}

/// What the file holds after the run.
struct Disk {
    file_bytes: u64,
    page_size: u64,
    freelist_pages: u64,
    parts: Vec<Part>,
}

/// Runs the workload: `calls` calls, `concurrency` of them in flight (each
/// call's events in order).
pub async fn footprint(
    ctx: &Ctx,
    fixtures: Vec<Fixture>,
    workload: Workload,
    calls: u64,
    concurrency: usize,
) -> anyhow::Result<Summary> {
    let id = workload.id();
    let per_call = workload.events();
    println!(
        "{id}: sqlite footprint, {calls} Salesforce calls × {} event(s) ({}), {concurrency} calls in flight; {}",
        per_call.len(),
        per_call.join(", "),
        ctx.pin.describe()
    );
    let templates: Vec<Fixture> = per_call
        .iter()
        .map(|e| {
            let name = format!("salesforce_voice/{e}.json");
            fixtures.iter().find(|f| f.name == name).cloned().with_context(|| format!("no accepted fixture {name}"))
        })
        .collect::<anyhow::Result<_>>()?;
    let spec = ctx.spec("sqlite", &id.to_lowercase(), &[])?;
    let data_dir = spec.data_dir.clone();
    let server = Server::start(&spec)?;
    let chans = client::channels(server.grpc, ctx.channels).await?;
    let templates = Arc::new(templates);
    let next = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let mut ingest = IngestServiceClient::new(chans[i % chans.len()].clone());
        let (templates, next) = (templates.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let (mut accepted, mut other) = (0u64, 0u64);
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= calls {
                    return anyhow::Ok((accepted, other));
                }
                // The same counter for every event of a call: the same call
                // id and caller; distinct events by type.
                for t in templates.iter() {
                    let r = ingest.ingest(t.request(n)).await.context("Ingest failed")?.into_inner();
                    if r.outcome == pb::IngestOutcome::Accepted as i32 && r.events.len() == 1 {
                        accepted += 1;
                    } else {
                        other += 1;
                    }
                }
            }
        }));
    }
    let (mut accepted, mut other) = (0u64, 0u64);
    for t in tasks {
        let (a, o) = t.await??;
        accepted += a;
        other += o;
    }
    let elapsed = started.elapsed();
    println!(
        "  ingested {accepted} events ACCEPTED ({other} not) in {:.1} s = {:.0} events/s",
        elapsed.as_secs_f64(),
        accepted as f64 / elapsed.as_secs_f64()
    );
    let (replayed, encoded, in_order) = replay_sizes(&chans[0], accepted).await?;
    server.stop();
    let disk = measure(&data_dir.join("switchboard.db"))?;
    let events = replayed.max(1) as f64;
    let (enc_per_event, disk_per_event) = (encoded as f64 / events, disk.file_bytes as f64 / events);
    println!(
        "  encoded CallUpdate: {encoded} bytes = {enc_per_event:.0} per event; file after checkpoint: {} bytes = {disk_per_event:.0} per event",
        disk.file_bytes
    );
    println!(
        "  page size {} bytes; {} pages, {} free",
        disk.page_size,
        disk.file_bytes / disk.page_size.max(1),
        disk.freelist_pages
    );
    println!("  {:<24} {:>12} {:>9} {:>10} {:>6}", "table/index (dbstat)", "bytes", "pages", "per event", "fill");
    for p in &disk.parts {
        println!(
            "  {:<24} {:>12} {:>9} {:>10.1} {:>5.0}%",
            p.name,
            p.bytes,
            p.pages,
            p.bytes as f64 / events,
            100.0 * p.payload as f64 / p.bytes.max(1) as f64
        );
    }
    let checks = vec![
        ("every event ACCEPTED".to_string(), other == 0 && accepted == calls * per_call.len() as u64),
        ("the replay returned every event, in log order".to_string(), replayed == accepted && in_order),
    ];
    Ok(Summary {
        scenario: id,
        metric: "disk_bytes_per_event".into(),
        ours: disk_per_event,
        baseline_name: "encoded_call_update".into(),
        baseline: enc_per_event,
        ratio: enc_per_event / disk_per_event,
        target: workload.target(),
        checks,
    })
}

/// Reads the log from the beginning: how many updates, their encoded bytes,
/// and whether the sequences were 1, 2, 3, …
async fn replay_sizes(ch: &tonic::transport::Channel, expected: u64) -> anyhow::Result<(u64, u64, bool)> {
    let req =
        pb::SubscribeRequest { start: Some(pb::subscribe_request::Start::FromBeginning(true)), ..Default::default() };
    let mut stream =
        CallServiceClient::new(ch.clone()).max_decoding_message_size(64 << 20).subscribe(req).await?.into_inner();
    let (mut n, mut bytes, mut in_order) = (0u64, 0u64, true);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(600);
    while n < expected {
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline) => break,
        };
        match msg {
            Some(Ok(pb::SubscribeResponse { response: Some(pb::subscribe_response::Response::Update(u)) })) => {
                n += 1;
                in_order &= u.event.as_ref().is_some_and(|e| e.sequence == n);
                bytes += u.encoded_len() as u64;
            }
            Some(Ok(_)) => {}
            _ => break,
        }
    }
    Ok((n, bytes, in_order))
}

/// The file's size after a checkpoint, its page size, and `dbstat` per
/// table and index.
fn measure(path: &std::path::Path) -> anyhow::Result<Disk> {
    let conn = rusqlite::Connection::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    // The server checkpointed on shutdown; this makes sure (a server killed
    // at its grace deadline leaves a WAL).
    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
    let page_size: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get::<_, i64>(0))? as u64;
    let freelist_pages: u64 = conn.query_row("PRAGMA freelist_count", [], |r| r.get::<_, i64>(0))? as u64;
    let mut stmt = conn.prepare(
        "SELECT name, sum(pgsize), count(*), sum(payload) FROM dbstat GROUP BY name ORDER BY sum(pgsize) DESC",
    )?;
    let parts = stmt
        .query_map([], |r| {
            Ok(Part {
                name: r.get(0)?,
                bytes: r.get::<_, i64>(1)? as u64,
                pages: r.get::<_, i64>(2)? as u64,
                payload: r.get::<_, i64>(3)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    drop(stmt);
    drop(conn);
    let file_bytes = std::fs::metadata(path)?.len();
    let wal = std::fs::metadata(path.with_extension("db-wal")).map_or(0, |m| m.len());
    anyhow::ensure!(wal == 0, "the WAL still holds {wal} bytes after the checkpoint");
    Ok(Disk { file_bytes, page_size, freelist_pages, parts })
}

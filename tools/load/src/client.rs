//! The gRPC and NATS clients of the load generator: K channels, closed- and
//! open-loop unary drivers, and subscribers that check order and loss and
//! record end-to-end latency from the send time carried in each event.
//!
//! The send time travels as a W3C `traceparent` request header, which the
//! server copies onto every event it produces (attribute `traceparent`); the
//! no-op and NATS baselines carry the same attribute in the same frame
//! bytes. Subscribers decode only the few protobuf fields they need, the same
//! way for every system, so the client costs the same for all of them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use futures_util::StreamExt;
use hdrhistogram::Histogram;
use switchboard::proto::bench::v1 as bench;
use switchboard::proto::bench::v1::bench_service_client::BenchServiceClient;
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::transport::{Channel, Endpoint};

use crate::payloads::Fixture;

/// Nanoseconds since the load generator started (one clock for senders and
/// subscribers).
pub fn now_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<Instant> = std::sync::OnceLock::new();
    EPOCH.get_or_init(Instant::now).elapsed().as_nanos() as u64
}

/// A latency histogram in microseconds.
pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 600_000_000, 3).expect("valid histogram bounds")
}

/// The `traceparent` that carries a send time and a request number.
pub fn traceparent(sent_ns: u64, n: u64) -> String {
    format!("00-{sent_ns:016x}{:016x}-0000000000000001-01", n.max(1))
}

fn sent_from_traceparent(v: &[u8]) -> Option<u64> {
    let hex = v.get(3..19)?;
    u64::from_str_radix(std::str::from_utf8(hex).ok()?, 16).ok()
}

/// `K` HTTP/2 connections to `addr`.
pub async fn channels(addr: SocketAddr, k: usize) -> anyhow::Result<Vec<Channel>> {
    channels_with(addr, k, None).await
}

/// `K` connections with an explicit HTTP/2 stream receive window (slow
/// subscribers: a small window lets back-pressure reach the server soon).
pub async fn channels_with(addr: SocketAddr, k: usize, window: Option<u32>) -> anyhow::Result<Vec<Channel>> {
    let mut out = Vec::with_capacity(k);
    for _ in 0..k {
        let mut e =
            Endpoint::from_shared(format!("http://{addr}"))?.tcp_nodelay(true).connect_timeout(Duration::from_secs(10));
        if let Some(w) = window {
            e = e.initial_stream_window_size(w).initial_connection_window_size(w.max(1 << 20));
        }
        out.push(e.connect().await?);
    }
    Ok(out)
}

/// Which unary RPC a driver calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Unary {
    /// `BenchService.Noop` (B1).
    Noop,
    /// `IngestService.Ingest`.
    Ingest,
    /// `BenchService.NoopPublish` of a frame built from the template.
    Publish,
}

/// Produces request number `n` (global, so every request is distinct).
pub struct Requests {
    fixtures: Vec<Fixture>,
    counter: AtomicU64,
    /// Encoded `CallUpdate`s (real events captured from the server) for
    /// NoopPublish and the NATS peer.
    pub updates: Vec<pb::CallUpdate>,
}

impl Requests {
    /// Requests over `fixtures`, numbering from `first`.
    pub fn new(fixtures: Vec<Fixture>, first: u64) -> Requests {
        Requests { fixtures, counter: AtomicU64::new(first), updates: Vec::new() }
    }

    /// The next request number.
    pub fn next(&self) -> u64 {
        self.counter.fetch_add(1, Ordering::Relaxed)
    }

    /// The fixture used for request `n`.
    pub fn fixture(&self, n: u64) -> &Fixture {
        &self.fixtures[(n % self.fixtures.len() as u64) as usize]
    }

    /// A frame body for the baselines: update `n` of the captured ones with
    /// `sequence` and the send time in its `traceparent` attribute, encoded as
    /// a `SubscribeResponse { update }` when `framed`, else as a `CallUpdate`.
    pub fn update_bytes(&self, n: u64, sequence: u64, sent_ns: u64, framed: bool) -> Bytes {
        use prost::Message as _;
        let mut u = self.updates[(n % self.updates.len() as u64) as usize].clone();
        if let Some(e) = u.event.as_mut() {
            e.sequence = sequence;
            e.attributes.insert("traceparent".into(), traceparent(sent_ns, n));
        }
        if framed {
            let r = pb::SubscribeResponse { response: Some(pb::subscribe_response::Response::Update(u)) };
            Bytes::from(r.encode_to_vec())
        } else {
            Bytes::from(u.encode_to_vec())
        }
    }
}

/// What one unary window did.
#[derive(Debug)]
pub struct UnaryResult {
    /// Requests completed in the window.
    pub done: u64,
    /// ACCEPTED answers (Ingest) or OK answers (Noop, NoopPublish).
    pub accepted: u64,
    /// DUPLICATE or IGNORED answers.
    pub not_accepted: u64,
    /// Errors, by status code.
    pub errors: u64,
    /// The first error seen.
    pub first_error: Option<String>,
    /// Latency of completed requests, µs.
    pub latency: Histogram<u64>,
    /// Window length.
    pub elapsed: Duration,
    /// Highest sequence in any Ingest answer.
    pub max_sequence: u64,
    /// Events in Ingest answers.
    pub events: u64,
    /// Successful answers including the warmup.
    pub total_ok: u64,
}

impl UnaryResult {
    /// Requests per second.
    pub fn rate(&self) -> f64 {
        self.done as f64 / self.elapsed.as_secs_f64()
    }

    /// Share of answers that were ACCEPTED / OK.
    pub fn accepted_share(&self) -> f64 {
        if self.done == 0 { 0.0 } else { self.accepted as f64 / self.done as f64 }
    }
}

struct Outcome {
    accepted: bool,
    error: Option<String>,
    max_sequence: u64,
    events: u64,
}

async fn call(
    kind: Unary,
    ch: &Channel,
    reqs: &Requests,
    n: u64,
    trace: Option<String>,
    publish_seq: &AtomicU64,
) -> Outcome {
    let fx = reqs.fixture(n);
    let meta = |r: &mut tonic::metadata::MetadataMap| {
        if let Some(t) = &trace
            && let Ok(v) = t.parse()
        {
            r.insert("traceparent", v);
        }
    };
    match kind {
        Unary::Ingest => {
            let mut req = tonic::Request::new(fx.request(n));
            meta(req.metadata_mut());
            match IngestServiceClient::new(ch.clone()).ingest(req).await {
                Ok(r) => {
                    let r = r.into_inner();
                    Outcome {
                        accepted: r.outcome == pb::IngestOutcome::Accepted as i32,
                        error: None,
                        max_sequence: r.events.iter().map(|e| e.sequence).max().unwrap_or(0),
                        events: r.events.len() as u64,
                    }
                }
                Err(s) => Outcome {
                    accepted: false,
                    error: Some(format!("{:?}: {}", s.code(), s.message())),
                    max_sequence: 0,
                    events: 0,
                },
            }
        }
        Unary::Noop => {
            let r = fx.request(n);
            let mut req = tonic::Request::new(bench::NoopRequest {
                vendor: r.vendor,
                payload: r.payload,
                tenant_id: r.tenant_id,
                request_id: r.request_id,
                vendor_event_type: r.vendor_event_type,
                received_at: r.received_at,
                agent_id: r.agent_id,
            });
            meta(req.metadata_mut());
            match BenchServiceClient::new(ch.clone()).noop(req).await {
                Ok(_) => Outcome { accepted: true, error: None, max_sequence: 0, events: 0 },
                Err(s) => {
                    Outcome { accepted: false, error: Some(format!("{:?}", s.code())), max_sequence: 0, events: 0 }
                }
            }
        }
        Unary::Publish => {
            let sent = trace.as_deref().and_then(|t| sent_from_traceparent(t.as_bytes())).unwrap_or_else(now_ns);
            // The server numbers what it publishes; the frame carries the
            // expected number only for the subscriber's own bookkeeping.
            let seq = publish_seq.fetch_add(1, Ordering::Relaxed) + 1;
            let update = reqs.update_bytes(n, seq, sent, false);
            match BenchServiceClient::new(ch.clone()).noop_publish(bench::NoopPublishRequest { update }).await {
                Ok(r) => Outcome { accepted: true, error: None, max_sequence: r.into_inner().sequence, events: 1 },
                Err(s) => {
                    Outcome { accepted: false, error: Some(format!("{:?}", s.code())), max_sequence: 0, events: 0 }
                }
            }
        }
    }
}

#[derive(Default)]
struct Tally {
    total_ok: u64,
    done: u64,
    accepted: u64,
    not_accepted: u64,
    errors: u64,
    first_error: Option<String>,
    max_sequence: u64,
    events: u64,
}

impl Tally {
    fn add(&mut self, o: Outcome) {
        self.done += 1;
        self.max_sequence = self.max_sequence.max(o.max_sequence);
        self.events += o.events;
        match (o.accepted, o.error) {
            (true, _) => self.accepted += 1,
            (false, Some(e)) => {
                self.errors += 1;
                self.first_error.get_or_insert(e);
            }
            (false, None) => self.not_accepted += 1,
        }
    }

    /// The window's result.
    pub fn into_result(self, latency: Histogram<u64>, elapsed: Duration) -> UnaryResult {
        UnaryResult {
            done: self.done,
            accepted: self.accepted,
            not_accepted: self.not_accepted,
            errors: self.errors,
            first_error: self.first_error,
            latency,
            elapsed,
            max_sequence: self.max_sequence,
            events: self.events,
            total_ok: self.total_ok,
        }
    }

    fn merge(&mut self, o: Tally) {
        self.total_ok += o.total_ok;
        self.done += o.done;
        self.accepted += o.accepted;
        self.not_accepted += o.not_accepted;
        self.errors += o.errors;
        self.max_sequence = self.max_sequence.max(o.max_sequence);
        self.events += o.events;
        if self.first_error.is_none() {
            self.first_error = o.first_error;
        }
    }
}

/// Closed loop: `concurrency` callers over `chans`, each sending its next
/// request as soon as the previous one is answered. Warms up for `warmup`,
/// then counts for `window`.
pub async fn closed_loop(
    kind: Unary,
    chans: &[Channel],
    reqs: Arc<Requests>,
    concurrency: usize,
    warmup: Duration,
    window: Duration,
) -> UnaryResult {
    let start = Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let publish_seq = Arc::new(AtomicU64::new(0));
    let mut tasks = Vec::with_capacity(concurrency);
    for i in 0..concurrency {
        let ch = chans[i % chans.len()].clone();
        let reqs = reqs.clone();
        let publish_seq = publish_seq.clone();
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            let mut hist = histogram();
            loop {
                let t0 = Instant::now();
                if t0 >= end {
                    break;
                }
                let n = reqs.next();
                let o = call(kind, &ch, &reqs, n, None, &publish_seq).await;
                let t1 = Instant::now();
                if o.error.is_none() {
                    tally.total_ok += 1;
                }
                if t0 >= measure_from && t1 <= end {
                    let _ = hist.record((t1 - t0).as_micros().max(1) as u64);
                    tally.add(o);
                }
            }
            (tally, hist)
        }));
    }
    let mut tally = Tally::default();
    let mut latency = histogram();
    for t in tasks {
        if let Ok((t, h)) = t.await {
            tally.merge(t);
            let _ = latency.add(h);
        }
    }
    tally.into_result(latency, window)
}

/// Open loop: request `i` is sent at `start + i / rate` whatever happened to
/// earlier ones; latency is measured from that intended time (no
/// coordinated omission). Each request carries its intended time in a
/// `traceparent` header. Only requests intended inside the window count.
pub async fn open_loop(
    kind: Unary,
    chans: &[Channel],
    reqs: Arc<Requests>,
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> UnaryResult {
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let measure_from = start + warmup;
    let end = measure_from + window;
    let publish_seq = Arc::new(AtomicU64::new(0));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(bool, Outcome, u64)>();
    let mut i: u64 = 0;
    loop {
        let t = start + period * (i as u32);
        if t >= end {
            break;
        }
        tokio::time::sleep_until(t).await;
        let intended_ns = now_ns().saturating_sub(t.elapsed().as_nanos() as u64);
        let ch = chans[(i as usize) % chans.len()].clone();
        let reqs = reqs.clone();
        let tx = tx.clone();
        let counted = t >= measure_from;
        let publish_seq = publish_seq.clone();
        tokio::spawn(async move {
            let n = reqs.next();
            let o = call(kind, &ch, &reqs, n, Some(traceparent(intended_ns, n)), &publish_seq).await;
            let lat = (now_ns().saturating_sub(intended_ns) / 1000).max(1);
            let _ = tx.send((counted, o, lat));
        });
        i += 1;
    }
    drop(tx);
    let mut tally = Tally::default();
    let mut latency = histogram();
    while let Some((counted, o, lat)) = rx.recv().await {
        if o.error.is_none() {
            tally.total_ok += 1;
        }
        if counted {
            let _ = latency.record(lat);
            tally.add(o);
        } else {
            tally.max_sequence = tally.max_sequence.max(o.max_sequence);
        }
    }
    tally.into_result(latency, window)
}

// ---------------------------------------------------------------------------
// Subscribers

/// What a subscriber reads out of one frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// An update: its sequence and the send time, if it carries one.
    Update { sequence: u64, sent_ns: Option<u64> },
    /// A checkpoint.
    Checkpoint { sequence: u64, reason: i32 },
    /// Anything else (snapshots).
    Other,
}

fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        let (&x, rest) = b.split_first()?;
        *b = rest;
        v |= u64::from(x & 0x7f) << shift;
        if x & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Iterates the fields of a message: (field number, wire type, value or
/// payload).
fn fields(mut b: &[u8]) -> impl Iterator<Item = (u64, u8, u64, &[u8])> {
    std::iter::from_fn(move || {
        let key = varint(&mut b)?;
        let (num, wt) = (key >> 3, (key & 7) as u8);
        match wt {
            0 => varint(&mut b).map(|v| (num, wt, v, &b[..0])),
            1 => {
                let (x, rest) = b.split_at_checked(8)?;
                b = rest;
                Some((num, wt, u64::from_le_bytes(x.try_into().ok()?), &x[..0]))
            }
            2 => {
                let len = varint(&mut b)? as usize;
                let (x, rest) = b.split_at_checked(len)?;
                b = rest;
                Some((num, wt, len as u64, x))
            }
            5 => {
                let (x, rest) = b.split_at_checked(4)?;
                b = rest;
                Some((num, wt, u64::from(u32::from_le_bytes(x.try_into().ok()?)), &x[..0]))
            }
            _ => None,
        }
    })
}

/// Reads a `SubscribeResponse` (or the wire-identical NoopSubscribeResponse).
pub fn scan(frame: &[u8]) -> Frame {
    for (num, wt, _, body) in fields(frame) {
        match (num, wt) {
            (1, 2) => {
                // CallUpdate.event (1) → CallEvent.sequence (2), attributes
                // (30). `event` may occur more than once: protobuf merges the
                // occurrences (the NATS store appends the log position as a
                // second one), so the last value of a field wins.
                let mut events = fields(body).filter(|(n, w, _, _)| *n == 1 && *w == 2).peekable();
                if events.peek().is_none() {
                    return Frame::Other;
                }
                let mut sequence = 0;
                let mut sent_ns = None;
                for (n, w, v, b) in events.flat_map(|(_, _, _, event)| fields(event)) {
                    match (n, w) {
                        (2, 0) => sequence = v,
                        (30, 2) => {
                            let mut key: &[u8] = &[];
                            let mut val: &[u8] = &[];
                            for (en, _, _, eb) in fields(b) {
                                if en == 1 {
                                    key = eb;
                                } else if en == 2 {
                                    val = eb;
                                }
                            }
                            if key == b"traceparent" {
                                sent_ns = sent_from_traceparent(val);
                            }
                        }
                        _ => {}
                    }
                }
                return Frame::Update { sequence, sent_ns };
            }
            (3, 2) => {
                let mut sequence = 0;
                let mut reason = 0;
                for (n, _, v, _) in fields(body) {
                    match n {
                        1 => sequence = v,
                        2 => reason = v as i32,
                        _ => {}
                    }
                }
                return Frame::Checkpoint { sequence, reason };
            }
            _ => {}
        }
    }
    Frame::Other
}

/// A client codec that sends pre-encoded requests and scans responses in
/// place (no allocation per message).
#[derive(Clone, Copy, Default)]
pub struct ScanCodec;

/// Encoder half of [`ScanCodec`].
pub struct RawEncoder;
/// Decoder half of [`ScanCodec`].
pub struct ScanDecoder;

impl Codec for ScanCodec {
    type Encode = Bytes;
    type Decode = Frame;
    type Encoder = RawEncoder;
    type Decoder = ScanDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> ScanDecoder {
        ScanDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Bytes;
    type Error = tonic::Status;
    fn encode(&mut self, item: Bytes, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        use bytes::BufMut as _;
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for ScanDecoder {
    type Item = Frame;
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Frame>, tonic::Status> {
        let n = src.remaining();
        let f = if src.chunk().len() >= n { scan(&src.chunk()[..n]) } else { scan(&src.copy_to_bytes(n)) };
        src.advance(src.remaining());
        Ok(Some(f))
    }
}

/// Which stream a subscriber opens.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Stream {
    /// `CallService.Subscribe`, live.
    Subscribe,
    /// `CallService.Subscribe`, from the beginning of the log.
    SubscribeFromBeginning,
    /// `BenchService.NoopSubscribe`, live.
    Noop,
    /// `BenchService.NoopSubscribe` replaying `count` copies of an encoded
    /// `CallUpdate` first.
    NoopReplay(Bytes, u64),
}

/// Opens one stream on `ch`.
pub async fn open_stream(ch: &Channel, which: &Stream) -> anyhow::Result<tonic::Streaming<Frame>> {
    use prost::Message as _;
    const SUBSCRIBE: &str = "/switchboard.v1.CallService/Subscribe";
    const NOOP: &str = "/switchboard.bench.v1.BenchService/NoopSubscribe";
    let (path, body) = match which {
        Stream::Subscribe => (SUBSCRIBE, pb::SubscribeRequest::default().encode_to_vec()),
        Stream::SubscribeFromBeginning => (
            SUBSCRIBE,
            pb::SubscribeRequest {
                start: Some(pb::subscribe_request::Start::FromBeginning(true)),
                ..Default::default()
            }
            .encode_to_vec(),
        ),
        Stream::Noop => (NOOP, bench::NoopSubscribeRequest::default().encode_to_vec()),
        Stream::NoopReplay(update, count) => {
            (NOOP, bench::NoopSubscribeRequest { replay_update: update.clone(), replay_count: *count }.encode_to_vec())
        }
    };
    let mut grpc = tonic::client::Grpc::new(ch.clone());
    grpc.ready().await?;
    let resp = grpc
        .server_streaming(tonic::Request::new(Bytes::from(body)), http::uri::PathAndQuery::from_static(path), ScanCodec)
        .await?;
    Ok(resp.into_inner())
}

/// Shared control of a group of subscribers.
pub struct Control {
    /// Record latency only for sends at or after this time (ns, see
    /// [`now_ns`]); `u64::MAX` until the window opens.
    pub measure_from_ns: AtomicU64,
    /// Slow subscribers read only while this is at or below [`now_ns`].
    pub resume_at_ns: AtomicU64,
    /// Subscribers stop once they have seen this sequence (u64::MAX: never).
    pub stop_at_sequence: AtomicU64,
    /// Total updates received (all subscribers).
    pub received: AtomicU64,
}

impl Control {
    /// Latency recording off, slow subscribers stalled, no stop.
    pub fn new() -> Arc<Control> {
        Arc::new(Control {
            measure_from_ns: AtomicU64::new(u64::MAX),
            resume_at_ns: AtomicU64::new(u64::MAX),
            stop_at_sequence: AtomicU64::new(u64::MAX),
            received: AtomicU64::new(0),
        })
    }
}

/// One subscriber's account of its stream.
#[derive(Debug)]
pub struct SubReport {
    /// Updates received.
    pub updates: u64,
    /// Updates whose sequence was not exactly the previous one + 1.
    pub gaps: u64,
    /// Updates whose sequence was not above the previous one.
    pub disorder: u64,
    /// First and last update sequence.
    pub first: u64,
    /// Last update sequence.
    pub last: u64,
    /// End-to-end latency of updates sent inside the window, µs.
    pub latency: Histogram<u64>,
    /// Why the stream ended early, if it did.
    pub error: Option<String>,
    /// Whether this was a slow subscriber.
    pub slow: bool,
}

impl SubReport {
    fn new(slow: bool) -> SubReport {
        SubReport { updates: 0, gaps: 0, disorder: 0, first: 0, last: 0, latency: histogram(), error: None, slow }
    }

    /// Accounts for one update: order, gaps, and its latency when it was
    /// sent inside the window. Every system's subscribers count the same way.
    fn observe(&mut self, ctl: &Control, sequence: u64, sent_ns: Option<u64>) {
        let now = now_ns();
        ctl.received.fetch_add(1, Ordering::Relaxed);
        if self.updates == 0 {
            self.first = sequence;
        } else if sequence <= self.last {
            self.disorder += 1;
        } else if sequence != self.last + 1 {
            self.gaps += 1;
        }
        self.updates += 1;
        self.last = self.last.max(sequence);
        if let Some(s) = sent_ns
            && s >= ctl.measure_from_ns.load(Ordering::Relaxed)
        {
            let _ = self.latency.record((now.saturating_sub(s) / 1000).max(1));
        }
    }
}

/// Runs one subscriber until `stop_at_sequence` is reached, the stream ends,
/// or `deadline`. A slow subscriber stops reading until `resume_at_ns`.
pub async fn subscriber(
    mut stream: impl futures_util::Stream<Item = Result<Frame, tonic::Status>> + Unpin,
    ctl: Arc<Control>,
    slow: bool,
    deadline: tokio::time::Instant,
) -> SubReport {
    let mut r = SubReport::new(slow);
    loop {
        if slow {
            while now_ns() < ctl.resume_at_ns.load(Ordering::Relaxed) {
                if tokio::time::Instant::now() >= deadline {
                    return r;
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
        if r.last != 0 && r.last >= ctl.stop_at_sequence.load(Ordering::Relaxed) {
            return r;
        }
        let msg = tokio::select! {
            m = stream.next() => m,
            _ = tokio::time::sleep_until(deadline) => return r,
            // Re-check the stop condition now and then.
            _ = tokio::time::sleep(Duration::from_millis(100)) => continue,
        };
        match msg {
            Some(Ok(Frame::Update { sequence, sent_ns })) => r.observe(&ctl, sequence, sent_ns),
            Some(Ok(Frame::Checkpoint { sequence, .. })) => {
                // Live start: the first update must follow the checkpoint.
                if r.updates == 0 && r.last == 0 {
                    r.last = sequence;
                    r.first = sequence + 1;
                }
            }
            Some(Ok(Frame::Other)) => {}
            Some(Err(s)) => {
                r.error = Some(format!("{:?}: {}", s.code(), s.message()));
                return r;
            }
            None => {
                r.error = Some("stream ended".into());
                return r;
            }
        }
    }
}

/// Fixes up a report of a stream whose first message was a checkpoint:
/// `first` was set from it, so an update count short of `last - first + 1`
/// is loss.
pub fn missing(r: &SubReport, expected_last: u64) -> u64 {
    if r.first == 0 {
        return expected_last;
    }
    let span = expected_last.saturating_sub(r.first) + 1;
    span.saturating_sub(r.updates)
}

// ---------------------------------------------------------------------------
// NATS peer

/// `n` NATS subscribers of `subject` spread over `k` connections; each runs
/// the same bookkeeping as a gRPC subscriber.
pub async fn nats_subscribers(
    url: &str,
    subject: &str,
    n: usize,
    k: usize,
    ctl: Arc<Control>,
    deadline: tokio::time::Instant,
) -> anyhow::Result<Vec<tokio::task::JoinHandle<SubReport>>> {
    let mut clients = Vec::with_capacity(k);
    for _ in 0..k {
        clients.push(async_nats::ConnectOptions::new().subscription_capacity(1 << 16).connect(url).await?);
    }
    let mut tasks = Vec::with_capacity(n);
    for i in 0..n {
        let sub = clients[i % k].subscribe(subject.to_string()).await?;
        let frames = sub.map(|m| Ok(scan(&m.payload)));
        tasks.push(tokio::spawn(subscriber(frames, ctl.clone(), false, deadline)));
    }
    // Keep the connections alive as long as the subscriptions.
    tokio::spawn(async move {
        tokio::time::sleep_until(deadline + Duration::from_secs(1)).await;
        drop(clients);
    });
    Ok(tasks)
}

/// Publishes `rate` frames per second to NATS for `warmup + window`, open
/// loop, with the intended send time in each frame. Returns the last
/// sequence published.
pub async fn nats_publish(
    url: &str,
    subject: &str,
    reqs: Arc<Requests>,
    rate: f64,
    warmup: Duration,
    window: Duration,
) -> anyhow::Result<u64> {
    let client = async_nats::connect(url).await?;
    let period = Duration::from_secs_f64(1.0 / rate);
    let start = tokio::time::Instant::now();
    let end = start + warmup + window;
    let mut seq = 0u64;
    loop {
        let t = start + period * (seq as u32);
        if t >= end {
            break;
        }
        tokio::time::sleep_until(t).await;
        seq += 1;
        let intended_ns = now_ns().saturating_sub(t.elapsed().as_nanos() as u64);
        let body = reqs.update_bytes(seq, seq, intended_ns, true);
        client.publish(subject.to_string(), body).await?;
    }
    client.flush().await?;
    Ok(seq)
}

//! Shared helpers of the integration tests: start the real server in-process
//! on a random loopback port and talk to it through the generated clients.

#![allow(dead_code)]

pub mod nats;
pub mod pki;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use switchboard::app::{App, AppError};
use switchboard::clock::Clock;
use switchboard::config::{Config, StoreKind};
use switchboard::proto::v1 as pb;
use switchboard::proto::v1::call_service_client::CallServiceClient;
use switchboard::proto::v1::ingest_service_client::IngestServiceClient;
use switchboard::service::Services;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckResponse;
use tonic_health::pb::health_check_response::ServingStatus;

/// How long a test waits for a message that should come.
pub const WAIT: Duration = Duration::from_secs(10);

/// A server configuration on the sqlite store in `dir`.
pub fn sqlite_config(dir: &tempfile::TempDir) -> Config {
    Config { store: StoreKind::Sqlite, data_dir: dir.path().to_path_buf(), ..Config::for_tests() }
}

/// A running server.
pub struct TestServer {
    /// The gRPC address.
    pub addr: SocketAddr,
    /// The metrics address, when enabled.
    pub metrics_addr: Option<SocketAddr>,
    /// Direct access to the store and hub.
    pub services: Arc<Services>,
    shutdown: CancellationToken,
    handle: JoinHandle<Result<(), AppError>>,
}

impl TestServer {
    /// Starts a server with `config` (use `Config::for_tests()` as a base).
    pub async fn start(config: Config) -> TestServer {
        TestServer::start_app(App::build(config).await).await
    }

    /// Starts a server reading the time from `clock` (a
    /// `switchboard::clock::ManualClock` the test moves forward).
    pub async fn start_with_clock(config: Config, clock: Arc<dyn Clock>) -> TestServer {
        TestServer::start_app(App::builder(config).clock(clock).build().await).await
    }

    async fn start_app(app: Result<App, AppError>) -> TestServer {
        let app = app.expect("server builds");
        let addr = app.local_addr();
        let metrics_addr = app.metrics_addr();
        let services = app.services();
        let shutdown = CancellationToken::new();
        let handle = tokio::spawn(app.run(shutdown.clone()));
        TestServer { addr, metrics_addr, services, shutdown, handle }
    }

    /// A server on the memory store.
    pub async fn memory() -> TestServer {
        TestServer::start(Config::for_tests()).await
    }

    /// A channel to the server.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr))
            .expect("valid uri")
            .connect()
            .await
            .expect("server accepts connections")
    }

    /// An IngestService client.
    pub async fn ingest_client(&self) -> IngestServiceClient<Channel> {
        IngestServiceClient::new(self.channel().await)
    }

    /// A CallService client.
    pub async fn call_client(&self) -> CallServiceClient<Channel> {
        CallServiceClient::new(self.channel().await)
    }

    /// Graceful shutdown; returns what `App::run` returned.
    pub async fn stop(self) -> Result<(), AppError> {
        self.shutdown.cancel();
        self.handle.await.expect("server task does not panic")
    }
}

/// An ingest request for a JSON payload.
pub fn request(vendor: pb::Vendor, payload: &str) -> pb::IngestRequest {
    pb::IngestRequest { vendor: vendor as i32, payload: payload.as_bytes().to_vec().into(), ..Default::default() }
}

/// Ingests one payload and expects success.
pub async fn ingest(
    client: &mut IngestServiceClient<Channel>,
    vendor: pb::Vendor,
    payload: &str,
) -> pb::IngestResponse {
    client
        .ingest(request(vendor, payload))
        .await
        .unwrap_or_else(|s| panic!("ingest failed: {s:?}\npayload: {payload}"))
        .into_inner()
}

/// The path of a fixture file.
pub fn fixture_path(vendor_dir: &str, name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(vendor_dir).join(name)
}

/// A fixture's text.
pub fn fixture(vendor_dir: &str, name: &str) -> String {
    let p = fixture_path(vendor_dir, name);
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()))
}

/// An open subscription.
pub struct Sub {
    /// The raw stream.
    pub stream: tonic::Streaming<pb::SubscribeResponse>,
}

impl Sub {
    /// Opens a subscription, over any transport (plain, TLS, with a token).
    pub async fn open<T>(client: &mut CallServiceClient<T>, req: pb::SubscribeRequest) -> Sub
    where
        T: tonic::client::GrpcService<tonic::body::Body>,
        T::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
        T::ResponseBody: tonic::transport::Body<Data = bytes::Bytes> + Send + 'static,
        <T::ResponseBody as tonic::transport::Body>::Error: Into<Box<dyn std::error::Error + Send + Sync>> + Send,
    {
        let stream = client.subscribe(req).await.expect("subscribe succeeds").into_inner();
        Sub { stream }
    }

    /// The next message, failing the test after [`WAIT`].
    pub async fn next(&mut self) -> pb::subscribe_response::Response {
        let msg = tokio::time::timeout(WAIT, self.stream.message())
            .await
            .expect("a message within the wait time")
            .expect("stream does not fail")
            .expect("stream does not end");
        msg.response.expect("response is set")
    }

    /// The next update, skipping checkpoints.
    pub async fn next_update(&mut self) -> pb::CallUpdate {
        loop {
            if let pb::subscribe_response::Response::Update(u) = self.next().await {
                return u;
            }
        }
    }

    /// Skips to the next checkpoint with `reason`, returning the updates seen
    /// on the way.
    pub async fn until(&mut self, reason: pb::CheckpointReason) -> (Vec<pb::CallUpdate>, u64) {
        let mut updates = Vec::new();
        loop {
            match self.next().await {
                pb::subscribe_response::Response::Update(u) => updates.push(u),
                pb::subscribe_response::Response::Checkpoint(c) if c.reason() == reason => {
                    return (updates, c.sequence);
                }
                _ => {}
            }
        }
    }

    /// `n` updates, skipping checkpoints.
    pub async fn updates(&mut self, n: usize) -> Vec<pb::CallUpdate> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next_update().await);
        }
        out
    }
}

/// A subscribe request with everything default (live, no filter).
pub fn live() -> pb::SubscribeRequest {
    pb::SubscribeRequest::default()
}

/// A subscribe request from the beginning of the log.
pub fn from_beginning() -> pb::SubscribeRequest {
    pb::SubscribeRequest { start: Some(pb::subscribe_request::Start::FromBeginning(true)), ..Default::default() }
}

/// A subscribe request resuming after `seq`.
pub fn after(seq: u64) -> pb::SubscribeRequest {
    pb::SubscribeRequest { start: Some(pb::subscribe_request::Start::AfterSequence(seq)), ..Default::default() }
}

/// A Salesforce Voice payload: `{"type": t, "detail": {"callId": call, ...extra}}`.
pub fn sf(event_type: &str, call_id: &str, extra: serde_json::Value) -> String {
    let detail = merge_json(serde_json::json!({ "callId": call_id }), extra);
    serde_json::json!({ "type": event_type, "detail": detail }).to_string()
}

/// `a` with the fields of object `b` added (replacing same-named ones).
pub fn merge_json(mut a: serde_json::Value, b: serde_json::Value) -> serde_json::Value {
    if let (Some(a), serde_json::Value::Object(b)) = (a.as_object_mut(), b) {
        a.extend(b);
    }
    a
}

/// Ingests a Salesforce payload (see [`sf`]) and returns the response.
pub async fn ingest_sf(
    client: &mut IngestServiceClient<Channel>,
    event_type: &str,
    call_id: &str,
    extra: serde_json::Value,
) -> pb::IngestResponse {
    ingest(client, pb::Vendor::SalesforceVoice, &sf(event_type, call_id, extra)).await
}

/// Starts `n` distinct inbound calls (`callstarted` of calls `prefix-0..n`)
/// and returns the sequences they got.
pub async fn start_calls(client: &mut IngestServiceClient<Channel>, prefix: &str, n: usize) -> Vec<u64> {
    let mut seqs = Vec::with_capacity(n);
    for i in 0..n {
        let r = ingest_sf(
            client,
            "callstarted",
            &format!("{prefix}-{i}"),
            serde_json::json!({"callType": "inbound", "participant": "+14155550100"}),
        )
        .await;
        seqs.push(r.events[0].sequence);
    }
    seqs
}

/// The sequence of an update's event.
pub fn seq(u: &pb::CallUpdate) -> u64 {
    u.event.as_ref().map_or(0, |e| e.sequence)
}

/// Waits until `f` is true, failing the test after [`WAIT`]: for state of
/// the in-process server that settles once the runtime has done its
/// pending work (a disconnect reaching the server). `f` is checked after
/// every turn of the scheduler, not on a timer.
pub async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let settled = async {
        while !f() {
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(WAIT, settled).await.unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

/// What concurrent writers had acknowledged, shared with the test that
/// waits for enough of it.
pub struct Acked<T>(Arc<tokio::sync::watch::Sender<Vec<T>>>);

impl<T> Clone for Acked<T> {
    fn clone(&self) -> Self {
        Acked(self.0.clone())
    }
}

impl<T> Default for Acked<T> {
    fn default() -> Self {
        Acked(Arc::new(tokio::sync::watch::Sender::new(Vec::new())))
    }
}

impl<T: Clone> Acked<T> {
    /// One more acknowledged.
    pub fn push(&self, value: T) {
        self.0.send_modify(|v| v.push(value));
    }

    /// Waits until at least `n` are acknowledged, failing the test after
    /// [`WAIT`].
    pub async fn at_least(&self, n: usize) {
        let mut rx = self.0.subscribe();
        let enough = tokio::time::timeout(WAIT, rx.wait_for(|v| v.len() >= n)).await;
        assert!(matches!(enough, Ok(Ok(_))), "fewer than {n} acknowledged within {WAIT:?}");
    }

    /// Everything acknowledged so far.
    pub fn all(&self) -> Vec<T> {
        self.0.borrow().clone()
    }
}

/// Reads a `grpc.health.v1.Health/Watch` stream until it reports `want`,
/// failing the test after [`WAIT`].
pub async fn health_until(watch: &mut tonic::Streaming<HealthCheckResponse>, want: ServingStatus, what: &str) {
    let reached = async {
        while watch.message().await.expect("the watch goes on").expect("the watch goes on").status() != want {}
    };
    tokio::time::timeout(WAIT, reached).await.unwrap_or_else(|_| panic!("timed out waiting for: {what}"));
}

/// Runs the server's interval loops that fall due within `by` (file
/// watchers, gauges) now: tokio's clock jumps ahead by `by` instead of the
/// test sleeping through it.
pub async fn skip_ahead(by: Duration) {
    tokio::time::pause();
    tokio::time::advance(by).await;
    tokio::time::resume();
}

/// A `switchboard serve` child process on a random loopback port.
pub struct ServerProcess {
    /// The child.
    pub child: tokio::process::Child,
    /// Its gRPC address (`127.0.0.1:PORT`).
    pub addr: String,
}

impl ServerProcess {
    /// Starts `switchboard serve <args>` and waits until it announces its
    /// address (from its JSON log).
    pub async fn spawn(args: &[&str]) -> ServerProcess {
        use tokio::io::AsyncBufReadExt;
        let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("serve")
            .args(["--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json"])
            .args(args)
            .stderr(std::process::Stdio::piped())
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary starts");
        let mut lines = tokio::io::BufReader::new(child.stderr.take().expect("piped stderr")).lines();
        let addr = tokio::time::timeout(WAIT, async {
            while let Some(line) = lines.next_line().await.expect("readable log") {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(&line)
                    && let Some(grpc) = v.get("grpc").and_then(|g| g.as_str())
                {
                    return grpc.to_string();
                }
            }
            panic!("the server exited before it was serving");
        })
        .await
        .expect("the server announces its address");
        // Keep draining the child's log so it never blocks on a full pipe.
        tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
        ServerProcess { child, addr }
    }

    /// A channel to it.
    pub async fn channel(&self) -> Channel {
        tonic::transport::Endpoint::from_shared(format!("http://{}", self.addr)).unwrap().connect().await.unwrap()
    }

    /// `kill -9`.
    pub async fn kill(&mut self) {
        self.child.start_kill().expect("kill");
        let _ = self.child.wait().await;
    }
}

/// The current state of a call, failing the test when it is missing.
pub async fn get_call(calls: &mut CallServiceClient<Channel>, call_id: &str) -> pb::Call {
    let req = pb::GetCallRequest { call_id: call_id.to_string(), ..Default::default() };
    calls.get_call(req).await.expect("GetCall succeeds").into_inner().call.expect("call is set")
}

/// The updates a subscription replays until it is caught up.
pub async fn replay(calls: &mut CallServiceClient<Channel>, req: pb::SubscribeRequest) -> Vec<pb::CallUpdate> {
    let mut sub = Sub::open(calls, req).await;
    sub.until(pb::CheckpointReason::CaughtUp).await.0
}

/// The event of an update.
pub fn event(u: &pb::CallUpdate) -> &pb::CallEvent {
    u.event.as_ref().expect("update has an event")
}

/// The (type, state) of each update of `call_id`, in log order.
pub fn steps(updates: &[pb::CallUpdate], call_id: &str) -> Vec<(pb::EventType, pb::CallState)> {
    updates.iter().map(event).filter(|e| e.call_id == call_id).map(|e| (e.r#type(), e.state())).collect()
}

/// The ended detail of an event, failing the test when it has none.
pub fn ended(e: &pb::CallEvent) -> &pb::EndedDetail {
    match &e.detail {
        Some(pb::call_event::Detail::Ended(d)) => d,
        other => panic!("expected an ended detail, got {other:?}"),
    }
}

/// Seconds of an optional timestamp.
pub fn ts_secs(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| t.seconds)
}

/// Milliseconds of an optional timestamp.
pub fn ts_millis(t: &Option<prost_types::Timestamp>) -> Option<i64> {
    t.as_ref().map(|t| t.seconds * 1000 + i64::from(t.nanos) / 1_000_000)
}

/// Whole seconds of an optional duration.
pub fn dur_secs(d: &Option<prost_types::Duration>) -> Option<i64> {
    d.as_ref().map(|d| d.seconds)
}

/// An ingest and a call client on one server, for tests that drive whole
/// calls; vendor test files add their own `send` on top.
pub struct Clients {
    pub ingest: IngestServiceClient<Channel>,
    pub calls: CallServiceClient<Channel>,
}

impl Clients {
    pub async fn new(server: &TestServer) -> Clients {
        Clients { ingest: server.ingest_client().await, calls: server.call_client().await }
    }

    /// Ingests a raw request and returns the gRPC result.
    pub async fn try_ingest(&mut self, req: pb::IngestRequest) -> Result<pb::IngestResponse, tonic::Status> {
        self.ingest.ingest(req).await.map(tonic::Response::into_inner)
    }

    pub async fn call(&mut self, call_id: &str) -> pb::Call {
        get_call(&mut self.calls, call_id).await
    }

    /// Every update in the log (or in the filter), replayed until caught up.
    pub async fn replay(&mut self, req: pb::SubscribeRequest) -> Vec<pb::CallUpdate> {
        replay(&mut self.calls, req).await
    }
}

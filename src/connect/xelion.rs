//! `switchboard connect xelion`: holds the Xelion WebSocket open
//! (vendors.md §2.2) and forwards every call notification to Ingest.
//!
//! 1. Log in (`POST <base>/me/login`) unless a token is given; REST calls
//!    carry `Authorization: xelion <token>`.
//! 2. `POST <base>/me/websocket/` answers `{"object": "wss://…"}`.
//! 3. Open it and subscribe with one `notificationRequest` per call
//!    notification type; keep it alive with `test` messages (echoed back).
//! 4. Send every notification to Ingest with `VENDOR_XELION`.
//!
//! Xelion has no replay: notifications sent while the socket was down are
//! lost. Every reconnect gap is logged with its duration and counted
//! (`switchboard_connector_gaps_total`, `…_gap_seconds`), never hidden.
//! Notifications already received are still delivered across a reconnect.

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::backoff::Backoff;
use super::lanes::Lanes;
use super::sink::{Frame, SinkError};
use super::{ConnectError, Context};

/// The connector's name in metrics, logs and file names.
pub const CONNECTOR: &str = "xelion";

/// The call notifications subscribed to (vendors.md §2.3).
pub const NOTIFICATIONS: &[&str] =
    &["newCallEvent", "callConnectedEvent", "callHungUpEvent", "missedCallEvent", "channelHungUpEvent"];

/// Waiting notifications per lane.
const LANE_DEPTH: usize = 64;

/// How the connector authenticates to Xelion.
#[derive(Clone)]
pub enum Credential {
    /// An API token (`Authorization: xelion <token>`).
    Token(String),
    /// Log in with these; the token is renewed when Xelion refuses it.
    Login {
        /// The user name.
        username: String,
        /// The password.
        password: String,
        /// The user space, if the tenant uses one.
        user_space: Option<String>,
    },
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credential::Token(_) => f.write_str("Token(…)"),
            Credential::Login { username, .. } => write!(f, "Login({username}, …)"),
        }
    }
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct XelionConfig {
    base: Url,
    credential: Credential,
    keepalive: Duration,
}

impl XelionConfig {
    /// Checks the base URL (`https://host/api/v1/<tenant>`).
    pub fn new(base_url: &str, credential: Credential, keepalive: Duration) -> Result<XelionConfig, ConnectError> {
        let bad = |reason: &str| ConnectError::BadUrl { url: base_url.to_string(), reason: reason.to_string() };
        let mut base = Url::parse(base_url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(base.scheme(), "http" | "https") {
            return Err(bad("the scheme must be https:// (or http://)"));
        }
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if let Credential::Token(t) = &credential
            && t.is_empty()
        {
            return Err(ConnectError::BadCredential { what: "--xelion-token", reason: "it is empty".into() });
        }
        Ok(XelionConfig { base, credential, keepalive: keepalive.max(Duration::from_millis(100)) })
    }

    fn endpoint(&self, path: &str) -> Result<Url, ConnectError> {
        self.base.join(path).map_err(|e| ConnectError::BadUrl { url: self.base.to_string(), reason: e.to_string() })
    }
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Why a step of connecting failed.
enum Failure {
    /// Xelion said no to the credential (or the URL): bounded retries.
    Refused(String),
    /// Xelion refused a token obtained by logging in: log in again.
    TokenExpired,
    /// Network or server trouble: retry.
    Transient(String),
}

/// What a lane reports.
enum LaneReport {
    Fatal(SinkError),
}

/// Runs the connector until `shutdown` (then finishes the notifications in
/// flight), a fatal Ingest error, or Xelion refusing the credential
/// `max_refusals` times in a row.
pub async fn run(config: XelionConfig, ctx: Context, shutdown: CancellationToken) -> Result<(), ConnectError> {
    let tls = super::tls::client_config().map_err(|e| ConnectError::Tls(e.to_string()))?;
    let http = reqwest::Client::builder()
        .tls_backend_preconfigured((*tls).clone())
        .timeout(Duration::from_secs(30))
        .build()
        .map_err(|e| ConnectError::Tls(e.to_string()))?;
    let cancel = CancellationToken::new();
    let (report_tx, mut reports) = mpsc::unbounded_channel::<LaneReport>();
    let mut lanes = {
        let sink = ctx.sink.clone();
        let cancel = cancel.clone();
        Lanes::spawn(ctx.settings.concurrency, LANE_DEPTH, move |frame: Frame| {
            let (sink, cancel, report) = (sink.clone(), cancel.clone(), report_tx.clone());
            async move {
                match sink.deliver(&frame, &cancel).await {
                    Ok(_) => true,
                    Err(SinkError::Cancelled) => false,
                    Err(e) => {
                        let _ = report.send(LaneReport::Fatal(e));
                        false
                    }
                }
            }
        })
    };
    let result = connect_loop(&config, &ctx, &http, tls, &lanes, &mut reports, &shutdown).await;
    // Finish what was received: Xelion will not send it again.
    lanes.close();
    let drained = tokio::time::timeout(ctx.settings.shutdown_grace, async {
        while let Some(LaneReport::Fatal(e)) = reports.recv().await {
            tracing::error!(connector = CONNECTOR, error = %e, "Ingest refused a notification while shutting down");
        }
    })
    .await;
    if drained.is_err() {
        tracing::warn!(connector = CONNECTOR, "shutdown grace over; notifications still in flight are lost");
    }
    cancel.cancel();
    lanes.abort().await;
    result
}

async fn connect_loop(
    config: &XelionConfig,
    ctx: &Context,
    http: &reqwest::Client,
    tls: Arc<rustls::ClientConfig>,
    lanes: &Lanes<Frame>,
    reports: &mut mpsc::UnboundedReceiver<LaneReport>,
    shutdown: &CancellationToken,
) -> Result<(), ConnectError> {
    let mut token = match &config.credential {
        Credential::Token(t) => Some(t.clone()),
        Credential::Login { .. } => None,
    };
    let mut reconnect = Backoff::new(ctx.settings.reconnect);
    let mut refusals = 0u32;
    let mut sessions = 0u64;
    // When the last socket was lost (the start of a gap).
    let mut lost: Option<(Instant, chrono::DateTime<chrono::Utc>)> = None;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = open(config, http, &mut token, tls.clone()) => r,
        };
        let ws = match attempt {
            Ok(ws) => ws,
            Err(failure) => {
                let delay = reconnect.next_delay();
                let refusal = match failure {
                    Failure::TokenExpired => {
                        // Log in again next time; a fresh token refused again
                        // counts toward --max-refusals like any refusal.
                        token = None;
                        Some("Xelion refused the session token (HTTP 401)".to_string())
                    }
                    Failure::Refused(reason) => Some(reason),
                    Failure::Transient(reason) => {
                        tracing::warn!(connector = CONNECTOR, %reason, retry_in = ?delay, "cannot connect to Xelion");
                        None
                    }
                };
                if let Some(reason) = refusal {
                    refusals += 1;
                    tracing::error!(connector = CONNECTOR, %reason, attempt = refusals, of = ctx.settings.max_refusals, "Xelion refused the connection");
                    if refusals >= ctx.settings.max_refusals {
                        return Err(ConnectError::Refused {
                            vendor: "Xelion",
                            tries: refusals,
                            reason,
                            hint: "check --base-url (https://host/api/v1/<tenant>) and --xelion-token or --username/--password",
                        });
                    }
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
                continue;
            }
        };
        refusals = 0;
        sessions += 1;
        if sessions > 1 {
            ctx.ops.metrics.reconnects.increment(1);
        }
        ctx.ops.set_connected(true);
        if let Some((since, at)) = lost.take() {
            let gap = since.elapsed();
            ctx.ops.metrics.gaps.increment(1);
            ctx.ops.metrics.gap_seconds.record(gap.as_secs_f64());
            tracing::warn!(
                connector = CONNECTOR,
                gap_seconds = gap.as_secs_f64(),
                from = %at.to_rfc3339(),
                to = %chrono::Utc::now().to_rfc3339(),
                "Xelion has no replay: notifications sent while disconnected are lost"
            );
        }
        tracing::info!(connector = CONNECTOR, subscribed = ?NOTIFICATIONS, "connected and subscribed");
        let started = Instant::now();
        let end = session(ws, config, ctx, lanes, reports, shutdown).await;
        ctx.ops.set_connected(false);
        match end {
            Ok(None) => return Ok(()),
            Ok(Some(reason)) => {
                lost = Some((Instant::now(), chrono::Utc::now()));
                if started.elapsed() > Duration::from_secs(30) {
                    reconnect.reset();
                }
                let delay = reconnect.next_delay();
                tracing::warn!(connector = CONNECTOR, %reason, retry_in = ?delay, "connection lost; reconnecting");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

/// Logs in if needed, asks for the WebSocket URL, opens it and subscribes.
async fn open(
    config: &XelionConfig,
    http: &reqwest::Client,
    token: &mut Option<String>,
    tls: Arc<rustls::ClientConfig>,
) -> Result<Socket, Failure> {
    let current = match token {
        Some(t) => t.clone(),
        None => {
            let t = login(config, http).await?;
            *token = Some(t.clone());
            t
        }
    };
    let url = config.endpoint("me/websocket/").map_err(|e| Failure::Refused(e.to_string()))?;
    let resp = http
        .post(url.clone())
        .header("Authorization", format!("xelion {current}"))
        .json(&json!({}))
        .send()
        .await
        .map_err(|e| Failure::Transient(format!("POST {url}: {e}")))?;
    let status = resp.status();
    if status == reqwest::StatusCode::UNAUTHORIZED && matches!(config.credential, Credential::Login { .. }) {
        return Err(Failure::TokenExpired);
    }
    if status.is_client_error() {
        return Err(Failure::Refused(format!("POST {url}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(Failure::Transient(format!("POST {url}: HTTP {status}")));
    }
    let body: Value = resp.json().await.map_err(|e| Failure::Transient(format!("POST {url}: {e}")))?;
    let Some(ws_url) = body.get("object").and_then(Value::as_str) else {
        return Err(Failure::Transient(format!("POST {url}: no \"object\" with the WebSocket URL in {body}")));
    };
    let (mut ws, _) = match tokio_tungstenite::connect_async_tls_with_config(
        ws_url,
        None,
        true,
        Some(Connector::Rustls(tls)),
    )
    .await
    {
        Ok(ok) => ok,
        Err(tungstenite::Error::Http(resp)) if resp.status().is_client_error() => {
            return Err(Failure::Transient(format!("the WebSocket URL was refused: HTTP {}", resp.status())));
        }
        Err(e) => return Err(Failure::Transient(format!("WebSocket: {e}"))),
    };
    for kind in NOTIFICATIONS {
        let request = json!({"messageType": "notificationRequest", "notificationType": kind, "toggle": true});
        ws.send(Message::text(request.to_string()))
            .await
            .map_err(|e| Failure::Transient(format!("subscribing: {e}")))?;
    }
    Ok(ws)
}

async fn login(config: &XelionConfig, http: &reqwest::Client) -> Result<String, Failure> {
    let Credential::Login { username, password, user_space } = &config.credential else {
        return Err(Failure::Refused("no credential".into()));
    };
    let url = config.endpoint("me/login").map_err(|e| Failure::Refused(e.to_string()))?;
    let mut body = json!({"userName": username, "password": password});
    if let Some(space) = user_space {
        body["userSpace"] = json!(space);
    }
    let resp =
        http.post(url.clone()).json(&body).send().await.map_err(|e| Failure::Transient(format!("POST {url}: {e}")))?;
    let status = resp.status();
    if status.is_client_error() {
        return Err(Failure::Refused(format!("login refused: POST {url}: HTTP {status}")));
    }
    if !status.is_success() {
        return Err(Failure::Transient(format!("POST {url}: HTTP {status}")));
    }
    let answer: Value = resp.json().await.map_err(|e| Failure::Transient(format!("POST {url}: {e}")))?;
    match answer.get("authentication").and_then(Value::as_str) {
        Some(t) if !t.is_empty() => Ok(t.to_string()),
        _ => Err(Failure::Refused(format!("login answered without an \"authentication\" token: {answer}"))),
    }
}

/// Reads notifications until the socket drops (`Ok(Some(reason))`),
/// shutdown (`Ok(None)`) or a fatal Ingest error.
async fn session(
    ws: Socket,
    config: &XelionConfig,
    ctx: &Context,
    lanes: &Lanes<Frame>,
    reports: &mut mpsc::UnboundedReceiver<LaneReport>,
    shutdown: &CancellationToken,
) -> Result<Option<String>, ConnectError> {
    let (mut write, mut read) = ws.split();
    let mut keepalive = tokio::time::interval(config.keepalive);
    keepalive.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // Keepalives sent since Xelion last said anything; counted in sends,
    // not wall time, so a stalled process does not mistake itself for a dead socket.
    let mut unanswered = 0u32;
    loop {
        tokio::select! {
            frame = read.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(close))) => return Ok(Some(format!("closed by Xelion: {close:?}"))),
                    Some(Ok(_)) => { unanswered = 0; continue; }
                    Some(Err(e)) => return Ok(Some(e.to_string())),
                    None => return Ok(Some("the connection ended".into())),
                };
                unanswered = 0;
                let Some(key) = notification_key(text.as_str()) else {
                    ctx.ops.metrics.control_frames.increment(1);
                    tracing::debug!(connector = CONNECTOR, frame = %text.as_str(), "not a notification");
                    continue;
                };
                ctx.ops.metrics.received.increment(1);
                let frame = Frame {
                    payload: Bytes::from(text),
                    request_id: format!("xelion:{}", uuid::Uuid::new_v4()),
                    received_at: SystemTime::now(),
                };
                tokio::select! {
                    sent = lanes.dispatch(&key, frame) => if sent.is_err() { continue },
                    _ = shutdown.cancelled() => return Ok(None),
                }
            }
            _ = keepalive.tick() => {
                if unanswered >= 3 {
                    return Ok(Some(format!("no answer to {unanswered} keepalives")));
                }
                unanswered += 1;
                let test = json!({"messageType": "test", "message": format!("keepalive {}", chrono::Utc::now().to_rfc3339())});
                if let Err(e) = write.send(Message::text(test.to_string())).await {
                    return Ok(Some(format!("keepalive: {e}")));
                }
            }
            Some(LaneReport::Fatal(e)) = reports.recv() => return Err(ConnectError::Ingest(e)),
            _ = shutdown.cancelled() => {
                ctx.ops.set_draining();
                let _ = write.send(Message::Close(None)).await;
                return Ok(None);
            }
        }
    }
}

/// The ordering key of a notification (its `callId`), or `None` for frames
/// that are not notifications (`test` echoes, replies to requests).
fn notification_key(text: &str) -> Option<String> {
    let value: Value = serde_json::from_str(text).ok()?;
    if value.get("messageType").and_then(Value::as_str) == Some("test") {
        return None;
    }
    value.get("notificationType")?;
    let body = value.get("notification");
    let key = ["callId", "calleeFlowId", "callerFlowId"]
        .iter()
        .find_map(|k| body.and_then(|b| b.get(*k)).and_then(Value::as_str))
        .unwrap_or_default();
    Some(key.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notifications_are_keyed_by_call_and_test_echoes_are_not_notifications() {
        let hangup =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xelion/callHungUpEvent.json"))
                .unwrap();
        assert_eq!(notification_key(&hangup).as_deref(), Some("186ba647df1ef222"));
        let echo =
            std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/xelion/test-echo.json"))
                .unwrap();
        assert_eq!(notification_key(&echo), None);
        assert_eq!(notification_key(r#"{"messageType":"notificationRequest","status":"ok"}"#), None);
    }

    #[test]
    fn the_base_url_gets_a_trailing_slash() {
        let c =
            XelionConfig::new("https://x.example/api/v1/acme", Credential::Token("t".into()), Duration::from_secs(30))
                .unwrap();
        assert_eq!(c.endpoint("me/websocket/").unwrap().as_str(), "https://x.example/api/v1/acme/me/websocket/");
        assert!(XelionConfig::new("wss://x/api", Credential::Token("t".into()), Duration::from_secs(1)).is_err());
    }
}

//! `switchboard connect 8x8-event-streaming`: a Pulsar WebSocket consumer or
//! reader of 8x8 Event Streaming (vendors.md §3.1).
//!
//! Every data frame (`{messageId, payload, properties, publishTime,
//! redeliveryCount}`) goes to Ingest exactly as received and is acknowledged
//! (`{"messageId": …}`) only once Ingest answered ACCEPTED, DUPLICATE or
//! IGNORED, or rejected it and it was dead-lettered. Control frames
//! (`isEndOfTopic`, anything without a `messageId`, WebSocket pings) are
//! never acknowledged. A dropped connection is reopened with backoff and
//! jitter; the broker redelivers what was not acknowledged, and Ingest
//! answers DUPLICATE for what it already has. A reader resumes from its last
//! acknowledged `messageId`, kept under `--data-dir`.
//!
//! Frames of one `interactionGUID` are ingested one after another in arrival
//! order; different interactions are pipelined over `--concurrency` lanes.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use base64::Engine as _;
use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};
use tokio_util::sync::CancellationToken;
use url::Url;

use super::backoff::Backoff;
use super::cursor::{CursorStore, Watermark};
use super::lanes::Lanes;
use super::sink::{Frame, SinkError};
use super::{ConnectError, Context};

/// The connector's name in metrics, logs and file names.
pub const CONNECTOR: &str = "8x8-event-streaming";

/// Waiting frames per lane: with `--concurrency` lanes this bounds the
/// unacknowledged frames the connector holds (16 lanes: 512 frames, about
/// 0.5 MiB), and is deep enough that one busy interaction seldom stalls the
/// socket for the others.
const LANE_DEPTH: usize = 32;

/// Which Pulsar WebSocket endpoint the URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EndpointKind {
    /// `/ws/v2/consumer/persistent/{tenant}/{namespace}/{topic}/{subscription}`:
    /// the broker tracks acknowledgements and redelivers the rest.
    Consumer,
    /// `/ws/v2/reader/persistent/{tenant}/{namespace}/{topic}`: the connector
    /// keeps its own cursor.
    Reader,
}

/// Where and how to connect.
#[derive(Clone, Debug)]
pub struct PulsarConfig {
    url: Url,
    api_key: HeaderValue,
    kind: EndpointKind,
}

impl PulsarConfig {
    /// Checks the URL (a `ws://` or `wss://` Pulsar consumer or reader URL)
    /// and the key (sent as the `X-API-Key` header).
    pub fn new(url: &str, api_key: &str) -> Result<PulsarConfig, ConnectError> {
        let bad = |reason: &str| ConnectError::BadUrl { url: url.to_string(), reason: reason.to_string() };
        let parsed = Url::parse(url).map_err(|e| bad(&e.to_string()))?;
        if !matches!(parsed.scheme(), "ws" | "wss") {
            return Err(bad("the scheme must be ws:// or wss://"));
        }
        let kind = if parsed.path().contains("/ws/v2/consumer/persistent/") {
            EndpointKind::Consumer
        } else if parsed.path().contains("/ws/v2/reader/persistent/") {
            EndpointKind::Reader
        } else {
            return Err(bad(
                "not a Pulsar WebSocket URL: expected …/ws/v2/consumer/persistent/{tenant}/{namespace}/{topic}/{subscription} \
                 or …/ws/v2/reader/persistent/{tenant}/{namespace}/{topic}",
            ));
        };
        let api_key = HeaderValue::from_str(api_key).map_err(|_| ConnectError::BadCredential {
            what: "--api-key",
            reason: "it contains characters a header cannot carry".into(),
        })?;
        if api_key.is_empty() {
            return Err(ConnectError::BadCredential { what: "--api-key", reason: "it is empty".into() });
        }
        Ok(PulsarConfig { url: parsed, api_key, kind })
    }

    /// Consumer or reader.
    pub fn kind(&self) -> EndpointKind {
        self.kind
    }

    /// The URL of the next connection: a reader's stored cursor replaces any
    /// `messageId` in the URL (URL-encoded: ids contain `+ / =`).
    fn url_from(&self, resume_after: Option<&str>) -> Url {
        let mut url = self.url.clone();
        if let Some(id) = resume_after {
            let others: Vec<(String, String)> = url
                .query_pairs()
                .filter(|(k, _)| k != "messageId")
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect();
            let mut pairs = url.query_pairs_mut();
            pairs.clear();
            for (k, v) in &others {
                pairs.append_pair(k, v);
            }
            pairs.append_pair("messageId", id);
        }
        url
    }

    /// The URL without its query or credentials, for logs and the cursor.
    fn topic(&self) -> String {
        format!("{}{}", self.url.host_str().unwrap_or_default(), self.url.path())
    }
}

type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// A frame as the broker sends it; only what the connector reads.
#[derive(Deserialize)]
struct Wire<'a> {
    #[serde(rename = "messageId", borrow)]
    message_id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    payload: Option<Cow<'a, str>>,
    #[serde(rename = "publishTime", borrow)]
    publish_time: Option<Cow<'a, str>>,
    #[serde(rename = "type", borrow)]
    kind: Option<Cow<'a, str>>,
}

/// The decoded event, for its ordering key only.
#[derive(Deserialize)]
struct Event {
    #[serde(rename = "Interaction")]
    interaction: Option<Keys>,
    #[serde(rename = "AgentStatusChange")]
    agent_status: Option<Keys>,
    #[serde(rename = "AgentProvChange")]
    agent_prov: Option<Keys>,
}

#[derive(Deserialize)]
struct Keys {
    #[serde(rename = "interactionGUID")]
    interaction_guid: Option<String>,
    #[serde(rename = "agentId")]
    agent_id: Option<String>,
}

/// What a text frame is.
#[derive(Debug, PartialEq)]
pub enum Parsed {
    /// A Pulsar message: ingest, then acknowledge.
    Data {
        /// Its id, acknowledged as sent.
        message_id: String,
        /// The broker's publish time, for the lag metric.
        publish_time: Option<SystemTime>,
        /// Frames with the same key are ingested in arrival order.
        key: String,
    },
    /// Not an event (`isEndOfTopic`, anything without a `messageId`).
    Control(String),
}

/// Classifies one text frame.
pub fn parse_frame(text: &str) -> Parsed {
    let Ok(wire) = serde_json::from_str::<Wire<'_>>(text) else {
        return Parsed::Control("not a JSON object".into());
    };
    let (Some(message_id), Some(payload)) = (wire.message_id, wire.payload) else {
        return Parsed::Control(wire.kind.map(Cow::into_owned).unwrap_or_else(|| "frame without a messageId".into()));
    };
    let publish_time = wire
        .publish_time
        .and_then(|t| chrono::DateTime::parse_from_rfc3339(&t).ok())
        .map(|t| SystemTime::from(t.with_timezone(&chrono::Utc)));
    let key = ordering_key(&payload).unwrap_or_else(|| message_id.to_string());
    Parsed::Data { message_id: message_id.into_owned(), publish_time, key }
}

/// The interaction (or, for agent events, the agent) a payload is about.
fn ordering_key(payload: &str) -> Option<String> {
    let bytes = base64::engine::general_purpose::STANDARD.decode(payload).ok()?;
    let event: Event = serde_json::from_slice(&bytes).ok()?;
    let keys = event.interaction.or(event.agent_status).or(event.agent_prov)?;
    keys.interaction_guid.or(keys.agent_id)
}

/// A frame on its way through a lane.
struct Job {
    frame: Frame,
    ack: Ack,
}

/// What to acknowledge once the frame is delivered.
struct Ack {
    seq: u64,
    message_id: String,
    publish_time: Option<SystemTime>,
}

/// What a lane reports to the session.
enum LaneReport {
    Delivered(Ack),
    Fatal(SinkError),
}

/// How a session ended.
enum SessionEnd {
    /// The broker or the network dropped it: reconnect.
    Dropped { reason: String, delivered: u64 },
    /// Shutdown was requested and the in-flight frames were finished.
    Shutdown,
    /// Ingest refused the connector (or the dead-letter file failed).
    Fatal(SinkError),
}

/// Runs the connector until `shutdown` (then finishes the in-flight frames),
/// a fatal Ingest error, or the broker refusing the key or URL
/// `max_refusals` times in a row.
pub async fn run(config: PulsarConfig, ctx: Context, shutdown: CancellationToken) -> Result<(), ConnectError> {
    let tls = super::tls::client_config().map_err(|e| ConnectError::Tls(e.to_string()))?;
    let cursor =
        (config.kind == EndpointKind::Reader).then(|| CursorStore::new(&ctx.settings.data_dir, &config.topic()));
    let mut reconnect = Backoff::new(ctx.settings.reconnect);
    let mut refusals = 0u32;
    let mut sessions = 0u64;
    loop {
        if shutdown.is_cancelled() {
            return Ok(());
        }
        let resume_after = match &cursor {
            Some(c) => c.load().map_err(|e| ConnectError::Io(format!("cursor {}: {e}", c.path().display())))?,
            None => None,
        };
        let url = config.url_from(resume_after.as_deref());
        let attempt = tokio::select! {
            _ = shutdown.cancelled() => return Ok(()),
            r = open(&url, &config.api_key, tls.clone()) => r,
        };
        let ws = match attempt {
            Ok(ws) => ws,
            Err(failure) => {
                let delay = reconnect.next_delay();
                match failure {
                    Failure::Refused(reason) => {
                        refusals += 1;
                        tracing::error!(
                            connector = CONNECTOR,
                            topic = %config.topic(),
                            %reason,
                            attempt = refusals,
                            of = ctx.settings.max_refusals,
                            "the broker refused the connection"
                        );
                        if refusals >= ctx.settings.max_refusals {
                            return Err(ConnectError::Refused {
                                vendor: "8x8 Event Streaming",
                                tries: refusals,
                                reason,
                                hint: "check --api-key (sent as X-API-Key) and the tenant, topic and subscription in --url",
                            });
                        }
                    }
                    Failure::Transient(reason) => {
                        tracing::warn!(connector = CONNECTOR, topic = %config.topic(), %reason, retry_in = ?delay, "cannot connect to the broker");
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
        tracing::info!(connector = CONNECTOR, topic = %config.topic(), resume_after = ?resume_after, "connected");
        let started = Instant::now();
        let end = session(ws, &ctx, cursor.as_ref(), &shutdown).await;
        ctx.ops.set_connected(false);
        match end {
            SessionEnd::Shutdown => return Ok(()),
            SessionEnd::Fatal(e) => return Err(ConnectError::Ingest(e)),
            SessionEnd::Dropped { reason, delivered } => {
                if delivered > 0 || started.elapsed() > Duration::from_secs(30) {
                    reconnect.reset();
                }
                let delay = reconnect.next_delay();
                tracing::warn!(connector = CONNECTOR, %reason, retry_in = ?delay, "connection lost; reconnecting (unacknowledged messages will be redelivered)");
                tokio::select! {
                    _ = shutdown.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
        }
    }
}

/// Why a connection attempt failed.
enum Failure {
    /// The broker answered and said no (HTTP 4xx: key, tenant, topic), or the URL is unusable.
    Refused(String),
    /// Network or server trouble: retry.
    Transient(String),
}

async fn open(url: &Url, api_key: &HeaderValue, tls: Arc<rustls::ClientConfig>) -> Result<Socket, Failure> {
    let mut request = url.as_str().into_client_request().map_err(|e| Failure::Refused(e.to_string()))?;
    request.headers_mut().insert("X-API-Key", api_key.clone());
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(Connector::Rustls(tls))).await {
        Ok((ws, _)) => Ok(ws),
        Err(tungstenite::Error::Http(resp)) if resp.status().is_client_error() => {
            let body = resp.body().as_deref().map(String::from_utf8_lossy).unwrap_or_default().trim().to_string();
            Err(Failure::Refused(format!(
                "HTTP {}{}",
                resp.status(),
                if body.is_empty() { String::new() } else { format!(": {body}") }
            )))
        }
        Err(tungstenite::Error::Url(e)) => Err(Failure::Refused(e.to_string())),
        Err(e) => Err(Failure::Transient(e.to_string())),
    }
}

async fn session(ws: Socket, ctx: &Context, cursor: Option<&CursorStore>, shutdown: &CancellationToken) -> SessionEnd {
    let (mut write, mut read) = ws.split();
    let cancel = CancellationToken::new();
    let (report_tx, mut reports) = mpsc::unbounded_channel::<LaneReport>();
    let mut lanes = {
        let sink = ctx.sink.clone();
        let cancel = cancel.clone();
        Lanes::spawn(ctx.settings.concurrency, LANE_DEPTH, move |job: Job| {
            let (sink, cancel, report) = (sink.clone(), cancel.clone(), report_tx.clone());
            async move {
                match sink.deliver(&job.frame, &cancel).await {
                    Ok(_) => report.send(LaneReport::Delivered(job.ack)).is_ok(),
                    Err(SinkError::Cancelled) => false,
                    Err(e) => {
                        let _ = report.send(LaneReport::Fatal(e));
                        false
                    }
                }
            }
        })
    };
    let mut watermark = Watermark::default();
    let mut delivered = 0u64;
    let mut draining = false;
    let grace = tokio::time::sleep(Duration::MAX);
    tokio::pin!(grace);
    let end = loop {
        tokio::select! {
            frame = read.next(), if !draining => {
                let text = match frame {
                    Some(Ok(Message::Text(text))) => text,
                    Some(Ok(Message::Close(close))) => {
                        break SessionEnd::Dropped { reason: format!("closed by the broker: {close:?}"), delivered };
                    }
                    Some(Ok(Message::Binary(_))) => {
                        ctx.ops.metrics.control_frames.increment(1);
                        tracing::debug!(connector = CONNECTOR, "binary frame ignored");
                        continue;
                    }
                    // Pings are answered by the WebSocket layer; never acknowledged.
                    Some(Ok(_)) => continue,
                    Some(Err(e)) => break SessionEnd::Dropped { reason: e.to_string(), delivered },
                    None => break SessionEnd::Dropped { reason: "the connection ended".into(), delivered },
                };
                match parse_frame(text.as_str()) {
                    Parsed::Control(kind) => {
                        ctx.ops.metrics.control_frames.increment(1);
                        tracing::debug!(connector = CONNECTOR, %kind, "control frame (not acknowledged)");
                    }
                    Parsed::Data { message_id, publish_time, key } => {
                        ctx.ops.metrics.received.increment(1);
                        let seq = watermark.register();
                        let job = Job {
                            frame: Frame { payload: Bytes::from(text), request_id: String::new(), received_at: SystemTime::now() },
                            ack: Ack { seq, message_id, publish_time },
                        };
                        tokio::select! {
                            sent = lanes.dispatch(&key, job) => if sent.is_err() {
                                // A lane stopped: its fatal report is on the way.
                                continue;
                            },
                            // Not dispatched, not acknowledged: the broker redelivers it.
                            _ = shutdown.cancelled() => {}
                        }
                    }
                }
            }
            report = reports.recv() => match report {
                Some(LaneReport::Delivered(ack)) => {
                    let text = serde_json::json!({ "messageId": ack.message_id }).to_string();
                    if let Err(e) = write.send(Message::text(text)).await {
                        break SessionEnd::Dropped { reason: format!("acknowledging: {e}"), delivered };
                    }
                    delivered += 1;
                    ctx.ops.metrics.acknowledged.increment(1);
                    if let Some(published) = ack.publish_time {
                        let lag = SystemTime::now().duration_since(published).unwrap_or_default();
                        ctx.ops.metrics.ack_lag.record(lag.as_secs_f64());
                    }
                    if let (Some(store), Some(id)) = (cursor, watermark.complete(ack.seq, ack.message_id))
                        && let Err(e) = store.save(&id).await
                    {
                        tracing::warn!(connector = CONNECTOR, path = %store.path().display(), error = %e, "cannot store the cursor");
                    }
                }
                Some(LaneReport::Fatal(e)) => break SessionEnd::Fatal(e),
                // Every lane finished after shutdown: the in-flight frames are done.
                None => break SessionEnd::Shutdown,
            },
            _ = shutdown.cancelled(), if !draining => {
                draining = true;
                ctx.ops.set_draining();
                tracing::info!(connector = CONNECTOR, grace = ?ctx.settings.shutdown_grace, "shutting down: finishing the frames in flight");
                lanes.close();
                grace.as_mut().reset(tokio::time::Instant::now() + ctx.settings.shutdown_grace);
            }
            _ = &mut grace => {
                tracing::warn!(connector = CONNECTOR, "shutdown grace over; unfinished frames stay unacknowledged and will be redelivered");
                cancel.cancel();
                grace.as_mut().reset(tokio::time::Instant::now() + Duration::from_secs(3600));
            }
        }
    };
    cancel.cancel();
    lanes.abort().await;
    if matches!(end, SessionEnd::Shutdown) {
        let _ = write.send(Message::Close(None)).await;
        let _ = write.flush().await;
    }
    end
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn data_frames_carry_their_interaction_as_the_key() {
        let frame = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/8x8_event_streaming/frame-interaction-created.json"
        ))
        .unwrap();
        let Parsed::Data { message_id, publish_time, key } = parse_frame(&frame) else { panic!("a data frame") };
        assert_eq!(message_id, "CAEQ4AE=");
        assert!(publish_time.is_some());
        assert_eq!(key, "int-184a63564dc-ohWfVIbHJz2Hr2JFhAfdlb4Fa-phone-00-acmecorp01");
    }

    #[test]
    fn control_frames_are_not_messages() {
        assert_eq!(
            parse_frame(r#"{"type":"isEndOfTopic","endOfTopic":"true"}"#),
            Parsed::Control("isEndOfTopic".into())
        );
        assert!(matches!(parse_frame("[1,2]"), Parsed::Control(_)));
        assert!(matches!(parse_frame(r#"{"messageId":"x"}"#), Parsed::Control(_)));
    }

    #[test]
    fn urls_are_checked_and_the_cursor_is_url_encoded() {
        assert!(matches!(
            PulsarConfig::new("https://h/ws/v2/reader/persistent/t/n/x", "k"),
            Err(ConnectError::BadUrl { .. })
        ));
        assert!(matches!(PulsarConfig::new("wss://h/other", "k"), Err(ConnectError::BadUrl { .. })));
        assert!(matches!(
            PulsarConfig::new("wss://h/ws/v2/reader/persistent/t/n/x", ""),
            Err(ConnectError::BadCredential { .. })
        ));
        let c =
            PulsarConfig::new("wss://h/ws/v2/reader/persistent/t/event-v1/all?messageId=earliest&x=1", "k").unwrap();
        assert_eq!(c.kind(), EndpointKind::Reader);
        let url = c.url_from(Some("CAEQ+/A="));
        assert_eq!(url.query(), Some("x=1&messageId=CAEQ%2B%2FA%3D"));
        assert_eq!(c.url_from(None).query(), Some("messageId=earliest&x=1"));
        let consumer = PulsarConfig::new("ws://h:8080/ws/v2/consumer/persistent/t/n/x/sub", "k").unwrap();
        assert_eq!(consumer.kind(), EndpointKind::Consumer);
    }
}

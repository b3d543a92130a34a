//! A stand-in for 8x8 Event Streaming's Pulsar WebSocket endpoint
//! (vendors.md §3.1), following the documented protocol:
//!
//! * consumer `/ws/v2/consumer/persistent/{tenant}/{ns}/{topic}/{sub}` and
//!   reader `/ws/v2/reader/persistent/{tenant}/{ns}/{topic}?messageId=…`;
//! * the `X-API-Key` header is checked (HTTP 401 otherwise);
//! * data frames `{messageId, payload (base64), properties, publishTime,
//!   redeliveryCount}`, control frames (`isEndOfTopic`) and WebSocket pings;
//! * acks are `{"messageId": …}`; a consumer gets every unacknowledged
//!   message again when it reconnects, with `redeliveryCount` raised;
//! * scripted connection drops: mid-stream after N frames, or after the
//!   client acknowledged everything but the acks were lost.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use base64::Engine as _;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::http::StatusCode;

/// The API key the stand-in accepts.
pub const KEY: &str = "test-api-key";

/// A scripted drop of one connection.
#[derive(Clone, Copy, Debug)]
pub enum Drop {
    /// Close the TCP connection (no close frame) after sending this many data frames.
    AfterFrames(usize),
    /// Read acks without applying them ("lost") until every message sent on
    /// this connection was acknowledged, then close the TCP connection.
    AfterLostAcks,
}

struct Msg {
    id: String,
    payload: String,
    publish_time: String,
}

#[derive(Default)]
struct State {
    messages: Vec<Msg>,
    acked: HashSet<String>,
    /// Every ack frame applied, in arrival order.
    acks: Vec<String>,
    /// Ack frames that do not name a message of the topic.
    bad_acks: Vec<String>,
    /// Acks read and thrown away by `Drop::AfterLostAcks`.
    lost_acks: usize,
    deliveries: HashMap<String, u32>,
    drops: VecDeque<Drop>,
    connections: u32,
    refused: u32,
    /// The `messageId` query value (decoded) of each reader connection.
    reader_starts: Vec<Option<String>>,
}

/// A running stand-in.
pub struct PulsarStandIn {
    /// Where it listens.
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    published: watch::Sender<u64>,
    task: JoinHandle<()>,
}

impl PulsarStandIn {
    /// Starts listening on a free loopback port.
    pub async fn start() -> PulsarStandIn {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let (published, _) = watch::channel(0u64);
        let (s, p) = (state.clone(), published.clone());
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, s.clone(), p.subscribe()));
            }
        });
        PulsarStandIn { addr, state, published, task }
    }

    /// A consumer URL of the topic.
    pub fn consumer_url(&self) -> String {
        format!("ws://{}/ws/v2/consumer/persistent/acmecorp01/event-v1/all/switchboard", self.addr)
    }

    /// A reader URL of the topic starting at the earliest message.
    pub fn reader_url(&self) -> String {
        format!("ws://{}/ws/v2/reader/persistent/acmecorp01/event-v1/all?messageId=earliest", self.addr)
    }

    /// Appends a message whose payload is `event` (base64 of its JSON);
    /// returns its id. Ids contain `+`, `/` and `=`, as Pulsar's do.
    pub fn publish(&self, event: &Value) -> String {
        let mut st = self.state.lock().unwrap();
        let n = st.messages.len() as u32;
        let id = base64::engine::general_purpose::STANDARD.encode([0x08, 0xfb, 0xff, (n >> 8) as u8, n as u8]);
        let payload = base64::engine::general_purpose::STANDARD.encode(event.to_string());
        st.messages.push(Msg { id: id.clone(), payload, publish_time: chrono::Utc::now().to_rfc3339() });
        drop(st);
        self.published.send_modify(|v| *v += 1);
        id
    }

    /// Scripts the next connections' drops, in order.
    pub fn drop_connections(&self, drops: &[Drop]) {
        self.state.lock().unwrap().drops.extend(drops.iter().copied());
    }

    /// Acknowledged message ids.
    pub fn acked(&self) -> HashSet<String> {
        self.state.lock().unwrap().acked.clone()
    }

    /// Every applied ack, in order (with repeats).
    pub fn acks(&self) -> Vec<String> {
        self.state.lock().unwrap().acks.clone()
    }

    /// Ack frames that named no message of the topic.
    pub fn bad_acks(&self) -> Vec<String> {
        self.state.lock().unwrap().bad_acks.clone()
    }

    /// Acks thrown away by `Drop::AfterLostAcks`.
    pub fn lost_acks(&self) -> usize {
        self.state.lock().unwrap().lost_acks
    }

    /// How many times `id` was sent.
    pub fn deliveries(&self, id: &str) -> u32 {
        self.state.lock().unwrap().deliveries.get(id).copied().unwrap_or(0)
    }

    /// Connections accepted (handshake passed).
    pub fn connections(&self) -> u32 {
        self.state.lock().unwrap().connections
    }

    /// Handshakes refused for a wrong key.
    pub fn refused(&self) -> u32 {
        self.state.lock().unwrap().refused
    }

    /// The `messageId` each reader connection asked to start from.
    pub fn reader_starts(&self) -> Vec<Option<String>> {
        self.state.lock().unwrap().reader_starts.clone()
    }
}

impl std::ops::Drop for PulsarStandIn {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn frame(m: &Msg, redelivery: u32) -> String {
    json!({
        "messageId": m.id,
        "payload": m.payload,
        "properties": {"tenant": "acmecorp01"},
        "publishTime": m.publish_time,
        "redeliveryCount": redelivery,
    })
    .to_string()
}

/// A connection's path and the `messageId` it asked for.
type Handshake = (String, Option<String>);

async fn serve(stream: TcpStream, state: Arc<Mutex<State>>, mut published: watch::Receiver<u64>) {
    // The path and `messageId` query value the handshake saw.
    let seen: Arc<Mutex<Option<Handshake>>> = Arc::default();
    let (st, seen_cb) = (state.clone(), seen.clone());
    // The signature is tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let path = req.uri().path().to_string();
        if !path.starts_with("/ws/v2/consumer/persistent/") && !path.starts_with("/ws/v2/reader/persistent/") {
            let mut r = ErrorResponse::new(Some("no such topic".into()));
            *r.status_mut() = StatusCode::NOT_FOUND;
            return Err(r);
        }
        if req.headers().get("X-API-Key").and_then(|v| v.to_str().ok()) != Some(KEY) {
            st.lock().unwrap().refused += 1;
            let mut r = ErrorResponse::new(Some("invalid API key".into()));
            *r.status_mut() = StatusCode::UNAUTHORIZED;
            return Err(r);
        }
        let start = req.uri().query().and_then(|q| {
            url::form_urlencoded::parse(q.as_bytes()).find(|(k, _)| k == "messageId").map(|(_, v)| v.into_owned())
        });
        *seen_cb.lock().unwrap() = Some((path, start));
        Ok(resp)
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let Some((path, start)) = seen.lock().unwrap().take() else { return };
    let reader = path.starts_with("/ws/v2/reader/");
    let script = {
        let mut st = state.lock().unwrap();
        st.connections += 1;
        if reader {
            st.reader_starts.push(start.clone());
        }
        st.drops.pop_front()
    };
    // A reader's position: after the message named in the query ("earliest": from the start).
    let mut reader_next = match start.as_deref() {
        Some("earliest") | None => 0,
        Some("latest") => state.lock().unwrap().messages.len(),
        Some(id) => state.lock().unwrap().messages.iter().position(|m| m.id == id).map_or(0, |i| i + 1),
    };
    let mut sent_here: HashSet<String> = HashSet::new();
    let mut acked_here: HashSet<String> = HashSet::new();
    let mut data_sent = 0usize;
    // Not events: a ping and a control frame before any data.
    if ws.send(Message::Ping(b"hi".to_vec().into())).await.is_err() {
        return;
    }
    if ws.send(Message::text(r#"{"type":"isEndOfTopic","endOfTopic":"false"}"#)).await.is_err() {
        return;
    }
    loop {
        let batch: Vec<String> = {
            let mut st = state.lock().unwrap();
            let pending: Vec<usize> = if reader {
                let r = (reader_next..st.messages.len()).collect();
                reader_next = st.messages.len();
                r
            } else {
                (0..st.messages.len())
                    .filter(|&i| !st.acked.contains(&st.messages[i].id) && !sent_here.contains(&st.messages[i].id))
                    .collect()
            };
            pending
                .into_iter()
                .map(|i| {
                    let id = st.messages[i].id.clone();
                    let before = st.deliveries.get(&id).copied().unwrap_or(0);
                    st.deliveries.insert(id.clone(), before + 1);
                    sent_here.insert(id);
                    frame(&st.messages[i], before)
                })
                .collect()
        };
        let had_batch = !batch.is_empty();
        for f in batch {
            if ws.send(Message::text(f)).await.is_err() {
                return;
            }
            data_sent += 1;
            if let Some(Drop::AfterFrames(n)) = script
                && data_sent == n
            {
                return; // the TCP connection drops mid-stream
            }
        }
        if had_batch && ws.send(Message::text(r#"{"type":"isEndOfTopic","endOfTopic":"false"}"#)).await.is_err() {
            return;
        }
        tokio::select! {
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                let id = serde_json::from_str::<Value>(&text).ok().and_then(|v| {
                    let obj = v.as_object()?;
                    (obj.len() == 1).then(|| obj.get("messageId")?.as_str().map(str::to_string)).flatten()
                });
                let mut st = state.lock().unwrap();
                match id {
                    Some(id) if st.messages.iter().any(|m| m.id == id) => {
                        if matches!(script, Some(Drop::AfterLostAcks)) {
                            st.lost_acks += 1;
                            acked_here.insert(id);
                            if st.messages.iter().all(|m| st.acked.contains(&m.id) || acked_here.contains(&m.id)) {
                                return; // everything acknowledged, every ack lost: drop
                            }
                        } else {
                            st.acked.insert(id.clone());
                            st.acks.push(id);
                        }
                    }
                    _ => st.bad_acks.push(text),
                }
            }
            changed = published.changed() => if changed.is_err() { return },
        }
    }
}

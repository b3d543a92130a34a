//! A stand-in for Xelion's REST login and WebSocket notifications
//! (vendors.md §2.2):
//!
//! * `POST /api/v1/acme/me/login` `{"userName", "password"}` →
//!   `{"authentication": <token>}` (HTTP 401 for a wrong password);
//! * `POST /api/v1/acme/me/websocket/` with `Authorization: xelion <token>` →
//!   `{"object": "ws://…/websocket/<token>"}`;
//! * on the socket nothing arrives before a `notificationRequest` for that
//!   type; `test` messages are echoed back unchanged;
//! * no replay: a notification sent while no socket is subscribed is lost.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::State as AxumState;
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::post;
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};

/// The user and password the stand-in accepts.
pub const USER: &str = "connector";
/// The password.
pub const PASSWORD: &str = "s3cret";

#[derive(Default)]
struct State {
    tokens: HashSet<String>,
    logins: u32,
    refused_logins: u32,
    /// Subscribed notification types, per socket (in connection order).
    subscriptions: Vec<HashSet<String>>,
    /// Sockets currently open.
    open: usize,
    echoed_tests: u32,
    /// Notifications sent with no subscribed socket (lost: no replay).
    lost: u32,
    ws_addr: Option<SocketAddr>,
    /// Refuse every websocket-URL request, even with a fresh token.
    refuse_sockets: bool,
}

/// A running stand-in.
pub struct XelionStandIn {
    /// The REST address.
    pub http_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    notify: broadcast::Sender<Value>,
    kill: broadcast::Sender<()>,
    tasks: Vec<JoinHandle<()>>,
}

impl XelionStandIn {
    /// Starts the REST and WebSocket listeners on free loopback ports.
    pub async fn start() -> XelionStandIn {
        let state = Arc::new(Mutex::new(State::default()));
        let (notify, _) = broadcast::channel(64);
        let (kill, _) = broadcast::channel(4);
        let ws_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        state.lock().unwrap().ws_addr = Some(ws_listener.local_addr().unwrap());
        let http_listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let http_addr = http_listener.local_addr().unwrap();
        let app = axum::Router::new()
            .route("/api/v1/acme/me/login", post(login))
            .route("/api/v1/acme/me/websocket/", post(websocket_url))
            .with_state(state.clone());
        let mut tasks = vec![tokio::spawn(async move {
            let _ = axum::serve(http_listener, app).await;
        })];
        let (s, n, k) = (state.clone(), notify.clone(), kill.clone());
        tasks.push(tokio::spawn(async move {
            while let Ok((stream, _)) = ws_listener.accept().await {
                tokio::spawn(socket(stream, s.clone(), n.subscribe(), k.subscribe()));
            }
        }));
        XelionStandIn { http_addr, state, notify, kill, tasks }
    }

    /// The API base URL of tenant `acme`.
    pub fn base_url(&self) -> String {
        format!("http://{}/api/v1/acme", self.http_addr)
    }

    /// Sends a notification to every socket subscribed to its type.
    pub fn send(&self, notification: Value) {
        let kind = notification["notificationType"].as_str().unwrap_or_default().to_string();
        let mut st = self.state.lock().unwrap();
        let live = st.open > 0 && st.subscriptions.last().is_some_and(|s| s.contains(&kind));
        if !live {
            st.lost += 1;
            return;
        }
        drop(st);
        let _ = self.notify.send(notification);
    }

    /// From now on, refuses every `me/websocket/` request with HTTP 401
    /// (a token revoked right after login).
    pub fn refuse_sockets(&self) {
        self.state.lock().unwrap().refuse_sockets = true;
    }

    /// Drops every open socket (TCP close, no close frame).
    pub fn drop_sockets(&self) {
        let _ = self.kill.send(());
    }

    /// The types subscribed on the `n`-th socket (0-based), if it exists.
    pub fn subscriptions(&self, n: usize) -> Option<HashSet<String>> {
        self.state.lock().unwrap().subscriptions.get(n).cloned()
    }

    /// Sockets opened so far.
    pub fn sockets(&self) -> usize {
        self.state.lock().unwrap().subscriptions.len()
    }

    /// Successful logins.
    pub fn logins(&self) -> u32 {
        self.state.lock().unwrap().logins
    }

    /// Refused logins.
    pub fn refused_logins(&self) -> u32 {
        self.state.lock().unwrap().refused_logins
    }

    /// `test` messages echoed.
    pub fn echoed_tests(&self) -> u32 {
        self.state.lock().unwrap().echoed_tests
    }

    /// Notifications lost because no socket was subscribed.
    pub fn lost(&self) -> u32 {
        self.state.lock().unwrap().lost
    }
}

impl Drop for XelionStandIn {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

/// A JSON answer (axum is built without its `json` feature).
type Answer = (StatusCode, [(header::HeaderName, &'static str); 1], String);

fn answer(status: StatusCode, body: Value) -> Answer {
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string())
}

async fn login(AxumState(state): AxumState<Arc<Mutex<State>>>, body: axum::body::Bytes) -> Answer {
    let body: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut st = state.lock().unwrap();
    if body["userName"] == USER && body["password"] == PASSWORD {
        st.logins += 1;
        let token = format!("tok{}", st.logins);
        st.tokens.insert(token.clone());
        answer(StatusCode::OK, json!({"authentication": token, "userObjectId": 1816134}))
    } else {
        st.refused_logins += 1;
        answer(StatusCode::UNAUTHORIZED, json!({"error": "invalid credentials"}))
    }
}

async fn websocket_url(AxumState(state): AxumState<Arc<Mutex<State>>>, headers: HeaderMap) -> Answer {
    let st = state.lock().unwrap();
    let token = headers.get("authorization").and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("xelion "));
    match token {
        Some(t) if st.tokens.contains(t) && !st.refuse_sockets => {
            let addr = st.ws_addr.expect("listening");
            answer(StatusCode::OK, json!({"object": format!("ws://{addr}/websocket/-1/1816134/{t}")}))
        }
        _ => answer(StatusCode::UNAUTHORIZED, json!({"error": "not logged in"})),
    }
}

async fn socket(
    stream: tokio::net::TcpStream,
    state: Arc<Mutex<State>>,
    mut notifications: broadcast::Receiver<Value>,
    mut kill: broadcast::Receiver<()>,
) {
    let st = state.clone();
    // The signature is tungstenite's handshake callback.
    #[allow(clippy::result_large_err)]
    let callback = move |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let token = req.uri().path().rsplit('/').next().unwrap_or_default().to_string();
        if st.lock().unwrap().tokens.contains(&token) {
            Ok(resp)
        } else {
            let mut r = ErrorResponse::new(Some("unknown socket".into()));
            *r.status_mut() = tokio_tungstenite::tungstenite::http::StatusCode::FORBIDDEN;
            Err(r)
        }
    };
    let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else { return };
    let index = {
        let mut st = state.lock().unwrap();
        st.subscriptions.push(HashSet::new());
        st.open += 1;
        st.subscriptions.len() - 1
    };
    let closed = |state: &Arc<Mutex<State>>| state.lock().unwrap().open -= 1;
    loop {
        tokio::select! {
            _ = kill.recv() => { closed(&state); return; }
            n = notifications.recv() => {
                let Ok(n) = n else { continue };
                let kind = n["notificationType"].as_str().unwrap_or_default().to_string();
                if state.lock().unwrap().subscriptions[index].contains(&kind) && ws.send(Message::text(n.to_string())).await.is_err() {
                    closed(&state);
                    return;
                }
            }
            msg = ws.next() => {
                let text = match msg {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(_)) => continue,
                    _ => { closed(&state); return; }
                };
                let Ok(v) = serde_json::from_str::<Value>(&text) else { continue };
                match v["messageType"].as_str() {
                    Some("notificationRequest") if v["toggle"] == true => {
                        if let Some(kind) = v["notificationType"].as_str() {
                            state.lock().unwrap().subscriptions[index].insert(kind.to_string());
                        }
                    }
                    Some("test") => {
                        state.lock().unwrap().echoed_tests += 1;
                        if ws.send(Message::text(text)).await.is_err() { closed(&state); return; }
                    }
                    _ => {}
                }
            }
        }
    }
}

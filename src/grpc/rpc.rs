//! Spans, metrics and status conventions of every switchboard RPC, declared
//! once for all handlers: the server's `trace_fn` opens the span ([`span`])
//! and [`RpcLayer`] times the call, counts failures by status code and
//! answers an oversize request `RESOURCE_EXHAUSTED`. Handlers only record
//! what they learn (`tenant`, `vendor`, `call_id`, `outcome`) on
//! `Span::current()`.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use tower::{Layer, Service};
use tracing::field;

/// The package whose RPCs are observed; health and reflection are not.
const PACKAGE_PREFIX: &str = "/switchboard.v1.";

/// The method name of one of our RPCs, from its HTTP/2 path.
fn method(path: &str) -> Option<&'static str> {
    let name = path.strip_prefix(PACKAGE_PREFIX)?.rsplit('/').next()?;
    ["Ingest", "Subscribe", "GetCall", "ListCalls"].into_iter().find(|m| *m == name)
}

/// The span of one RPC: named after the method for trace exporters
/// (`otel.name`), parented on the caller's W3C trace context, with the
/// fields the handlers fill in. Other services get no span.
pub fn span(request: &http::Request<()>) -> tracing::Span {
    let Some(method) = method(request.uri().path()) else {
        return tracing::Span::none();
    };
    let span = tracing::info_span!(
        "rpc",
        otel.name = method,
        rpc.method = method,
        tenant = field::Empty,
        vendor = field::Empty,
        call_id = field::Empty,
        outcome = field::Empty
    );
    // The request's headers as they are: no copy per RPC (and no work at
    // all without the `otlp` feature).
    super::link_trace(&span, request.headers());
    span
}

/// Records `switchboard_rpc_duration_seconds` and
/// `switchboard_rpc_errors_total` for every switchboard RPC: time to the
/// response head (the whole call for unary RPCs; opening the stream for
/// Subscribe), and the `grpc-status` of a trailers-only error answer.
///
/// tonic refuses a request over `--max-message-bytes` with `OUT_OF_RANGE`;
/// the gRPC convention (and what clients retry on) is `RESOURCE_EXHAUSTED`,
/// and our `OUT_OF_RANGE` means an expired cursor, so the layer rewrites
/// that one answer, naming the limit.
#[derive(Clone, Copy, Debug, Default)]
pub struct RpcLayer;

impl<S> Layer<S> for RpcLayer {
    type Service = Rpc<S>;

    fn layer(&self, inner: S) -> Rpc<S> {
        Rpc { inner }
    }
}

/// The service [`RpcLayer`] wraps around the server's routes.
#[derive(Clone, Debug)]
pub struct Rpc<S> {
    inner: S,
}

impl<S, B, RB> Service<http::Request<B>> for Rpc<S>
where
    S: Service<http::Request<B>, Response = http::Response<RB>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = RpcFuture<S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = method(request.uri().path());
        RpcFuture { inner: self.inner.call(request), method, started: Instant::now() }
    }
}

pin_project_lite::pin_project! {
    /// Completes with the inner response and records it.
    pub struct RpcFuture<F> {
        #[pin]
        inner: F,
        method: Option<&'static str>,
        started: Instant,
    }
}

impl<F, RB, E> Future for RpcFuture<F>
where
    F: Future<Output = Result<http::Response<RB>, E>>,
{
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.project();
        let mut result = std::task::ready!(this.inner.poll(cx));
        if let Ok(response) = &mut result {
            resource_exhausted_when_oversize(response.headers_mut());
        }
        if let Some(method) = *this.method {
            metrics::histogram!("switchboard_rpc_duration_seconds", "method" => method)
                .record(this.started.elapsed().as_secs_f64());
            let code = match &result {
                Ok(response) => grpc_code(response.headers()),
                Err(_) => Some(tonic::Code::Internal),
            };
            if let Some(code) = code.filter(|c| *c != tonic::Code::Ok) {
                metrics::counter!("switchboard_rpc_errors_total", "method" => method, "code" => format!("{code:?}"))
                    .increment(1);
            }
        }
        Poll::Ready(result)
    }
}

/// The status of a trailers-only answer (how tonic sends a handler's error).
fn grpc_code(headers: &http::HeaderMap) -> Option<tonic::Code> {
    let value = headers.get("grpc-status")?.to_str().ok()?.parse::<i32>().ok()?;
    Some(tonic::Code::from_i32(value))
}

/// What tonic says when a request exceeds the decoding limit.
const TONIC_OVERSIZE: &str = "Error, decoded message length too large: found ";

/// Turns tonic's `OUT_OF_RANGE` for an oversize request into
/// `RESOURCE_EXHAUSTED` with a message that names the size and the limit.
fn resource_exhausted_when_oversize(headers: &mut http::HeaderMap) {
    if grpc_code(headers) != Some(tonic::Code::OutOfRange) {
        return;
    }
    let Some(message) = headers.get("grpc-message").and_then(|v| v.to_str().ok()) else {
        return;
    };
    let message = message.replace("%20", " ");
    let Some(rest) = message.strip_prefix(TONIC_OVERSIZE) else {
        return;
    };
    let number = |s: &str| s.split(|c: char| !c.is_ascii_digit()).find(|t| !t.is_empty()).map(str::to_string);
    let found = number(rest).unwrap_or_default();
    let limit = rest.split("limit is:").nth(1).and_then(number).unwrap_or_default();
    let text =
        format!("request message of {found} bytes exceeds the server's limit of {limit} bytes (--max-message-bytes)");
    headers.insert("grpc-status", http::HeaderValue::from(tonic::Code::ResourceExhausted as i32));
    if let Ok(v) = http::HeaderValue::from_str(&text) {
        headers.insert("grpc-message", v);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_switchboard_rpcs_are_named() {
        assert_eq!(method("/switchboard.v1.IngestService/Ingest"), Some("Ingest"));
        assert_eq!(method("/switchboard.v1.CallService/ListCalls"), Some("ListCalls"));
        assert_eq!(method("/grpc.health.v1.Health/Check"), None);
        assert_eq!(method("/switchboard.v1.CallService/Nope"), None);
    }

    #[test]
    fn a_trailers_only_error_carries_its_code_in_the_head() {
        let mut h = http::HeaderMap::new();
        assert_eq!(grpc_code(&h), None);
        h.insert("grpc-status", http::HeaderValue::from_static("3"));
        assert_eq!(grpc_code(&h), Some(tonic::Code::InvalidArgument));
    }

    #[test]
    fn an_oversize_request_is_resource_exhausted_and_other_out_of_range_is_kept() {
        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("11"));
        h.insert(
            "grpc-message",
            http::HeaderValue::from_static(
                "Error,%20decoded%20message%20length%20too%20large:%20found%202097162%20bytes,%20the%20limit%20is:%201048576%20bytes",
            ),
        );
        resource_exhausted_when_oversize(&mut h);
        assert_eq!(grpc_code(&h), Some(tonic::Code::ResourceExhausted));
        let m = h["grpc-message"].to_str().unwrap();
        assert!(m.contains("2097162") && m.contains("1048576"), "{m}");

        let mut h = http::HeaderMap::new();
        h.insert("grpc-status", http::HeaderValue::from_static("11"));
        h.insert("grpc-message", http::HeaderValue::from_static("cursor expired"));
        resource_exhausted_when_oversize(&mut h);
        assert_eq!(grpc_code(&h), Some(tonic::Code::OutOfRange));
    }
}

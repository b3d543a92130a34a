//! The gRPC edge: tonic services, access control, error mapping, RPC spans
//! and metrics, and the server assembly (health, reflection, gRPC-Web, CORS,
//! keepalive, limits). Encoding lives one floor down, in [`crate::codec`].

pub mod access;
#[cfg(feature = "bench")]
pub mod bench;
pub mod calls;
pub mod coalesce;
pub mod ingest;
pub mod json;
pub mod rpc;
pub mod server;
pub mod status;

use tonic::metadata::MetadataMap;

/// A valid W3C `traceparent` from the request metadata, to carry onto the
/// events the request produces.
pub(crate) fn traceparent(metadata: &MetadataMap) -> Option<String> {
    let v = metadata.get("traceparent")?.to_str().ok()?.trim();
    let parts: Vec<&str> = v.split('-').collect();
    let hex = |s: &str, n: usize| s.len() == n && s.bytes().all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase());
    let valid = parts.len() == 4
        && hex(parts[0], 2)
        && parts[0] != "ff"
        && hex(parts[1], 32)
        && parts[1] != "0".repeat(32)
        && hex(parts[2], 16)
        && parts[2] != "0".repeat(16)
        && hex(parts[3], 2);
    valid.then(|| v.to_string())
}

/// Makes the caller's W3C trace context the parent of the RPC's span, so
/// exported traces continue the bridge's trace (cargo feature `otlp`).
#[cfg(feature = "otlp")]
pub(crate) fn link_trace(span: &tracing::Span, headers: &http::HeaderMap) {
    use opentelemetry::propagation::Extractor;
    use tracing_opentelemetry::OpenTelemetrySpanExt;
    struct Headers<'a>(&'a http::HeaderMap);
    impl Extractor for Headers<'_> {
        fn get(&self, key: &str) -> Option<&str> {
            self.0.get(key).and_then(|v| v.to_str().ok())
        }
        fn keys(&self) -> Vec<&str> {
            self.0.keys().map(http::HeaderName::as_str).collect()
        }
    }
    let cx = opentelemetry::global::get_text_map_propagator(|p| p.extract(&Headers(headers)));
    let _ = span.set_parent(cx);
}

/// Without the `otlp` feature there is no exported trace to link to.
#[cfg(not(feature = "otlp"))]
pub(crate) fn link_trace(_span: &tracing::Span, _headers: &http::HeaderMap) {}

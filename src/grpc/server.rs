//! Assembles the gRPC server: our two services plus `grpc.health.v1`,
//! reflection (v1 and v1alpha, for grpcurl and friends), gRPC-Web with CORS
//! for browser relays, keepalive and message-size limits, and the call
//! board's page on plain HTTP `GET /` ([`crate::board`]).

use std::sync::Arc;

use futures_util::{Stream, TryStreamExt};
use http::header::HeaderName;
use tokio::io::{AsyncRead, AsyncWrite};
use tonic::service::Routes;
use tonic::transport::Server;
use tonic::transport::server::Connected;
use tonic_health::pb::health_server::{Health, HealthServer};
use tonic_health::server::HealthReporter;
use tower_http::cors::{AllowOrigin, CorsLayer};

use tonic::service::interceptor::InterceptedService;

use super::access::AuthInterceptor;
use super::access::RateLimiter;
#[cfg(feature = "bench")]
use super::bench::BenchApi;
use super::calls::CallApi;
use super::ingest::IngestApi;
use super::rpc::RpcLayer;
use crate::auth::Authenticator;
use crate::board::BoardLayer;
use crate::codec::proto::{self, v1 as pb};
use crate::config::Config;
use crate::service::Services;

/// The fully qualified names of our services, as health checks name them.
pub const SERVICE_NAMES: [&str; 2] = ["switchboard.v1.IngestService", "switchboard.v1.CallService"];

/// Publishes health: the server as a whole (`""`, for liveness) is SERVING
/// until shutdown begins; the named services (for readiness) are SERVING
/// only while the server is not draining and the store can take writes, so a
/// NATS outage takes replicas out of the load balancer without restarting
/// them.
pub async fn set_health(reporter: &HealthReporter, draining: bool, store_healthy: bool) {
    let status =
        |ok: bool| if ok { tonic_health::ServingStatus::Serving } else { tonic_health::ServingStatus::NotServing };
    reporter.set_service_status("", status(!draining)).await;
    for name in SERVICE_NAMES {
        reporter.set_service_status(name, status(!draining && store_healthy)).await;
    }
}

/// Serves only `grpc.health.v1`, in plaintext, for Kubernetes gRPC probes
/// (which cannot speak TLS).
pub async fn serve_health<H: Health>(
    health: HealthServer<H>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error> {
    Server::builder()
        .add_service(health)
        .serve_with_incoming_shutdown(tokio_stream::wrappers::TcpListenerStream::new(listener), shutdown)
        .await
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::mirror_request()
    } else {
        AllowOrigin::list(origins.iter().filter_map(|o| o.parse().ok()))
    };
    let headers =
        ["authorization", "content-type", "x-grpc-web", "x-user-agent", "grpc-timeout", "traceparent", "tracestate"]
            .map(HeaderName::from_static);
    let exposed = ["grpc-status", "grpc-message", "grpc-status-details-bin"].map(HeaderName::from_static);
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([http::Method::POST, http::Method::OPTIONS])
        .allow_headers(headers)
        .expose_headers(exposed)
        .max_age(std::time::Duration::from_secs(86400))
}

/// Reflection also describes `switchboard.bench.v1` when it is served.
#[cfg(feature = "bench")]
fn bench_reflection<'b>(
    b: tonic_reflection::server::Builder<'b>,
    config: &Config,
) -> tonic_reflection::server::Builder<'b> {
    if config.enable_bench_service {
        b.register_encoded_file_descriptor_set(proto::BENCH_FILE_DESCRIPTOR_SET)
    } else {
        b
    }
}

/// Without the `bench` feature there is no bench service to describe.
#[cfg(not(feature = "bench"))]
fn bench_reflection<'b>(
    b: tonic_reflection::server::Builder<'b>,
    _config: &Config,
) -> tonic_reflection::server::Builder<'b> {
    b
}

/// Serves every service on `incoming` until `shutdown` completes, then
/// drains in-flight requests (streams end on the services' own shutdown
/// token).
pub async fn serve<I, IO, IE, H>(
    config: &Config,
    services: Arc<Services>,
    auth: Authenticator,
    limiter: Arc<RateLimiter>,
    health: HealthServer<H>,
    incoming: I,
    shutdown: impl Future<Output = ()>,
) -> Result<(), tonic::transport::Error>
where
    I: Stream<Item = Result<IO, IE>>,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IE: Into<Box<dyn std::error::Error + Send + Sync>>,
    H: Health,
{
    let reflection = || {
        bench_reflection(
            tonic_reflection::server::Builder::configure()
                .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
                .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
            config,
        )
    };
    let reflection_v1 = reflection().build_v1().expect("the embedded descriptor set is valid");
    let reflection_v1alpha = reflection().build_v1alpha().expect("the embedded descriptor set is valid");
    let max = config.max_message_bytes;
    let ingest = InterceptedService::new(
        pb::ingest_service_server::IngestServiceServer::new(IngestApi::new(services.clone(), limiter.clone()))
            .max_decoding_message_size(max),
        AuthInterceptor::new(auth.clone()),
    );
    // Benchmark baselines (BENCHMARKS.md), only in a `bench` build and only
    // when asked for.
    #[cfg(feature = "bench")]
    let bench = config.enable_bench_service.then(|| {
        tracing::warn!("serving switchboard.bench.v1.BenchService (--enable-bench-service): for benchmarks only");
        InterceptedService::new(
            proto::bench::v1::bench_service_server::BenchServiceServer::new(BenchApi::new(
                config.subscriber_buffer,
                services.shutdown.clone(),
            ))
            .max_decoding_message_size(max),
            AuthInterceptor::new(auth.clone()),
        )
    });
    let calls = InterceptedService::new(
        pb::call_service_server::CallServiceServer::new(CallApi::new(services, limiter)).max_decoding_message_size(max),
        AuthInterceptor::new(auth),
    );
    let mut routes = Routes::builder();
    routes
        .add_service(health)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(ingest)
        .add_service(calls);
    #[cfg(feature = "bench")]
    if let Some(bench) = bench {
        routes.add_service(bench);
    }
    let routes = routes.routes();
    let router = Server::builder()
        .accept_http1(true)
        .tcp_nodelay(true)
        .http2_keepalive_interval(Some(config.keepalive_interval))
        .http2_keepalive_timeout(Some(config.keepalive_timeout))
        .max_concurrent_streams(Some(config.max_concurrent_streams))
        .layer(cors(&config.cors_origins))
        .layer(BoardLayer::new(config.board))
        .layer(tonic_web::GrpcWebLayer::new())
        .layer(RpcLayer)
        .trace_fn(super::rpc::span)
        .add_routes(routes);
    // Every connection's flushes wait one scheduler turn (see `coalesce`).
    router.serve_with_incoming_shutdown(incoming.map_ok(super::coalesce::Coalescing::new), shutdown).await
}

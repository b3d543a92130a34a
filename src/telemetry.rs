//! Logs and metrics, set up once per process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::{EnvFilter, Layer};

use crate::config::LogFormat;

/// Installs the global `tracing` subscriber (human or JSON lines on stderr,
/// and with the `otlp` feature an OTLP trace exporter when `otlp_endpoint`
/// is set). Later calls are no-ops, so tests and embedders can call it freely.
pub fn init_logging(format: LogFormat, filter: &str, otlp_endpoint: Option<&str>) {
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = EnvFilter::try_new(filter).unwrap_or_else(|_| EnvFilter::new("info"));
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let fmt = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_ansi(ansi);
    let fmt = match format {
        LogFormat::Text => fmt.boxed(),
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).boxed(),
    };
    let registry = tracing_subscriber::registry().with(filter).with(fmt);
    #[cfg(feature = "otlp")]
    {
        let otel = otlp_endpoint.and_then(|e| match otlp::layer(e) {
            Ok(l) => Some(l),
            Err(err) => {
                eprintln!("OTLP export disabled: {err}");
                None
            }
        });
        let _ = registry.with(otel).try_init();
    }
    #[cfg(not(feature = "otlp"))]
    {
        let _ = registry.try_init();
        if otlp_endpoint.is_some() {
            tracing::warn!("--otlp-endpoint is set but this build has no `otlp` feature; traces are not exported");
        }
    }
}

/// OTLP/gRPC trace export (cargo feature `otlp`).
#[cfg(feature = "otlp")]
pub mod otlp {
    use opentelemetry::trace::TracerProvider as _;
    use opentelemetry_otlp::WithExportConfig;
    use tracing_subscriber::Layer;

    /// A layer exporting spans to the collector at `endpoint` in batches.
    pub fn layer<S>(endpoint: &str) -> Result<impl Layer<S>, String>
    where
        S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
    {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint)
            .build()
            .map_err(|e| e.to_string())?;
        let resource = opentelemetry_sdk::Resource::builder().with_service_name("switchboard").build();
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_batch_exporter(exporter)
            .with_resource(resource)
            .build();
        opentelemetry::global::set_text_map_propagator(opentelemetry_sdk::propagation::TraceContextPropagator::new());
        let tracer = provider.tracer("switchboard");
        let _ = PROVIDER.set(provider.clone());
        opentelemetry::global::set_tracer_provider(provider);
        Ok(tracing_opentelemetry::layer().with_tracer(tracer))
    }

    static PROVIDER: std::sync::OnceLock<opentelemetry_sdk::trace::SdkTracerProvider> = std::sync::OnceLock::new();

    /// Exports the spans still buffered (at shutdown, and in tests).
    pub fn flush() {
        if let Some(p) = PROVIDER.get() {
            let _ = p.force_flush();
        }
    }
}

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();

/// How often buffered histogram samples are folded into their buckets.
///
/// The recorder buffers every histogram sample (8 bytes plus its block) until
/// it is rendered or upkept; without upkeep a server nobody scrapes grows by
/// every sample it ever recorded (issue 16: about 25 bytes per Ingest, three
/// histograms per request). This is the window of that buffer: at most
/// `UPKEEP_INTERVAL` of samples are held.
pub const UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// The process-wide Prometheus recorder, installed on first use, with its
/// upkeep thread (see [`UPKEEP_INTERVAL`]).
///
/// Label sets are bounded by construction: every label value is a `&'static
/// str` or a closed enum (method, vendor, outcome, reason, code, store,
/// kind), never a value taken from a request.
pub fn metrics_handle() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets(&[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0])
                .expect("static buckets are valid")
                .build_recorder();
            let handle = recorder.handle();
            // Another recorder may already be installed by an embedder; then
            // our handle simply renders nothing.
            let _ = metrics::set_global_recorder(recorder);
            describe();
            let upkeep = handle.clone();
            // A plain thread: the handle may be created outside a runtime, and
            // the upkeep must run however busy the runtime is.
            let spawned = std::thread::Builder::new().name("metrics-upkeep".into()).spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_INTERVAL);
                    upkeep.run_upkeep();
                }
            });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "cannot start the metrics upkeep thread; histograms drain only when scraped");
            }
            handle
        })
        .clone()
}

fn describe() {
    metrics::describe_counter!("switchboard_ingest_total", "Ingest requests by vendor and outcome");
    metrics::describe_counter!(
        "switchboard_subscriber_lagged_total",
        "Subscribers moved from the live path to the log"
    );
    metrics::describe_gauge!("switchboard_build_info", "Build information (value is always 1)");
}

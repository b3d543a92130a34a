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
        LogFormat::Json => fmt.json().flatten_event(true).with_current_span(true).fmt_fields(AppendJsonFields).boxed(),
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

/// The JSON field formatter of the log layer, cheap to record into.
///
/// Every RPC span records what its handler learns (`tenant`, `vendor`,
/// `outcome`, `call_id`) one field at a time, for lines that are usually
/// never written. tracing-subscriber's own `JsonFields` parses the span's
/// fields so far and serializes them again on every such record (8 % of the
/// server's CPU per Ingest in a `perf` profile of S1); appending its output
/// instead still built a map and a `serde_json` serializer per field (4.4 %
/// in the twelfth sitting's profile). This one writes each field straight
/// into the span's object as a JSON member, with the same values
/// `JsonFields` gives. A field recorded twice appears twice in the text; the
/// JSON formatter reads it back into a map, where the later value wins, as
/// it did before.
#[derive(Clone, Copy, Debug, Default)]
pub struct AppendJsonFields;

impl<'a> tracing_subscriber::fmt::FormatFields<'a> for AppendJsonFields {
    fn format_fields<R: tracing_subscriber::field::RecordFields>(
        &self,
        mut writer: tracing_subscriber::fmt::format::Writer<'_>,
        fields: R,
    ) -> std::fmt::Result {
        let mut object = String::from("{");
        fields.record(&mut JsonMembers { out: &mut object, empty: true });
        object.push('}');
        writer.write_str(&object)
    }

    fn add_fields(
        &self,
        current: &'a mut tracing_subscriber::fmt::FormattedFields<Self>,
        fields: &tracing::span::Record<'_>,
    ) -> std::fmt::Result {
        let out = &mut current.fields;
        let kept = out.trim_end().len();
        let empty = kept == 0 || out.trim_end() == "{}";
        if empty {
            out.clear();
            out.push('{');
        } else {
            out.truncate(kept - 1); // the closing brace
        }
        fields.record(&mut JsonMembers { out: &mut *out, empty });
        out.push('}');
        Ok(())
    }
}

/// Writes fields as members of a JSON object under construction, with the
/// values tracing-subscriber's `JsonVisitor` gives them: strings and
/// numbers as themselves, anything else as the text of its `Debug`.
struct JsonMembers<'a> {
    out: &'a mut String,
    /// No member written yet (no comma before the next one).
    empty: bool,
}

impl JsonMembers<'_> {
    /// Starts the member `name`, leaving `out` where its value goes.
    fn key(&mut self, name: &str) -> &mut String {
        if !std::mem::take(&mut self.empty) {
            self.out.push(',');
        }
        self.out.push('"');
        let _ = std::fmt::Write::write_str(&mut JsonEscaped(self.out), name);
        self.out.push_str("\":");
        self.out
    }

    fn string(&mut self, name: &str, value: std::fmt::Arguments<'_>) {
        let out = self.key(name);
        out.push('"');
        let _ = std::fmt::Write::write_fmt(&mut JsonEscaped(out), value);
        out.push('"');
    }

    /// An integer: its digits are its JSON.
    fn number(&mut self, name: &str, value: impl std::fmt::Display) {
        use std::fmt::Write as _;
        let _ = write!(self.key(name), "{value}");
    }

    fn json(&mut self, name: &str, value: serde_json::Value) {
        let text = value.to_string();
        self.key(name).push_str(&text);
    }
}

impl tracing::field::Visit for JsonMembers<'_> {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.string(field.name(), format_args!("{value}"));
    }

    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.number(field.name(), value);
    }

    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.number(field.name(), value);
    }

    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.key(field.name()).push_str(if value { "true" } else { "false" });
    }

    /// As `serde_json` writes it (`1.0`, `null` for what JSON cannot hold).
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.json(field.name(), serde_json::Value::from(value));
    }

    fn record_bytes(&mut self, field: &tracing::field::Field, value: &[u8]) {
        self.json(field.name(), serde_json::Value::from(value));
    }

    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            // Metadata of `log` records, already in the line (as `JsonVisitor`).
            name if name.starts_with("log.") => {}
            name => self.string(name.strip_prefix("r#").unwrap_or(name), format_args!("{value:?}")),
        }
    }
}

/// Text written through it lands in the string JSON-escaped (the inside of
/// a JSON string, as `serde_json` escapes it).
struct JsonEscaped<'a>(&'a mut String);

impl std::fmt::Write for JsonEscaped<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let mut plain = 0;
        for (i, b) in s.bytes().enumerate() {
            let escape = match b {
                b'"' => "\\\"",
                b'\\' => "\\\\",
                b'\n' => "\\n",
                b'\r' => "\\r",
                b'\t' => "\\t",
                0x08 => "\\b",
                0x0c => "\\f",
                0..=0x1f => "",
                _ => continue,
            };
            self.0.push_str(&s[plain..i]);
            if escape.is_empty() {
                let _ = write!(self.0, "\\u{b:04x}");
            } else {
                self.0.push_str(escape);
            }
            plain = i + 1;
        }
        self.0.push_str(&s[plain..]);
        Ok(())
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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::{Arc, Mutex};

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    #[derive(Clone, Default)]
    struct Lines(Arc<Mutex<Vec<u8>>>);

    impl Write for Lines {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// A log line inside an RPC span carries every field recorded on the
    /// span, one record at a time, as the JSON it always had.
    #[test]
    fn json_lines_carry_the_fields_recorded_on_the_span() {
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer()
            .with_writer(move || writer.clone())
            .json()
            .flatten_event(true)
            .with_current_span(true)
            .fmt_fields(AppendJsonFields);
        let subscriber = tracing_subscriber::registry().with(layer);
        tracing::subscriber::with_default(subscriber, || {
            let span = tracing::info_span!(
                "rpc",
                rpc.method = "Ingest",
                tenant = tracing::field::Empty,
                outcome = tracing::field::Empty,
                call_id = tracing::field::Empty
            );
            span.record("tenant", "acme");
            span.record("outcome", "accepted");
            span.record("call_id", "c-\"1\"");
            span.record("outcome", "duplicate");
            span.in_scope(|| tracing::info!(n = 3, "inside"));
        });
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        let span = &line["span"];
        assert_eq!(span["rpc.method"], "Ingest");
        assert_eq!(span["tenant"], "acme");
        assert_eq!(span["call_id"], "c-\"1\"");
        assert_eq!(span["outcome"], "duplicate", "the later record wins: {text}");
        assert_eq!(line["n"], 3);
    }

    /// The span fields of one JSON log line, written with our formatter or
    /// with tracing-subscriber's own `JsonFields`.
    fn span_fields(ours: bool) -> serde_json::Value {
        #[derive(Debug)]
        struct Thing {
            _name: &'static str,
        }
        let lines = Lines::default();
        let writer = lines.clone();
        let layer = tracing_subscriber::fmt::layer().with_writer(move || writer.clone()).json().with_current_span(true);
        let record = || {
            let tricky = "q\"uote \\ back\nline\r\t\u{8}\u{c}\u{1}\u{1f} \u{7f} é 😀 </script>";
            let span = tracing::info_span!(
                "s",
                text = tricky,
                n = -3i64,
                m = 7u64,
                x = 1.0f64,
                nan = f64::NAN,
                yes = true,
                dbg = ?Thing { _name: "a\"b" },
                shown = %"c\\d",
                r#type = "kind",
                later = tracing::field::Empty
            );
            span.record("later", "x\ny");
            span.record("n", 4);
            span.in_scope(|| tracing::info!("inside"));
        };
        if ours {
            tracing::subscriber::with_default(
                tracing_subscriber::registry().with(layer.fmt_fields(AppendJsonFields)),
                record,
            );
        } else {
            tracing::subscriber::with_default(tracing_subscriber::registry().with(layer), record);
        }
        let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.trim()).unwrap();
        line["span"].clone()
    }

    proptest::proptest! {
        /// Any text comes out as `serde_json` writes it inside a string
        /// (the span's fields are parsed back: invalid JSON would panic the
        /// log layer).
        #[test]
        fn escaping_matches_serde_json(text in "\\PC*|[\\x00-\\x7f]*") {
            let mut ours = String::from("\"");
            std::fmt::Write::write_str(&mut JsonEscaped(&mut ours), &text).unwrap();
            ours.push('"');
            proptest::prop_assert_eq!(ours, serde_json::to_string(&text).unwrap());
        }
    }

    /// Our members, read back, are what `JsonFields` writes for the same
    /// fields: strings that need escaping, integers, floats (a NaN too),
    /// booleans, `Debug` and `Display` values, a raw identifier, and a field
    /// recorded again later.
    #[test]
    fn fields_are_the_json_that_json_fields_writes() {
        let ours = span_fields(true);
        assert_eq!(ours, span_fields(false));
        assert_eq!(ours["n"], 4, "{ours}");
        assert_eq!(ours["type"], "kind", "{ours}");
        assert!(ours["text"].as_str().is_some_and(|t| t.contains('\u{1}')), "{ours}");
    }
}

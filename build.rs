//! Generates the gRPC code from `proto/` without a system `protoc`.
//!
//! * `protox` parses the protos in pure Rust into a descriptor set, which is
//!   also written to `OUT_DIR` for server reflection.
//! * `tonic-prost-build` generates the messages and the clients.
//! * The servers are generated with `tonic_build::manual`, so that
//!   `CallService.Subscribe` can stream pre-encoded bytes and `IngestService.Ingest` can answer with
//!   them: each event is encoded once and the same bytes are shared by every
//!   subscriber and the Ingest answer.

use std::{env, fs, path::PathBuf};

use prost::Message as _;

const PROTOS: &[&str] = &[
    "proto/switchboard/v1/types.proto",
    "proto/switchboard/v1/call.proto",
    "proto/switchboard/v1/call_event.proto",
    "proto/switchboard/v1/ingest_service.proto",
    "proto/switchboard/v1/call_service.proto",
];

/// Benchmark baselines (`--enable-bench-service`), generated only with the
/// `bench` cargo feature; kept out of the main descriptor set so reflection
/// lists them only when they are served.
const BENCH_PROTO: &str = "switchboard/bench/v1/bench_service.proto";

/// The `google.rpc` error details our errors carry, vendored
/// (`proto-vendor/README.md`): compiled into the set reflection serves, so
/// that grpcurl and friends decode `BadRequest`, `ErrorInfo` and `RetryInfo`;
/// no code is generated from them (tonic-types has their types).
const GOOGLE_RPC_PROTOS: &[&str] = &["google/rpc/error_details.proto", "google/rpc/status.proto"];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let out_dir = PathBuf::from(env::var("OUT_DIR")?);
    println!("cargo:rerun-if-changed=proto");
    println!("cargo:rerun-if-changed=proto-vendor");
    let with_bench = env::var_os("CARGO_FEATURE_BENCH").is_some();

    let mut files: Vec<String> = PROTOS.iter().map(|p| p.to_string()).collect();
    if with_bench {
        files.push(format!("proto/{BENCH_PROTO}"));
    }
    let fds = protox::compile(&files, ["proto"])?;
    let (bench, main): (Vec<_>, Vec<_>) = fds.file.iter().cloned().partition(|f| f.name() == BENCH_PROTO);
    let set = |file| prost_types::FileDescriptorSet { file }.encode_to_vec();
    let mut served = main;
    for f in protox::compile(GOOGLE_RPC_PROTOS, ["proto-vendor"])?.file {
        if !served.iter().any(|s| s.name() == f.name()) {
            served.push(f);
        }
    }
    fs::write(out_dir.join("switchboard_descriptor.bin"), set(served))?;
    if with_bench {
        fs::write(out_dir.join("switchboard_bench_descriptor.bin"), set(bench))?;
    }

    tonic_prost_build::configure()
        .build_server(false)
        .build_client(true)
        // The domain keeps attributes sorted: the same map type converts by
        // a clone instead of rehashing every pair, and encodes in key order.
        .btree_map(".switchboard.v1")
        .bytes(".switchboard.v1.IngestRequest.payload")
        .bytes(".switchboard.bench.v1.NoopRequest.payload")
        .bytes(".switchboard.bench.v1.NoopPublishRequest.update")
        .bytes(".switchboard.bench.v1.NoopSubscribeRequest.replay_update")
        .compile_fds(fds)?;

    let mut services = vec![ingest_service(), call_service()];
    if with_bench {
        services.push(bench_service());
    }
    tonic_build::manual::Builder::new().build_client(false).compile(&services);
    Ok(())
}

fn method(name: &str, route: &str, input: &str, output: &str, codec: &str) -> tonic_build::manual::MethodBuilder {
    tonic_build::manual::Method::builder()
        .name(name)
        .route_name(route)
        .input_type(input)
        .output_type(output)
        .codec_path(codec)
}

const PROST: &str = "tonic_prost::ProstCodec";

fn ingest_service() -> tonic_build::manual::Service {
    tonic_build::manual::Service::builder()
        .name("IngestService")
        .package("switchboard.v1")
        .comment("Takes vendor payloads exactly as received and turns them into canonical call events.")
        .method(
            method(
                "ingest",
                "Ingest",
                "super::IngestRequest",
                "crate::codec::wire::EncodedResponse",
                "crate::codec::wire::IngestCodec",
            )
            .comment("Parses one vendor payload, applies it to its call and appends the events to the log.")
            .build(),
        )
        .build()
}

fn call_service() -> tonic_build::manual::Service {
    tonic_build::manual::Service::builder()
        .name("CallService")
        .package("switchboard.v1")
        .comment("Streams call events to subscribers and answers questions about calls.")
        .method(
            method(
                "subscribe",
                "Subscribe",
                "super::SubscribeRequest",
                "crate::codec::wire::EncodedResponse",
                "crate::codec::wire::SubscribeCodec",
            )
            .comment("Streams matching events in log order; see `call_service.proto`.")
            .server_streaming()
            .build(),
        )
        .method(
            method("get_call", "GetCall", "super::GetCallRequest", "super::GetCallResponse", PROST)
                .comment("Returns the current state of one call.")
                .build(),
        )
        .method(
            method("list_calls", "ListCalls", "super::ListCallsRequest", "super::ListCallsResponse", PROST)
                .comment("Lists calls, most recently first seen first, with AIP-158 paging.")
                .build(),
        )
        .build()
}

fn bench_service() -> tonic_build::manual::Service {
    tonic_build::manual::Service::builder()
        .name("BenchService")
        .package("switchboard.bench.v1")
        .comment("No-op baselines for benchmarks; served only with `--enable-bench-service`.")
        .method(
            method("noop", "Noop", "super::NoopRequest", "super::NoopResponse", PROST)
                .comment("Drops the request (the bytes of an IngestRequest) and returns a counter.")
                .build(),
        )
        .method(
            method("noop_publish", "NoopPublish", "super::NoopPublishRequest", "super::NoopPublishResponse", PROST)
                .comment("Fans one pre-encoded update out to every NoopSubscribe stream.")
                .build(),
        )
        .method(
            method(
                "noop_subscribe",
                "NoopSubscribe",
                "super::NoopSubscribeRequest",
                "crate::codec::wire::EncodedResponse",
                "crate::codec::wire::NoopSubscribeCodec",
            )
            .comment("Streams what NoopPublish publishes, through the Subscribe fan-out path.")
            .server_streaming()
            .build(),
        )
        .build()
}

//! Generated protobuf and gRPC code. Only `grpc/`, `store/` record encoding
//! and the CLI use it; the domain never does.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `switchboard.v1`: messages, clients and servers.
pub mod v1 {
    tonic::include_proto!("switchboard.v1");
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.IngestService.rs"));
    include!(concat!(env!("OUT_DIR"), "/switchboard.v1.CallService.rs"));
}

/// `switchboard.bench.v1`: the no-op baselines of `--enable-bench-service`
/// (cargo feature `bench`).
#[cfg(feature = "bench")]
pub mod bench {
    /// Messages, client and server of `BenchService`.
    pub mod v1 {
        tonic::include_proto!("switchboard.bench.v1");
        include!(concat!(env!("OUT_DIR"), "/switchboard.bench.v1.BenchService.rs"));
    }
}

/// The encoded `FileDescriptorSet` of every proto, for server reflection,
/// with the `google.rpc` error details our errors carry.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_descriptor.bin"));

/// The encoded `FileDescriptorSet` of `switchboard.bench.v1` (reflection
/// serves it only with `--enable-bench-service`; cargo feature `bench`).
#[cfg(feature = "bench")]
pub const BENCH_FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/switchboard_bench_descriptor.bin"));

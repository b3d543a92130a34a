# syntax=docker/dockerfile:1
#
# The switchboard server image: the Rust binary (linked against glibc) on distroless,
# running as the distroless `nonroot` user (65532). Build and push:
#
#   docker build -t registry.example.com/switchboard:0.1.0 .
#   docker push registry.example.com/switchboard:0.1.0
#
# build.rs compiles the protos with protox (pure Rust), so no protoc is needed. The image
# has no shell and no HEALTHCHECK: Kubernetes probes the plaintext gRPC health port
# (`health_listen`), and `switchboard health --addr ADDR` is the health check for anything
# else (the Helm chart's `helm test` runs it).

# The toolchain the project is built and tested with. Bookworm matches the glibc of
# distroless/cc-debian12, which the binary links against.
ARG RUST_VERSION=1.95

FROM rust:${RUST_VERSION}-slim-bookworm AS build
WORKDIR /src

COPY . .
# Only the server, with default features: no `bench` (BenchService) and not the
# load tool (tools/load). BuildKit cache mounts keep the crate downloads and the target directory between builds,
# so a change to src/ recompiles only this crate.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked --bin switchboard \
    && install -D -m 0755 target/release/switchboard /out/usr/local/bin/switchboard \
    && install -d -m 0750 /out/var/lib/switchboard

FROM gcr.io/distroless/cc-debian12:nonroot
LABEL org.opencontainers.image.title="switchboard" \
      org.opencontainers.image.description="Normalizes telephony call events into one canonical lifecycle and streams it over gRPC." \
      org.opencontainers.image.licenses="Apache-2.0"
# distroless/cc carries glibc, libgcc and the CA certificates (/etc/ssl/certs), nothing more.
COPY --from=build /out/usr/local/bin/switchboard /usr/local/bin/switchboard
# The sqlite store's default home; a volume is mounted here in Kubernetes.
COPY --from=build --chown=65532:65532 /out/var/lib/switchboard /var/lib/switchboard
# The environment outranks a config file's data_dir; the Helm chart renders the same path.
ENV SWITCHBOARD_DATA_DIR=/var/lib/switchboard
USER 65532:65532
# gRPC API, plaintext gRPC health, HTTP metrics (/metrics, /healthz, /readyz).
EXPOSE 50051 50052 9090
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]

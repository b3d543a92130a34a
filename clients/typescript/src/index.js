// switchboard for Node: typed clients of IngestService and CallService over
// gRPC (HTTP/2) with Connect, on the protobuf-es code generated from proto/
// (./gen, `clients/build.sh`), and the rich error details servers send.

import { Code, ConnectError, createClient } from "@connectrpc/connect";
import { createGrpcTransport } from "@connectrpc/connect-node";
import { BadRequestSchema, ErrorInfoSchema, RetryInfoSchema } from "../gen/google/rpc/error_details_pb.js";
import { CallService } from "../gen/switchboard/v1/call_service_pb.js";
import { IngestService } from "../gen/switchboard/v1/ingest_service_pb.js";

export * from "../gen/switchboard/v1/call_event_pb.js";
export * from "../gen/switchboard/v1/call_pb.js";
export * from "../gen/switchboard/v1/call_service_pb.js";
export * from "../gen/switchboard/v1/ingest_service_pb.js";
export * from "../gen/switchboard/v1/types_pb.js";
export { Code, ConnectError };

/**
 * Clients of a switchboard server.
 *
 * `baseUrl`: `http://host:50051` (plaintext HTTP/2) or `https://…` (TLS);
 * `token`: a bearer token, sent on every call; `nodeOptions`: passed to
 * Node's `http2.connect` (e.g. `{ ca }` for a private CA).
 */
export function createSwitchboardClient({ baseUrl, token, nodeOptions } = {}) {
  const transport = createGrpcTransport({
    baseUrl,
    nodeOptions,
    interceptors: token
      ? [
          (next) => (req) => {
            req.header.set("authorization", `Bearer ${token}`);
            return next(req);
          },
        ]
      : [],
  });
  return { ingest: createClient(IngestService, transport), calls: createClient(CallService, transport) };
}

/**
 * The field violations of an INVALID_ARGUMENT answer (`google.rpc.BadRequest`):
 * `[{ field, description }]`, fields named by JSON path (`detail.callId`).
 */
export function fieldViolations(err) {
  return ConnectError.from(err)
    .findDetails(BadRequestSchema)
    .flatMap((b) => b.fieldViolations.map(({ field, description }) => ({ field, description })));
}

/** The `google.rpc.ErrorInfo` of an answer (e.g. reason `CURSOR_EXPIRED`), or undefined. */
export function errorInfo(err) {
  return ConnectError.from(err).findDetails(ErrorInfoSchema)[0];
}

/** How long the server asks to wait before a retry (`google.rpc.RetryInfo`), in ms, or undefined. */
export function retryDelayMs(err) {
  const info = ConnectError.from(err).findDetails(RetryInfoSchema)[0];
  return info?.retryDelay ? Number(info.retryDelay.seconds) * 1000 + info.retryDelay.nanos / 1e6 : undefined;
}

import type { Client } from "@connectrpc/connect";
import { Code, ConnectError } from "@connectrpc/connect";
import type { ErrorInfo } from "../gen/google/rpc/error_details_pb.js";
import { CallService } from "../gen/switchboard/v1/call_service_pb.js";
import { IngestService } from "../gen/switchboard/v1/ingest_service_pb.js";

export * from "../gen/switchboard/v1/call_event_pb.js";
export * from "../gen/switchboard/v1/call_pb.js";
export * from "../gen/switchboard/v1/call_service_pb.js";
export * from "../gen/switchboard/v1/ingest_service_pb.js";
export * from "../gen/switchboard/v1/types_pb.js";
export { Code, ConnectError };

/** Clients of a switchboard server over gRPC (HTTP/2). */
export declare function createSwitchboardClient(options: {
  baseUrl: string;
  token?: string;
  nodeOptions?: import("node:http2").ClientSessionOptions | import("node:http2").SecureClientSessionOptions;
}): { ingest: Client<typeof IngestService>; calls: Client<typeof CallService> };

/** The field violations of an INVALID_ARGUMENT answer. */
export declare function fieldViolations(err: unknown): { field: string; description: string }[];

/** The ErrorInfo of an answer, if any. */
export declare function errorInfo(err: unknown): ErrorInfo | undefined;

/** The RetryInfo delay of an answer in milliseconds, if any. */
export declare function retryDelayMs(err: unknown): number | undefined;

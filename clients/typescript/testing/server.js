// A real `switchboard serve` child process for the Node tests: the binary
// scripts/test built (SWITCHBOARD_BIN, as the Python tests use).

import { spawn } from "node:child_process";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";

const DEFAULT_BIN = fileURLToPath(new URL("../../../target/debug/switchboard", import.meta.url));

/** Starts a server on a free loopback port; resolves once it announced its address. */
export async function startServer(...args) {
  const bin = process.env.SWITCHBOARD_BIN || DEFAULT_BIN;
  const child = spawn(
    bin,
    ["serve", "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0", "--log-format", "json", ...args],
    { stdio: ["ignore", "ignore", "pipe"] },
  );
  const lines = createInterface({ input: child.stderr });
  const addr = await new Promise((resolve, reject) => {
    child.once("exit", (code) => reject(new Error(`switchboard exited (${code}) before announcing its address`)));
    lines.on("line", (line) => {
      try {
        const rec = JSON.parse(line);
        if (rec.grpc) resolve(rec.grpc);
      } catch {
        // Not a JSON log line.
      }
    });
  });
  return {
    baseUrl: `http://${addr}`,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}

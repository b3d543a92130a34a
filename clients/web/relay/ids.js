// Request ids: one per relayed event, kept across its retries, so the
// server answers a retry of an event it already took with DUPLICATE instead
// of ingesting it twice (AIP-155). The server's own dedup of vendor event
// identities (8x8 eventId, Salesforce detail.id and one-shot natural keys)
// still applies on top.

/** The server accepts request ids up to 128 printable characters. */
const MAX_LENGTH = 128;

/** A random id for one relay instance (one page load). */
export function newSessionId() {
  const bytes = new Uint8Array(8);
  globalThis.crypto.getRandomValues(bytes);
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * `<vendor>:<event hint…>:<session>.<n>`: readable in server logs (which
 * event, which page load, which dispatch), unique per dispatch, because two
 * identical toolkit events (a second hold on the same call) are two events.
 */
export function requestId(vendor, hint, session, n) {
  const clean = hint
    .filter((part) => typeof part === "string" && part !== "")
    .map((part) => part.replace(/[^\w.@+-]/g, "_"));
  const tail = `:${session}.${n}`;
  const head = [vendor, ...clean].join(":").slice(0, MAX_LENGTH - tail.length);
  return head + tail;
}

// The call board page: wires the feed, the model and the view together.

import { CallBoard } from "./model.js";
import { CallFeed } from "./feed.js";
import { VENDORS, agentNames, customerNumber, queueLabel, stateLabel, vendorLabel } from "./format.js";
import { CallTable, fillActive, fillRecent, matches, tickActive } from "./view.js";

/** Where the token lives: this tab's session storage, never the URL. */
const TOKEN_KEY = "switchboard.token";

const $ = (id) => document.getElementById(id);

function storedToken() {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

function main() {
  const board = new CallBoard();
  const active = new CallTable($("active"), ["state", "customer", "agent", "queue", "vendor", "wait", "talk", "hold"], $("active-empty"), $("active-count"));
  const recent = new CallTable($("recent"), ["ended", "customer", "agent", "queue", "vendor", "outcome", "duration"], $("recent-empty"), $("recent-count"));
  const filters = $("filters");
  const filter = () => ({
    vendor: filters.elements.vendor.value,
    queue: filters.elements.queue.value.trim().toLowerCase(),
    agent: filters.elements.agent.value.trim().toLowerCase(),
  });
  for (const [value, label] of VENDORS) filters.elements.vendor.add(new Option(label, String(value)));

  let scheduled = false;
  const render = () => {
    scheduled = false;
    const f = filter();
    const now = Date.now();
    active.show(board.activeCalls().filter((c) => matches(c, f)), (cells, call) => fillActive(cells, call, now));
    recent.show(board.recent().filter((c) => matches(c, f)), fillRecent);
    offer($("known-queues"), [...board.active.values(), ...board.ended.values()].map(queueLabel));
    offer($("known-agents"), [...board.active.values(), ...board.ended.values()].flatMap(agentNames));
  };
  const schedule = () => {
    if (!scheduled) {
      scheduled = true;
      requestAnimationFrame(render);
    }
  };
  filters.addEventListener("input", schedule);
  filters.addEventListener("reset", () => setTimeout(schedule));
  filters.addEventListener("submit", (e) => e.preventDefault());

  // Wait and talk times tick once a second, touching only those cells.
  setInterval(() => {
    const now = Date.now();
    for (const call of board.active.values()) {
      const tr = active.rows.get(call.callId);
      if (tr) tickActive(active.cells(tr), call, now);
    }
  }, 1000);

  const announcer = $("announcer");
  const announce = (change, call) => {
    const who = customerNumber(call) || "unknown caller";
    const via = vendorLabel(call.vendor);
    const text =
      change === "new" ? `New call from ${who} (${via}), ${stateLabel(call.state)}.`
      : change === "ended" ? `Call with ${who} ended.`
      : `Call with ${who} is now ${stateLabel(call.state)}.`;
    announcer.textContent = text;
  };

  const connection = $("connection");
  const access = $("access");
  const tokenInput = $("token");
  const status = (state, detail) => {
    connection.dataset.state = state;
    connection.textContent =
      state === "live" ? "Live"
      : state === "connecting" ? "Connecting…"
      : state === "retrying" ? `Reconnecting: ${detail}`
      : state === "unauthenticated" ? "Access token needed"
      : "Stopped";
    if (state === "unauthenticated") {
      access.hidden = false;
      tokenInput.focus();
    }
  };

  const feed = new CallFeed({
    baseUrl: new URL(".", location.href).href.replace(/\/$/, ""),
    token: storedToken(),
    onCall: (call) => {
      const change = board.apply(call);
      if (change) {
        if (change !== "updated") announce(change, call);
        schedule();
      }
    },
    onReset: ({ ended }) => {
      board.clearActive();
      if (ended) board.ended.clear();
      schedule();
    },
    onStatus: status,
  });

  if (storedToken()) access.hidden = false;
  $("token-form").addEventListener("submit", (e) => {
    e.preventDefault();
    const token = tokenInput.value.trim();
    try {
      sessionStorage.setItem(TOKEN_KEY, token);
    } catch {
      // Storage refused (private mode): the token lasts as long as the page.
    }
    tokenInput.value = "";
    feed.setToken(token);
  });
  $("token-forget").addEventListener("click", () => {
    try {
      sessionStorage.removeItem(TOKEN_KEY);
    } catch {
      // Nothing stored.
    }
    feed.setToken("");
  });

  render();
  feed.run();
}

/** Keeps a datalist's options equal to the distinct non-empty values. */
function offer(list, values) {
  const wanted = [...new Set(values.filter(Boolean))].sort();
  if (wanted.join("\n") === [...list.options].map((o) => o.value).join("\n")) return;
  list.replaceChildren(...wanted.map((v) => new Option(v)));
}

main();

"""The browser relay (clients/web/dist/switchboard-relay.js, the committed
file integrators copy) in a real headless Chromium against the real server:
a page on another origin loads it, Salesforce toolkit events (LWC and Aura
shapes) and 8x8 agent-panel postMessages reach Ingest over gRPC-Web with the
agent's id, and neither a server outage nor a lost response loses or doubles
an event."""

import http.server
import pathlib
import threading

import grpc
import pytest

from browser import ROOT, wait_js
from switchboard_process import Server

RELAY = ROOT / "clients" / "web" / "dist" / "switchboard-relay.js"
AGENT = "005-agent-7"

PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>relay test page</title></head>
<body>
<lightning-service-cloud-voice-toolkit-api id="toolkit"></lightning-service-cloud-voice-toolkit-api>
<script type="module">
import { createRelay } from "/switchboard-relay.js";
window.createRelay = createRelay;
window.relayLoaded = true;
</script>
</body></html>
"""


@pytest.fixture
def page_origin():
    """A static server for the test page on its own origin (another port, as
    a Salesforce org or CRM page would be), serving the committed relay file."""
    relay = RELAY.read_bytes()

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802
            body, kind = (relay, "text/javascript") if self.path == "/switchboard-relay.js" else (PAGE, "text/html")
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def open_relay(chromium, origin, server_addr, **options):
    page = chromium.new_page()
    page.goto(origin + "/")
    wait_js(page, "() => window.relayLoaded === true")
    page.evaluate(
        """([baseUrl, agentId, options]) => {
            window.relayLog = [];
            const extra = {};
            if (options.loseFirstResponse) {
                // The request reaches the server, the answer is lost on the way back.
                let lost = false;
                extra.fetch = async (input, init) => {
                    const response = await fetch(input, init);
                    if (!lost) {
                        lost = true;
                        await response.arrayBuffer();
                        throw new TypeError("network connection lost");
                    }
                    return response;
                };
            }
            // A generous deadline: a debug build's first phone-number parse loads the
            // numbering metadata, which takes seconds.
            window.relay = createRelay({
                baseUrl, agentId, retryDelayMs: 100, maxRetryDelayMs: 500, timeoutMs: 120000, ...extra,
                onEvent: (e) => window.relayLog.push({ kind: e.kind, requestId: e.requestId,
                    outcome: e.response ? e.response.outcome : null, code: e.error ? e.error.code : null }),
            });
        }""",
        [f"http://{server_addr}", AGENT, options],
    )
    return page


def all_events(stubs, addr):
    """Every event in the log, by Subscribe from the beginning up to CAUGHT_UP."""
    with grpc.insecure_channel(addr) as channel:
        calls = stubs.calls_grpc.CallServiceStub(channel)
        stream = calls.Subscribe(stubs.calls.SubscribeRequest(from_beginning=True), timeout=20)
        events = []
        for msg in stream:
            if msg.WhichOneof("response") == "update":
                events.append(msg.update.event)
            elif msg.checkpoint.reason == stubs.calls.CHECKPOINT_REASON_CAUGHT_UP:
                break
        stream.cancel()
        return events


SF_DISPATCH = """([type, detail]) => document.getElementById("toolkit").dispatchEvent(new CustomEvent(type, { detail }))"""
PANEL_POST = """([name, id]) => window.postMessage({
    eventType: `mashell-voice-phone-${name}-cc-event-v1`, status: "success",
    data: { eventName: name, eventId: id, method: "mapEvent", direction: "inbound", media: "phone",
            searchContext: "+14155550199", schemaVersion: "1.0.0" },
}, "*")"""


def test_the_relay_forwards_salesforce_and_agent_panel_events_with_the_agents_id(stubs, chromium, page_origin):
    server = Server("--store", "memory")
    page = open_relay(chromium, page_origin, server.addr)
    try:
        page.evaluate(
            """() => {
                relay.watchToolkit(document.getElementById("toolkit"));
                relay.watchAgentPanel({ origins: [location.origin] });
                // An Aura toolkit stand-in: listeners registered per UPPER_SNAKE name.
                window.auraListeners = {};
                relay.watchAuraToolkit({ addTelephonyEventListener: (name, fn) => (auraListeners[name] = fn) });
            }"""
        )
        page.evaluate(SF_DISPATCH, ["callstarted", {"callId": "sf-relay-1", "callType": "inbound", "participant": "+1 (415) 555-0101"}])
        page.evaluate(SF_DISPATCH, ["callconnected", {"callId": "sf-relay-1", "callType": "inbound", "participant": "+1 (415) 555-0101"}])
        page.evaluate("""() => auraListeners.HOLD({ type: "HOLD", detail: { callId: "sf-relay-1", participant: "+1 (415) 555-0101" } })""")
        page.evaluate(PANEL_POST, ["offered", "ap-ev-1"])
        page.evaluate(PANEL_POST, ["accepted", "ap-ev-2"])
        # Messages that are not agent-panel events are not relayed.
        page.evaluate("""() => window.postMessage({ hello: "another frame" }, "*")""")
        wait_js(page, "() => relayLog.filter((e) => e.kind === 'sent').length === 5")
        page.evaluate("() => relay.flush()")
        log = page.evaluate("() => relayLog")
        assert [e["kind"] for e in log] == ["sent"] * 5, log
        assert all(e["outcome"] == stubs.ingest.INGEST_OUTCOME_ACCEPTED for e in log), log
        assert len({e["requestId"] for e in log}) == 5
        assert log[0]["requestId"].startswith("sfv:callstarted:sf-relay-1:")
        assert log[3]["requestId"].startswith("8x8ap:offered:ap-ev-1:")

        events = all_events(stubs, server.addr)
        by_vendor = {}
        for e in events:
            by_vendor.setdefault(e.vendor, []).append(e)
        sf = by_vendor[stubs.types.VENDOR_SALESFORCE_VOICE]
        panel = by_vendor[stubs.types.VENDOR_8X8_AGENT_PANEL]
        assert [e.vendor_event_type for e in sf] == ["callstarted", "callconnected", "HOLD"]
        assert len(panel) >= 2
        for e in sf + panel:
            agents = [p.agent_id for p in e.parties if p.agent_id] + ([e.agent_id] if e.agent_id else [])
            assert AGENT in agents, e
        with grpc.insecure_channel(server.addr) as channel:
            call = stubs.calls_grpc.CallServiceStub(channel).GetCall(stubs.calls.GetCallRequest(call_id=sf[0].call_id)).call
        assert AGENT in call.agent_ids
    finally:
        page.close()
        server.stop()


def test_a_short_server_outage_loses_nothing_and_duplicates_nothing(stubs, chromium, page_origin, tmp_path):
    data = str(tmp_path / "data")
    server = Server("--store", "sqlite", "--data-dir", data)
    page = open_relay(chromium, page_origin, server.addr)
    try:
        page.evaluate("() => relay.watchToolkit(document.getElementById('toolkit'))")
        page.evaluate(SF_DISPATCH, ["callstarted", {"callId": "sf-outage", "callType": "inbound", "participant": "+1 (415) 555-0102"}])
        wait_js(page, "() => relayLog.length === 1")

        addr = server.addr
        server.stop()
        # While the server is away the agent keeps working: the events queue up.
        for event_type in ["callconnected", "hold", "resume", "hold", "resume", "callended"]:
            page.evaluate(SF_DISPATCH, [event_type, {"callId": "sf-outage", "callType": "inbound", "participant": "+1 (415) 555-0102"}])
        wait_js(page, "() => relay.stats.retries >= 2")
        assert page.evaluate("() => relay.pending") == 6
        assert page.evaluate("() => relay.stats.sent") == 1

        server = Server("--store", "sqlite", "--data-dir", data, listen=addr)
        page.evaluate("() => relay.flush()")
        stats = page.evaluate("() => relay.stats")
        assert stats["sent"] == 7 and stats["dropped"] == 0 and stats["refused"] == 0, stats

        events = [e for e in all_events(stubs, server.addr) if e.call_id.endswith("sf-outage")]
        assert [e.vendor_event_type for e in events] == [
            "callstarted", "callconnected", "hold", "resume", "hold", "resume", "callended",
        ]
        assert [e.call_sequence for e in events] == list(range(1, 8))
    finally:
        page.close()
        server.stop()


def test_a_retry_after_a_lost_response_is_answered_as_a_duplicate(stubs, chromium, page_origin):
    server = Server("--store", "memory")
    page = open_relay(chromium, page_origin, server.addr, loseFirstResponse=True)
    try:
        page.evaluate("() => relay.watchToolkit(document.getElementById('toolkit'))")
        page.evaluate(SF_DISPATCH, ["callstarted", {"callId": "sf-lost", "callType": "outbound", "participant": "+1 (415) 555-0103"}])
        wait_js(page, "() => relayLog.some((e) => e.kind === 'sent')")
        log = page.evaluate("() => relayLog")
        assert [e["kind"] for e in log] == ["retry", "sent"], log
        assert log[0]["requestId"] == log[1]["requestId"]
        assert log[1]["outcome"] == stubs.ingest.INGEST_OUTCOME_DUPLICATE
        events = [e for e in all_events(stubs, server.addr) if e.call_id.endswith("sf-lost")]
        assert [e.vendor_event_type for e in events] == ["callstarted"]
    finally:
        page.close()
        server.stop()


def test_a_full_outbox_refuses_and_reports_instead_of_growing(chromium, page_origin):
    # No server at all behind this address: nothing is ever sent.
    page = chromium.new_page()
    try:
        page.goto(page_origin + "/")
        wait_js(page, "() => window.relayLoaded === true")
        result = page.evaluate(
            """() => {
                const refused = [];
                const relay = createRelay({ baseUrl: "http://127.0.0.1:9", agentId: "a", capacity: 2,
                    retryDelayMs: 1000, onEvent: (e) => e.kind === "refused" && refused.push(e.requestId) });
                const ids = [1, 2, 3].map((i) => relay.salesforce({ type: "mute", detail: { callId: `c${i}` } }));
                const pending = relay.pending;
                const unsent = relay.close();
                return { ids, pending, refused: refused.length, unsent };
            }"""
        )
        assert result["ids"][2] is None and result["refused"] == 1
        assert result["pending"] == 2
        assert result["unsent"] == result["ids"][:2]
    finally:
        page.close()


def test_the_committed_relay_is_one_self_contained_module():
    text = RELAY.read_text()
    assert "export{" in text.replace(" ", "")
    assert "import " not in text.split("export", 1)[0][:200]
    assert pathlib.Path(RELAY).stat().st_size < 200_000

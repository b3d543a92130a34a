"""The call board (GET / on the gRPC port) in a real headless Chromium
against the real server: calls of two vendors appear and change state, an
ended call moves to the recent list, filters work, and after a server
restart the board resumes from its cursor without losing or doubling a row."""

import hashlib
import json
import time

import grpc
import pytest

from browser import screenshot, wait_js
from switchboard_process import Server

SF_CALL = "board-sf-1"
ES_CALL = "int-board-es-1-phone-01-tenant01"


def sf(event_type, **detail):
    return json.dumps({"type": event_type, "detail": {"callId": SF_CALL, **detail}}).encode()


def es(event, call_state, **fields):
    now = int(time.time())
    body = {
        "event": event,
        "callState": call_state,
        "direction": "in",
        "interactionGUID": ES_CALL,
        "mediaType": "phone",
        "eventTS": now,
        "interactionEventTS": now,
        "queueId": 1162,
        "queueTime": now,
        "resourceType": 0,
        "transactionNum": 1,
        "attachedData": {
            "attachedDatum": [
                {"attachedDataKey": "phoneNum", "attachedDataValue": 447799147855},
                {"attachedDataKey": "channelName", "attachedDataValue": "Support Queue"},
            ]
        },
        **fields,
    }
    return json.dumps({"Interaction": body}).encode()


class Calls:
    """Ingests over grpcio, the way a bridge would."""

    def __init__(self, stubs, addr):
        self.stubs = stubs
        self.channel = grpc.insecure_channel(addr)
        self.stub = stubs.ingest_grpc.IngestServiceStub(self.channel)

    def ingest(self, vendor, payload, **kw):
        resp = self.stub.Ingest(self.stubs.ingest.IngestRequest(vendor=vendor, payload=payload, **kw), timeout=10)
        assert resp.outcome == self.stubs.ingest.INGEST_OUTCOME_ACCEPTED, resp
        return resp

    def close(self):
        self.channel.close()


def rows(page, table):
    """The board's rows of one table as dicts of column → text (data-label keys)."""
    return page.evaluate(
        """(table) => [...document.querySelectorAll(`#${table} tbody tr`)].map((tr) => ({
            id: tr.dataset.callId,
            ...Object.fromEntries([...tr.cells].map((td) => [td.dataset.column, td.textContent])),
        }))""",
        table,
    )


def wait_vendors(page, vendors):
    """Waits until the active table shows exactly these vendors' rows. A row
    count alone can match the table as it was before a filter change was
    rendered (the reset button re-renders on the next task)."""
    wait_js(
        page,
        """(want) => {
            const got = [...document.querySelectorAll('#active tbody tr td[data-column=vendor]')].map((td) => td.textContent);
            return JSON.stringify(got.sort()) === JSON.stringify([...want].sort());
        }""",
        arg=vendors,
    )


@pytest.fixture
def data_dir(tmp_path):
    return tmp_path / "data"


def test_the_board_follows_calls_of_two_vendors_and_resumes_after_a_restart(stubs, chromium, data_dir):
    V = stubs.types
    server = Server("--store", "sqlite", "--data-dir", str(data_dir))
    page = chromium.new_page(viewport={"width": 1280, "height": 720})
    calls = Calls(stubs, server.addr)
    try:
        page.goto(f"http://{server.addr}/")
        page.wait_for_selector("#connection[data-state=live]")
        assert page.title() == "switchboard · call board"
        # Semantic structure: headings, a search landmark, tables with column headers, a live region.
        assert page.locator("h1").inner_text() == "Call board"
        assert page.locator("form[role=search]").count() == 1
        assert page.locator("#active thead th[scope=col]").count() == 8
        assert page.locator("[aria-live=polite]").count() == 1

        # Two vendors: a Salesforce call that connects, an 8x8 Event Streaming call waiting in a queue.
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("callstarted", callType="inbound", participant="+1 (415) 555-0132"), agent_id="agent-ada")
        calls.ingest(V.VENDOR_8X8_EVENT_STREAMING, es("InteractionQueued", "CS_QUEUED"))
        wait_js(page, "() => document.querySelectorAll('#active tbody tr').length === 2")
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("callconnected", callType="inbound", participant="+1 (415) 555-0132"), agent_id="agent-ada")
        wait_js(page, 
            "() => [...document.querySelectorAll('#active tbody tr')].some((tr) => tr.dataset.state === 'connected')"
        )
        active = {r["vendor"]: r for r in rows(page, "active")}
        assert set(active) == {"Salesforce Voice", "8x8 Event Streaming"}, active
        sf_row, es_row = active["Salesforce Voice"], active["8x8 Event Streaming"]
        assert sf_row["state"] == "connected"
        assert sf_row["customer"] == "+1 (415) 555-0132"
        assert "agent-ada" in sf_row["agent"]
        assert es_row["state"] == "queued"
        assert es_row["queue"] == "Support Queue"
        assert es_row["customer"] == "+44 779 914 7855"
        assert page.inner_text("#announcer") != ""

        # Wait time ticks while the 8x8 call waits in its queue.
        first_wait = es_row["wait"]
        wait_js(page, 
            "(w) => [...document.querySelectorAll('#active tbody tr')].find((tr) => tr.dataset.vendor === '2')?.querySelector('.wait').textContent !== w",
            arg=first_wait,
        )

        # Hold shows on the row.
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("hold", participant="+1 (415) 555-0132"), agent_id="agent-ada")
        wait_js(page, "() => [...document.querySelectorAll('#active tbody tr')].some((tr) => tr.dataset.state === 'on hold')")
        assert {r["vendor"]: r for r in rows(page, "active")}["Salesforce Voice"]["hold"] == "on hold"

        # Filters: by vendor, by queue, by agent (keyboard-reachable form controls).
        page.select_option("#filter-vendor", label="Salesforce Voice")
        wait_vendors(page, ["Salesforce Voice"])
        page.click("#filters button[type=reset]")
        wait_vendors(page, ["Salesforce Voice", "8x8 Event Streaming"])
        page.fill("#filter-queue", "support")
        wait_vendors(page, ["8x8 Event Streaming"])
        page.fill("#filter-queue", "")
        page.fill("#filter-agent", "ada")
        wait_vendors(page, ["Salesforce Voice"])
        page.click("#filters button[type=reset]")
        wait_js(page, "() => document.querySelectorAll('#active tbody tr').length === 2")

        # The Salesforce call ends: it leaves the active table for the recent list, with its outcome.
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("callended"), agent_id="agent-ada")
        wait_js(page, 
            "() => document.querySelectorAll('#active tbody tr').length === 1 && document.querySelectorAll('#recent tbody tr').length === 1"
        )
        recent = rows(page, "recent")
        assert recent[0]["vendor"] == "Salesforce Voice"
        assert recent[0]["customer"] == "+1 (415) 555-0132"
        assert recent[0]["outcome"] not in ("", "—")
        assert recent[0]["duration"] not in ("", "—")
        assert page.inner_text("#recent-count") == "1"
        screenshot(page, "board-1280x720")

        # Restart the server on the same port and store: the board reconnects on its own.
        addr = server.addr
        server.stop()
        page.wait_for_selector("#connection[data-state=retrying]")
        server = Server("--store", "sqlite", "--data-dir", str(data_dir), listen=addr)
        calls.close()
        calls = Calls(stubs, server.addr)
        page.wait_for_selector("#connection[data-state=live]", timeout=20000)
        # What happens after the restart arrives, applied once.
        calls.ingest(V.VENDOR_8X8_EVENT_STREAMING, es("InteractionAccepted", "CS_CONNECTED", agentId="agent-bob", participatingAgents="agent-bob"))
        wait_js(page, 
            "() => [...document.querySelectorAll('#active tbody tr')].some((tr) => tr.dataset.state === 'connected' && tr.dataset.vendor === '2')"
        )
        active = rows(page, "active")
        recent = rows(page, "recent")
        assert len(active) == 1 and active[0]["vendor"] == "8x8 Event Streaming", active
        assert "agent-bob" in active[0]["agent"]
        assert len(recent) == 1 and recent[0]["vendor"] == "Salesforce Voice", recent
        assert len({r["id"] for r in active + recent}) == 2

        # A reload rebuilds the same board from a snapshot and the recent list.
        page.reload()
        page.wait_for_selector("#connection[data-state=live]")
        wait_js(page, "() => document.querySelectorAll('#recent tbody tr').length === 1")
        assert [r["id"] for r in rows(page, "active")] == [active[0]["id"]]
        assert [r["id"] for r in rows(page, "recent")] == [recent[0]["id"]]
        screenshot(page, "board-after-restart")

        # Phone width: rows become labelled cards, nothing is cut off horizontally.
        page.set_viewport_size({"width": 390, "height": 844})
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        assert page.evaluate("getComputedStyle(document.querySelector('#active tbody td')).display") == "flex"
        screenshot(page, "board-phone")
    finally:
        calls.close()
        page.close()
        server.stop()


def test_the_board_is_keyboard_reachable(chromium, server):
    page = chromium.new_page(viewport={"width": 1280, "height": 720})
    try:
        page.goto(f"http://{server.addr}/")
        page.wait_for_selector("#connection[data-state=live]")
        order = []
        for _ in range(8):
            page.keyboard.press("Tab")
            order.append(page.evaluate("document.activeElement.id || document.activeElement.textContent.trim()"))
        assert order[0] == "Skip to active calls"
        for control in ["filter-vendor", "filter-queue", "filter-agent", "Clear filters"]:
            assert control in order, order
        # The skip link moves focus to the active calls.
        page.keyboard.press("Shift+Tab")
        page.focus("a.skip")
        page.keyboard.press("Enter")
        assert page.evaluate("document.activeElement.id") == "active-heading"
    finally:
        page.close()


def test_with_auth_on_the_board_asks_for_a_token_and_keeps_it_in_session_storage_only(stubs, chromium, tmp_path):
    token = "sbt_board-viewer-secret"
    (tmp_path / "tokens.toml").write_text(
        "[[tokens]]\n"
        'name = "board"\n'
        f'sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
        'tenant = "acme"\n'
        'roles = ["subscribe", "query"]\n'
    )
    server = Server("--store", "memory", "--auth-file", str(tmp_path / "tokens.toml"))
    page = chromium.new_page()
    try:
        page.goto(f"http://{server.addr}/")
        page.wait_for_selector("#connection[data-state=unauthenticated]")
        assert page.is_visible("#token")
        assert page.evaluate("document.activeElement.id") == "token"
        page.fill("#token", "wrong")
        page.press("#token", "Enter")
        page.wait_for_selector("#connection[data-state=unauthenticated]")
        page.fill("#token", token)
        page.press("#token", "Enter")
        page.wait_for_selector("#connection[data-state=live]")
        assert page.evaluate("sessionStorage.getItem('switchboard.token')") == token
        assert token not in page.url
        assert page.evaluate("localStorage.length") == 0
        # A reload in the same tab reconnects with the stored token.
        page.reload()
        page.wait_for_selector("#connection[data-state=live]")
        screenshot(page, "board-auth")
    finally:
        page.close()
        server.stop()


def test_the_page_is_served_with_its_headers_and_no_board_turns_it_off():
    import urllib.error
    import urllib.request

    on = Server("--store", "memory")
    off = Server("--store", "memory", "--no-board")
    try:
        with urllib.request.urlopen(f"http://{on.addr}/", timeout=10) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"] == "text/html; charset=utf-8"
            assert "script-src 'self'" in resp.headers["Content-Security-Policy"]
            assert b"<h1>Call board</h1>" in resp.read()
        with urllib.request.urlopen(f"http://{on.addr}/board/board.js", timeout=10) as resp:
            assert resp.headers["Content-Type"] == "text/javascript; charset=utf-8"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"http://{off.addr}/", timeout=10)
        assert refused.value.code != 200
    finally:
        on.stop()
        off.stop()


def test_after_a_restart_that_lost_the_log_the_board_starts_over_from_a_snapshot(stubs, chromium):
    # The memory store forgets everything on restart: the board's cursor is
    # then beyond the new log's end (OUT_OF_RANGE, CURSOR_AHEAD), and it must
    # rebuild from a snapshot instead of showing calls that no longer exist.
    V = stubs.types
    server = Server("--store", "memory")
    page = chromium.new_page()
    calls = Calls(stubs, server.addr)
    try:
        page.goto(f"http://{server.addr}/")
        page.wait_for_selector("#connection[data-state=live]")
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("callstarted", callType="inbound", participant="+1 (415) 555-0132"))
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, sf("callconnected", callType="inbound", participant="+1 (415) 555-0132"))
        wait_js(page, "() => document.querySelectorAll('#active tbody tr').length === 1")
        addr = server.addr
        server.stop()
        page.wait_for_selector("#connection[data-state=retrying]")
        server = Server("--store", "memory", listen=addr)
        calls.close()
        calls = Calls(stubs, server.addr)
        page.wait_for_selector("#connection[data-state=live]", timeout=20000)
        wait_js(page, "() => document.querySelectorAll('#active tbody tr').length === 0")
        calls.ingest(V.VENDOR_SALESFORCE_VOICE, json.dumps({"type": "callstarted", "detail": {"callId": "after-reset", "callType": "outbound", "participant": "+1 (415) 555-0177"}}).encode())
        wait_js(page, "() => document.querySelectorAll('#active tbody tr').length === 1")
        assert rows(page, "active")[0]["customer"] == "+1 (415) 555-0177"
    finally:
        calls.close()
        page.close()
        server.stop()

"""The default volume follows from the sqlite store's footprint and the default retention
(README "Sizing the sqlite volume", BENCHMARKS.md "Storage footprint (S13)")."""

from __future__ import annotations

import re

import yaml

from chart_support import CHART_DIR

# Measured by scripts/bench S13: bytes on disk per event for calls of ~8 events.
BYTES_PER_EVENT = 800
# Room for the WAL, free pages and partly filled pages.
MARGIN = 1.25
# The load the values.yaml comment says the default holds for the default retention.
CALLS_PER_DAY = 150_000
EVENTS_PER_CALL = 8

_UNITS = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40}


def _bytes(quantity: str) -> int:
    m = re.fullmatch(r"(\d+)(Ki|Mi|Gi|Ti)", quantity)
    assert m, quantity
    return int(m.group(1)) * _UNITS[m.group(2)]


def _days(duration: str) -> float:
    m = re.fullmatch(r"(\d+)([dh])", duration)
    assert m, duration
    return int(m.group(1)) / (1 if m.group(2) == "d" else 24)


def test_the_default_volume_holds_the_documented_load_for_the_default_retention() -> None:
    values = yaml.safe_load((CHART_DIR / "values.yaml").read_text())
    size = _bytes(values["persistence"]["size"])
    days = _days(values["config"]["retention"]["maxAge"])
    needed = CALLS_PER_DAY * EVENTS_PER_CALL * days * BYTES_PER_EVENT * MARGIN
    assert needed <= size < 2 * needed, (size, needed)
    comment = (CHART_DIR / "values.yaml").read_text()
    assert f"~{CALLS_PER_DAY:,} eight-event calls a day" in comment
    assert "0.8 KB" in comment

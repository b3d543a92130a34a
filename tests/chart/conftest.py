"""Fixtures of the chart tests: every scenario rendered once per session."""

from __future__ import annotations

import helm_python
import pytest

from chart_support import SCENARIOS, Rendered, render

# The Helm engine logs `fail` calls and lint details to stderr; the tests read results instead.
helm_python.disable_logging()


@pytest.fixture(scope="session")
def rendered() -> dict[str, Rendered]:
    return {name: render(values) for name, values in SCENARIOS.items()}


@pytest.fixture(scope="session", params=sorted(SCENARIOS))
def scenario(request: pytest.FixtureRequest, rendered: dict[str, Rendered]) -> Rendered:
    """Each scenario in turn (the test id names it)."""
    return rendered[request.param]

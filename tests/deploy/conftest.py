"""The deploy tests share the chart tests' renderer (tests/chart/chart_support.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "chart"))

import helm_python  # noqa: E402

helm_python.disable_logging()

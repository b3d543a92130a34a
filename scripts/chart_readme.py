#!/usr/bin/env python3
"""Generates the values table of helm/switchboard/README.md from values.yaml.

Every value in values.yaml carries a helm-docs style `# --` comment (continued on the
following `#` lines) right above its key. This script turns those comments, the defaults
and the types from values.schema.json into the Markdown table between the
`<!-- values-table:start -->` and `<!-- values-table:end -->` markers of the README.

    python3 scripts/chart_readme.py          # rewrite the table in place
    python3 scripts/chart_readme.py --check  # exit 1 when the README is out of date

The chart tests import this module, so a value documented in values.yaml but missing
from the README (or a value without a `# --` comment) fails the suite.
"""

from __future__ import annotations

import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

CHART = Path(__file__).resolve().parent.parent / "helm" / "switchboard"
START = "<!-- values-table:start -->"
END = "<!-- values-table:end -->"
_KEY = re.compile(r"^(?P<key>[A-Za-z0-9_.\-]+|\"[^\"]+\"):(?:\s|$)")


@dataclass
class Entry:
    """One key of values.yaml and its `# --` comment (None when it has none)."""

    path: tuple[str, ...]
    doc: str | None


def parse_entries(text: str) -> list[Entry]:
    """Every mapping key of values.yaml, in file order, with its doc comment.

    Keys inside list items (e.g. the default topology spread constraint) belong to the
    list's value, not to the values tree, and are skipped.
    """
    entries: list[Entry] = []
    stack: list[tuple[int, str]] = []
    pending: list[str] | None = None
    list_owner_indent: int | None = None
    for line in text.splitlines():
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if not stripped:
            continue
        if stripped.startswith("#"):
            if stripped.startswith("# --"):
                pending = [stripped[4:].strip()]
            elif stripped.startswith("##"):
                pending = None
            elif pending is not None:
                pending.append(stripped[1:].strip())
            continue
        if list_owner_indent is not None:
            if indent > list_owner_indent:
                continue
            list_owner_indent = None
        if stripped.startswith("- "):
            list_owner_indent = stack[-1][0] if stack else -1
            continue
        match = _KEY.match(stripped)
        if not match:
            continue
        key = match.group("key").strip('"')
        while stack and stack[-1][0] >= indent:
            stack.pop()
        path = tuple(k for _, k in stack) + (key,)
        entries.append(Entry(path, " ".join(pending) if pending else None))
        pending = None
        stack.append((indent, key))
    return entries


def lookup(tree: Any, path: tuple[str, ...]) -> Any:
    for key in path:
        tree = tree[key]
    return tree


def undocumented(entries: list[Entry], values: dict[str, Any]) -> list[str]:
    """Values that are neither documented themselves nor inside a documented value."""
    documented = {e.path for e in entries if e.doc}
    missing = []
    for entry in entries:
        if entry.doc or any(entry.path[:n] in documented for n in range(1, len(entry.path))):
            continue
        value = lookup(values, entry.path)
        if not isinstance(value, dict) or not value:
            missing.append(".".join(entry.path))
    return missing


def schema_type(schema: dict[str, Any], path: tuple[str, ...]) -> str | None:
    node: dict[str, Any] | None = schema
    for key in path:
        if node is None:
            return None
        node = node.get("properties", {}).get(key)
    return _node_type(schema, node) if node else None


def _node_type(schema: dict[str, Any], node: dict[str, Any]) -> str | None:
    if "$ref" in node:
        node = schema["definitions"][node["$ref"].rsplit("/", 1)[1]]
    if "oneOf" in node:
        kinds = [_node_type(schema, alt) for alt in node["oneOf"]]
        return " or ".join(dict.fromkeys(k for k in kinds if k))
    kind = node.get("type")
    if isinstance(kind, list):
        return " or ".join(kind)
    if kind:
        return kind
    if "enum" in node:
        return "string"
    return None


def python_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def table(chart: Path = CHART) -> str:
    """The Markdown values table for the chart at `chart`."""
    text = (chart / "values.yaml").read_text()
    values = yaml.safe_load(text)
    schema = json.loads((chart / "values.schema.json").read_text())
    rows = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    for entry in parse_entries(text):
        if not entry.doc:
            continue
        value = lookup(values, entry.path)
        kind = schema_type(schema, entry.path) or python_type(value)
        default = json.dumps(value, ensure_ascii=False, separators=(", ", ": "))
        rows.append(f"| `{'.'.join(entry.path)}` | {kind} | `{cell(default)}` | {cell(entry.doc)} |")
    return "\n".join(rows) + "\n"


def documented_keys(chart: Path = CHART) -> list[str]:
    text = (chart / "values.yaml").read_text()
    return [".".join(e.path) for e in parse_entries(text) if e.doc]


def render_readme(readme: str, chart: Path = CHART) -> str:
    """`readme` with the text between the markers replaced by the current table."""
    head, sep, rest = readme.partition(START)
    if not sep or END not in rest:
        raise SystemExit(f"README lacks the {START} ... {END} markers")
    _, _, tail = rest.partition(END)
    return f"{head}{START}\n{table(chart)}{END}{tail}"


def main(argv: list[str]) -> int:
    readme_path = CHART / "README.md"
    current = readme_path.read_text()
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    missing = undocumented(parse_entries((CHART / "values.yaml").read_text()), values)
    if missing:
        print("values without a `# --` comment: " + ", ".join(missing), file=sys.stderr)
        return 1
    wanted = render_readme(current)
    if "--check" in argv:
        if wanted != current:
            print("helm/switchboard/README.md is out of date: run scripts/chart_readme.py", file=sys.stderr)
            return 1
        return 0
    if wanted != current:
        readme_path.write_text(wanted)
        print("updated helm/switchboard/README.md")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

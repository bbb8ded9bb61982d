"""The chart's Grafana dashboard, read the way a test needs it: which PromQL each panel runs and which metric
names those queries read, so they can be checked against what the pods really export (a dashboard that
names a metric nobody exports shows "No data" and nothing else goes wrong, so only a test catches it).

The PromQL handling is a small tokenizer, not a parser: it only has to tell metric names apart from the
other identifiers of the queries a dashboard holds (functions, aggregations, label lists, matchers,
durations, Grafana variables), and a parser dependency would be more than that needs.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

from .render import CHART_DIR

DASHBOARD_PATH = CHART_DIR / "files" / "dashboards" / "sglang-epd.json"

# Words that are PromQL syntax, never a metric name, wherever they stand (binary operators, modifiers, the
# Inf and NaN literals). Functions and aggregations need no list: they are followed by `(` or by a
# by/without clause, and are recognised by that.
_KEYWORDS = frozenset(
    {"and", "or", "unless", "bool", "offset", "on", "ignoring", "group_left", "group_right", "by", "without"}
)
_LITERALS = frozenset({"inf", "nan"})
_AGGREGATIONS = frozenset(
    {
        "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
        "bottomk", "topk", "quantile", "limitk", "limit_ratio",
    }
)  # fmt: skip
# Keywords followed by a parenthesised list of label names (not an expression).
_LABEL_LIST_KEYWORDS = frozenset({"on", "ignoring", "group_left", "group_right", "by", "without"})

_IDENT = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
_NUMBER = re.compile(r"0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")
_DURATION = re.compile(r"(?:\d+(?:ms|[smhdwy]))+")
_VARIABLE = re.compile(r"\$(?:\{[^}]*\}|\w+)")
_NAME_MATCHER = re.compile(r"""__name__\s*=\s*(["'`])((?:\\.|(?!\1).)*)\1""")


def load_dashboard(path: Path = DASHBOARD_PATH) -> dict:
    """The dashboard JSON as Grafana imports it."""
    return json.loads(path.read_text())


def iter_panels(panels: list[dict]) -> Iterator[dict]:
    """Every panel, depth first: a collapsed row keeps its panels inside it, an open row keeps them after."""
    for panel in panels:
        yield panel
        yield from iter_panels(panel.get("panels", []))


def panel_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(panel title, expr) of every query target, then ("$<name>", query) of every query variable.

    Variables are included because a variable whose query reads a missing metric leaves every panel empty.
    A variable's query is a string in older dashboards and an object with a `query` key in newer ones.
    """
    queries = [
        (panel.get("title", ""), target["expr"])
        for panel in iter_panels(dashboard.get("panels", []))
        for target in panel.get("targets", [])
        if target.get("expr")
    ]
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") != "query":
            continue
        query = variable.get("query")
        if isinstance(query, dict):
            query = query.get("query")
        if query:
            queries.append((f"${variable['name']}", query))
    return queries


def _skip_string(expr: str, start: int) -> int:
    """Index after the string literal opening at `start` (backquoted strings have no escapes)."""
    quote = expr[start]
    i = start + 1
    while i < len(expr) and expr[i] != quote:
        i += 2 if quote != "`" and expr[i] == "\\" else 1
    return i + 1


def _skip_group(expr: str, start: int, opening: str, closing: str) -> int:
    """Index after the bracket that closes the one at `start`, stepping over strings inside it."""
    depth, i = 0, start
    while i < len(expr):
        char = expr[i]
        if char in "\"'`":
            i = _skip_string(expr, i)
            continue
        if char == opening:
            depth += 1
        elif char == closing:
            depth -= 1
            if depth == 0:
                return i + 1
        i += 1
    return i


def _split_arguments(inner: str) -> list[str]:
    """Top-level comma-separated arguments of a call (commas inside brackets or strings do not split)."""
    parts, start, i = [], 0, 0
    pairs = {"(": ")", "{": "}", "[": "]"}
    while i < len(inner):
        char = inner[i]
        if char in "\"'`":
            i = _skip_string(inner, i)
            continue
        if char in pairs:
            i = _skip_group(inner, i, char, pairs[char])
            continue
        if char == ",":
            parts.append(inner[start:i])
            start = i + 1
        i += 1
    parts.append(inner[start:])
    return parts


def _next_char(expr: str, i: int) -> tuple[str, int]:
    """The first non-blank character at or after `i`, and its index ("" at the end)."""
    while i < len(expr) and expr[i].isspace():
        i += 1
    return (expr[i], i) if i < len(expr) else ("", i)


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression (or a Grafana `label_values(...)` query) reads.

    Names come back exactly as written: `x_bucket` stays `x_bucket`, not the histogram's base name `x`,
    because the exposition lists the `_bucket`/`_sum`/`_count` series by those names too
    (`scrape_metric_names`), so the two compare directly and a query of `x_count` on a metric that has no
    such series is still caught. A selector written `{__name__="x"}` counts as reading `x`.

    Skipped: strings, numbers, durations and whatever is in `[...]` (ranges, subqueries, `$__rate_interval`),
    Grafana variables, label matchers inside `{...}`, the label lists of by/without/on/ignoring/group_*,
    functions and aggregations (identifiers followed by `(` or by a by/without clause), `offset`/`@`
    modifiers, and the label argument of `label_values`.
    """
    names: set[str] = set()
    i = 0
    while i < len(expr):
        char = expr[i]
        if char.isspace():
            i += 1
        elif char == "#":  # comment to the end of the line
            newline = expr.find("\n", i)
            i = len(expr) if newline < 0 else newline + 1
        elif char in "\"'`":
            i = _skip_string(expr, i)
        elif char == "$":
            match = _VARIABLE.match(expr, i)
            i = match.end() if match else i + 1
        elif char == "[":
            i = _skip_group(expr, i, "[", "]")
        elif char == "{":
            end = _skip_group(expr, i, "{", "}")
            names.update(match.group(2) for match in _NAME_MATCHER.finditer(expr, i, end))
            i = end
        elif char.isdigit() or (char == "." and expr[i + 1 : i + 2].isdigit()):
            match = _DURATION.match(expr, i) or _NUMBER.match(expr, i)
            i = match.end() if match else i + 1
        elif match := _IDENT.match(expr, i):
            i = _identifier(expr, match.group(), match.end(), names)
        else:
            i += 1
    return names


def _identifier(expr: str, word: str, end: int, names: set[str]) -> int:
    """Classify the identifier `word` that ends at `end`; add it to `names` if it is a metric name.
    Returns where scanning goes on."""
    following, at = _next_char(expr, end)
    lowered = word.lower()
    if lowered in _LABEL_LIST_KEYWORDS:
        return _skip_group(expr, at, "(", ")") if following == "(" else end
    if lowered in _KEYWORDS or lowered in _LITERALS:
        return end
    if word == "label_values" and following == "(":
        close = _skip_group(expr, at, "(", ")")
        arguments = _split_arguments(expr[at + 1 : close - 1])
        if len(arguments) == 2:  # label_values(selector, label); label_values(label) reads no metric
            names.update(metric_names(arguments[0]))
        return close
    clause = _IDENT.match(expr, at)
    if following == "(" or (
        lowered in _AGGREGATIONS and clause is not None and clause.group().lower() in ("by", "without")
    ):
        return end  # a function, or an aggregation before its by/without clause: its arguments come next
    names.add(word)
    return end


def scrape_metric_names(text: str) -> set[str]:
    """Names in Prometheus (or OpenMetrics) exposition text: every sample's series name, and every
    `# TYPE` name; a histogram's TYPE also gives `_bucket`, `_sum` and `_count`, a summary's `_sum` and
    `_count`, so a metric declared but without samples yet still counts as exported under all its names."""
    names: set[str] = set()
    suffixes = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}
    for line in text.splitlines():
        line = line.strip()
        if not line:
            continue
        if line.startswith("#"):
            fields = line.split()
            if len(fields) >= 4 and fields[1] == "TYPE":
                name, kind = fields[2], fields[3]
                names.add(name)
                names.update(name + suffix for suffix in suffixes.get(kind, ()))
            continue
        match = _IDENT.match(line)
        if match:
            names.add(match.group())
    return names

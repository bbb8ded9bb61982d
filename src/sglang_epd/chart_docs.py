"""The chart's values documentation, generated from one source: the comments in ``values.yaml``.

Convention (helm-docs style): a key is *documented* by a comment block directly above it whose first line
starts with ``# --``; the lines after it (``# ...``, up to the key) continue the description. The
documented key's whole value is its default, so ``router.resources`` is one row even though it is a
mapping. Plain ``#`` comments (no ``--``) describe a section and produce no row. A blank line between the
comment and the key detaches the comment.

From ``values.yaml`` and ``values.schema.json`` this module builds the README's values table (key path,
type from the schema, default as compact JSON, description) and four consistency checks, each returning a
list of problems (empty when consistent):

1. :func:`undocumented_leaves` - every leaf of ``values.yaml`` (scalar, empty mapping, list) lies inside a
   documented key;
2. :func:`documented_keys_missing_from_schema` - every documented key exists in the schema;
3. :func:`schema_properties_missing_from_values` - every property the schema declares exists in
   ``values.yaml`` (except ``global``);
4. :func:`non_strict_objects` - every object schema with ``properties`` has ``additionalProperties: false``.

Usage::

    python -m sglang_epd.chart_docs           # rewrite the table in charts/sglang-epd/README.md
    python -m sglang_epd.chart_docs --check   # exit 1 when the table is stale or a check fails
"""

from __future__ import annotations

import argparse
import difflib
import functools
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

__all__ = [
    "COMMAND",
    "TABLE_END",
    "TABLE_START",
    "DocumentedKey",
    "ParsedValues",
    "Row",
    "build_rows",
    "check_chart",
    "default_chart_dir",
    "documented_keys_missing_from_schema",
    "dotted",
    "expected_readme",
    "main",
    "non_strict_objects",
    "parse_values",
    "render_table",
    "replace_table",
    "resolve",
    "schema_at",
    "schema_properties_missing_from_values",
    "schema_type",
    "undocumented_leaves",
]

TABLE_START = "<!-- values-table:start -->"
TABLE_END = "<!-- values-table:end -->"
DOC_PREFIX = "# --"
COMMAND = "python -m sglang_epd.chart_docs"
# Helm's own top-level key: the schema may declare it, values.yaml need not set it.
_EXEMPT_TOP_LEVEL = frozenset({"global"})

KeyPath = tuple[str, ...]


def dotted(path: KeyPath) -> str:
    """``("rdma", "resources", "rdma/hca")`` -> ``rdma.resources.rdma/hca`` (raw keys, no quoting)."""
    return ".".join(path)


# --------------------------------------------------------------------------------------------------
# values.yaml


@dataclass(frozen=True)
class DocumentedKey:
    path: KeyPath
    description: str
    default: Any
    line: int  # 1-based line of the key in values.yaml

    @property
    def key(self) -> str:
        return dotted(self.path)


@dataclass(frozen=True)
class ParsedValues:
    documented: tuple[DocumentedKey, ...]  # in file order
    leaves: tuple[KeyPath, ...]  # scalars, empty mappings and lists, in file order
    # Every mapping key of values.yaml (not inside lists) -> its value (the constructed Python object).
    values: Mapping[KeyPath, Any]

    def is_documented(self, path: KeyPath) -> bool:
        """True when ``path`` or one of its ancestors is a documented key."""
        return any(path[:n] in self._documented_paths for n in range(1, len(path) + 1))

    @functools.cached_property
    def _documented_paths(self) -> frozenset[KeyPath]:
        return frozenset(d.path for d in self.documented)


def _description(lines: Sequence[str], key_line: int) -> str | None:
    """The ``# --`` description of the key on ``key_line`` (0-based), or None when it has none.

    The comment block is the run of comment lines directly above the key; its last ``# --`` line starts
    the description and every comment line after it continues it.
    """
    block: list[str] = []
    i = key_line - 1
    while i >= 0 and lines[i].lstrip().startswith("#"):
        block.insert(0, lines[i].strip())
        i -= 1
    starts = [n for n, text in enumerate(block) if text == DOC_PREFIX or text.startswith(DOC_PREFIX + " ")]
    if not starts:
        return None
    first = starts[-1]
    parts = [block[first][len(DOC_PREFIX) :]] + [text[1:] for text in block[first + 1 :]]
    return " ".join(" ".join(parts).split())


def _is_block_key(lines: Sequence[str], node: yaml.Node) -> bool:
    """True when the key node is the first token of its line (a block-mapping key, not a flow-mapping one)."""
    line = lines[node.start_mark.line]
    return node.start_mark.column == len(line) - len(line.lstrip())


def parse_values(text: str) -> ParsedValues:
    """Parse ``values.yaml`` text: documented keys with their defaults, leaves and all key paths.

    Key paths follow the mapping structure (YAML's own indentation rules, so quoted keys, flow mappings
    and block scalars are handled); lists are leaves, their items are never key paths.
    """
    lines = text.splitlines()
    loader = yaml.SafeLoader(text)
    try:
        root = loader.get_single_node()
        documented: list[DocumentedKey] = []
        leaves: list[KeyPath] = []
        values: dict[KeyPath, Any] = {}

        def walk(node: yaml.MappingNode, prefix: KeyPath) -> None:
            for key_node, value_node in node.value:
                path = (*prefix, str(key_node.value))
                value = loader.construct_object(value_node, deep=True)
                values[path] = value
                if _is_block_key(lines, key_node):
                    description = _description(lines, key_node.start_mark.line)
                    if description is not None:
                        documented.append(
                            DocumentedKey(path, description, value, key_node.start_mark.line + 1)
                        )
                if isinstance(value_node, yaml.MappingNode) and value_node.value:
                    walk(value_node, path)
                else:
                    leaves.append(path)

        if isinstance(root, yaml.MappingNode):
            walk(root, ())
        elif root is not None:
            raise ValueError("values.yaml must be a mapping at the top level")
    finally:
        loader.dispose()
    return ParsedValues(tuple(documented), tuple(leaves), values)


# --------------------------------------------------------------------------------------------------
# values.schema.json


def resolve(schema: Any, root: Mapping[str, Any]) -> Any:
    """Follow local ``$ref``s (``#/definitions/x``, any ``#/...`` JSON pointer) to the schema they name."""
    seen: set[str] = set()
    while isinstance(schema, Mapping) and "$ref" in schema:
        ref = schema["$ref"]
        if not isinstance(ref, str) or not ref.startswith("#") or ref in seen:
            raise ValueError(f"unsupported or circular $ref {ref!r}")
        seen.add(ref)
        target: Any = root
        for part in filter(None, ref[1:].split("/")):
            target = target[part.replace("~1", "/").replace("~0", "~")]
        schema = target
    return schema


def _branches(schema: Mapping[str, Any], root: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    """The schema itself and, recursively, its anyOf/oneOf/allOf branches, all resolved."""
    schema = resolve(schema, root)
    yield schema
    for combinator in ("anyOf", "oneOf", "allOf"):
        for branch in schema.get(combinator, ()):
            yield from _branches(branch, root)


def _child(schema: Mapping[str, Any], key: str, root: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The schema of child ``key`` of an object schema, or None when the schema does not declare it.

    A declared property wins; else an ``additionalProperties`` schema covers any key; else a free-form
    object (``type: object`` without ``properties`` or ``additionalProperties``, e.g. ``affinity``) accepts
    any key with any value (``{}``).
    """
    branches = list(_branches(schema, root))
    for branch in branches:
        if key in branch.get("properties", {}):
            return resolve(branch["properties"][key], root)
    for branch in branches:
        extra = branch.get("additionalProperties")
        if isinstance(extra, Mapping):
            return resolve(extra, root)
    for branch in branches:
        free_form = "properties" not in branch and branch.get("additionalProperties", True) is True
        if branch.get("type") == "object" and free_form:
            return {}
    return None


def schema_at(root: Mapping[str, Any], path: KeyPath) -> Mapping[str, Any] | None:
    """The schema of the value at ``path`` (through properties, $ref and additionalProperties), or None."""
    schema: Mapping[str, Any] | None = resolve(root, root)
    for key in path:
        if schema is None:
            return None
        schema = _child(schema, key, root)
    return schema


def schema_type(schema: Mapping[str, Any] | None, root: Mapping[str, Any]) -> str:
    """A schema's type for the table: ``string``, ``integer or string`` (anyOf), ``object``, ..."""
    if schema is None:
        return ""
    schema = resolve(schema, root)
    types: list[str] = []
    declared = schema.get("type")
    if isinstance(declared, str):
        types.append(declared)
    elif isinstance(declared, list):
        types.extend(str(t) for t in declared)
    else:
        for combinator in ("anyOf", "oneOf"):
            for branch in schema.get(combinator, ()):
                types.extend(schema_type(branch, root).split(" or "))
        if not types and "properties" in schema:
            types.append("object")
    return " or ".join(dict.fromkeys(t for t in types if t))


# --------------------------------------------------------------------------------------------------
# Checks


def undocumented_leaves(parsed: ParsedValues) -> list[str]:
    """Check 1: leaves of values.yaml that are not inside a documented key."""
    return [dotted(leaf) for leaf in parsed.leaves if not parsed.is_documented(leaf)]


def documented_keys_missing_from_schema(parsed: ParsedValues, schema: Mapping[str, Any]) -> list[str]:
    """Check 2: documented keys the schema does not allow."""
    return [doc.key for doc in parsed.documented if schema_at(schema, doc.path) is None]


def schema_properties_missing_from_values(parsed: ParsedValues, schema: Mapping[str, Any]) -> list[str]:
    """Check 3: properties the schema declares that values.yaml lacks (so they have no default and no row).

    Descends through object schemas with ``properties`` while values.yaml holds a non-empty mapping there;
    not into ``additionalProperties`` maps or array items. An empty-mapping default such as
    ``encoder.image: {}`` means "nothing set": its optional properties are not expected in values.yaml.
    """
    problems: list[str] = []

    def walk(node: Mapping[str, Any], prefix: KeyPath) -> None:
        for branch in _branches(node, schema):
            for key, sub in branch.get("properties", {}).items():
                path = (*prefix, key)
                if not prefix and key in _EXEMPT_TOP_LEVEL:
                    continue
                if path not in parsed.values:
                    problems.append(dotted(path))
                    continue
                value = parsed.values[path]
                if isinstance(value, Mapping) and value:
                    walk(resolve(sub, schema), path)

    walk(schema, ())
    return list(dict.fromkeys(problems))


def _subschemas(node: Any, pointer: str) -> Iterator[tuple[str, Mapping[str, Any]]]:
    """Every schema object inside ``node`` with its JSON pointer (definitions, properties, items, ...)."""
    if not isinstance(node, Mapping):
        return
    yield pointer, node
    for group in ("definitions", "$defs", "properties", "patternProperties"):
        for name, sub in node.get(group, {}).items():
            yield from _subschemas(sub, f"{pointer}/{group}/{name.replace('~', '~0').replace('/', '~1')}")
    for single in ("additionalProperties", "items", "not", "if", "then", "else", "contains"):
        yield from _subschemas(node.get(single), f"{pointer}/{single}")
    for many in ("anyOf", "oneOf", "allOf", "items"):
        if isinstance(node.get(many), list):
            for i, sub in enumerate(node[many]):
                yield from _subschemas(sub, f"{pointer}/{many}/{i}")


def non_strict_objects(schema: Mapping[str, Any]) -> list[str]:
    """Check 4: object schemas with ``properties`` but without ``additionalProperties: false``."""
    return [
        f"{pointer}: declares properties but not additionalProperties: false"
        for pointer, node in _subschemas(schema, "#")
        if "properties" in node and node.get("additionalProperties") is not False
    ]


# --------------------------------------------------------------------------------------------------
# The table


@dataclass(frozen=True)
class Row:
    key: str
    type: str
    default: str
    description: str


def _compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False, default=str)


def build_rows(parsed: ParsedValues, schema: Mapping[str, Any]) -> list[Row]:
    return [
        Row(
            key=doc.key,
            type=schema_type(schema_at(schema, doc.path), schema),
            default=_compact_json(doc.default),
            description=doc.description,
        )
        for doc in parsed.documented
    ]


def _cell(text: str) -> str:
    return text.replace("|", "\\|")


def _prose(text: str) -> str:
    """Description text for a table cell: outside `code` spans, ``<x>`` would be taken for an HTML tag."""
    parts = text.split("`")
    for i in range(0, len(parts), 2):
        parts[i] = parts[i].replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _cell("`".join(parts))


def _code(text: str) -> str:
    fence = "``" if "`" in text else "`"
    pad = " " if fence == "``" else ""
    return f"{fence}{pad}{_cell(text)}{pad}{fence}"


def render_table(rows: Sequence[Row]) -> str:
    """A Markdown table, one row per documented key, in values.yaml order."""
    out = ["| Key | Type | Default | Description |", "|-----|------|---------|-------------|"]
    out += [
        f"| {_code(r.key)} | {_cell(r.type)} | {_code(r.default)} | {_prose(r.description)} |" for r in rows
    ]
    return "\n".join(out) + "\n"


def replace_table(readme: str, table: str) -> str:
    """The README with everything between the two markers replaced by ``table``."""
    start = readme.find(TABLE_START)
    end = readme.find(TABLE_END)
    if start < 0 or end < start:
        raise ValueError(f"README needs the markers {TABLE_START} and {TABLE_END}, in that order")
    head = readme[: start + len(TABLE_START)]
    return f"{head}\n\n{table}\n{readme[end:]}"


# --------------------------------------------------------------------------------------------------
# The chart


def default_chart_dir() -> Path:
    """charts/sglang-epd of this source tree, else of the current directory."""
    here = Path(__file__).resolve().parents[2] / "charts" / "sglang-epd"
    return here if here.is_dir() else Path.cwd() / "charts" / "sglang-epd"


def _load(chart_dir: Path) -> tuple[ParsedValues, dict[str, Any]]:
    parsed = parse_values((chart_dir / "values.yaml").read_text(encoding="utf-8"))
    schema = json.loads((chart_dir / "values.schema.json").read_text(encoding="utf-8"))
    return parsed, schema


def expected_readme(chart_dir: Path) -> str:
    """The chart README as it should be: the current text with a freshly generated values table."""
    parsed, schema = _load(chart_dir)
    readme = (chart_dir / "README.md").read_text(encoding="utf-8")
    return replace_table(readme, render_table(build_rows(parsed, schema)))


def check_chart(chart_dir: Path) -> dict[str, list[str]]:
    """The four consistency checks on a chart directory, by name."""
    parsed, schema = _load(chart_dir)
    return {
        "values.yaml leaves outside a documented key": undocumented_leaves(parsed),
        "documented keys missing from values.schema.json": documented_keys_missing_from_schema(
            parsed, schema
        ),
        "values.schema.json properties missing from values.yaml": schema_properties_missing_from_values(
            parsed, schema
        ),
        "values.schema.json objects that accept unknown keys": non_strict_objects(schema),
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog=COMMAND, description="Generate (or --check) the values table of the chart README."
    )
    parser.add_argument("--check", action="store_true", help="verify instead of writing; exit 1 on drift")
    parser.add_argument(
        "--chart", type=Path, default=None, help="chart directory (default: charts/sglang-epd)"
    )
    args = parser.parse_args(argv)
    chart_dir: Path = args.chart or default_chart_dir()
    readme_path = chart_dir / "README.md"

    status = 0
    for title, problems in check_chart(chart_dir).items():
        if problems:
            status = 1
            print(f"{title}:", *(f"  {p}" for p in problems), sep="\n", file=sys.stderr)

    current = readme_path.read_text(encoding="utf-8")
    wanted = expected_readme(chart_dir)
    if current == wanted:
        return status
    if args.check:
        diff = difflib.unified_diff(
            current.splitlines(keepends=True),
            wanted.splitlines(keepends=True),
            fromfile=f"{readme_path} (current)",
            tofile=f"{readme_path} (generated)",
        )
        sys.stderr.writelines(diff)
        print(f"{readme_path}: the values table is out of date; run `{COMMAND}`.", file=sys.stderr)
        return 1
    readme_path.write_text(wanted, encoding="utf-8")
    print(f"{readme_path}: values table updated.")
    return status


if __name__ == "__main__":
    sys.exit(main())

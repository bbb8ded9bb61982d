"""The values documentation: values.yaml comments, values.schema.json and the README table agree.

The generator and the checks live in :mod:`sglang_epd.chart_docs`; fix a failure by documenting the key in
values.yaml (a ``# --`` comment), fixing the schema, or running ``python -m sglang_epd.chart_docs``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from sglang_epd.chart_docs import (
    COMMAND,
    TABLE_END,
    TABLE_START,
    ParsedValues,
    build_rows,
    documented_keys_missing_from_schema,
    expected_readme,
    main,
    non_strict_objects,
    parse_values,
    render_table,
    schema_at,
    schema_properties_missing_from_values,
    schema_type,
    undocumented_leaves,
)

CHART_DIR = Path(__file__).resolve().parents[2] / "charts" / "sglang-epd"

# --------------------------------------------------------------------------------------------------
# The real chart


@pytest.fixture(scope="module")
def chart_values() -> ParsedValues:
    return parse_values((CHART_DIR / "values.yaml").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def chart_schema() -> dict[str, Any]:
    return json.loads((CHART_DIR / "values.schema.json").read_text(encoding="utf-8"))


def test_readme_values_table_is_up_to_date() -> None:
    current = (CHART_DIR / "README.md").read_text(encoding="utf-8")
    assert current == expected_readme(CHART_DIR), f"README values table is stale: run `{COMMAND}`"


def test_every_values_leaf_is_documented(chart_values: ParsedValues) -> None:
    assert undocumented_leaves(chart_values) == [], "add a `# -- ` comment above these keys (or a parent)"


def test_every_documented_key_is_in_the_schema(
    chart_values: ParsedValues, chart_schema: dict[str, Any]
) -> None:
    assert documented_keys_missing_from_schema(chart_values, chart_schema) == []


def test_every_schema_property_is_in_values(chart_values: ParsedValues, chart_schema: dict[str, Any]) -> None:
    assert schema_properties_missing_from_values(chart_values, chart_schema) == []


def test_schema_rejects_unknown_keys(chart_schema: dict[str, Any]) -> None:
    assert non_strict_objects(chart_schema) == []


# --------------------------------------------------------------------------------------------------
# The parser and the checks on a small inline chart

VALUES = """\
# Plain section comment: no row.
server:
  # -- Port of the server.
  # Continues   on this line.
  port: 8000
  # A plain comment does not document.
  host: ""
  # -- Resources; the whole subtree is the default.
  resources:
    limits: {memory: 4Gi}
  # -- Extended resources.
  devices:
    rdma/hca: 1

  # -- A blank line detaches this comment.

  detached: true
# -- Secrets, e.g. `[{name: a|b}]` for <release>.
secrets:
  - name: regcred
    # -- Inside a list: not a key path.
    key: x
# -- Not in the schema.
extra: 1
flow: {x: 1}
"""

SCHEMA: dict[str, Any] = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "definitions": {
        "quantity": {"anyOf": [{"type": "integer"}, {"type": "string"}]},
        "resources": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "limits": {"type": "object", "additionalProperties": {"$ref": "#/definitions/quantity"}}
            },
        },
    },
    "properties": {
        "global": {"type": "object"},
        "server": {
            "type": "object",
            "additionalProperties": False,
            "properties": {
                "port": {"type": "integer"},
                "host": {"type": "string"},
                "resources": {"$ref": "#/definitions/resources"},
                "devices": {"type": "object", "additionalProperties": {"$ref": "#/definitions/quantity"}},
                "detached": {"type": "boolean"},
                "timeout": {"type": "integer"},
            },
        },
        "secrets": {"type": "array", "items": {"type": "object", "properties": {"name": {"type": "string"}}}},
        "flow": {"type": "object", "additionalProperties": False, "properties": {"x": {"type": "integer"}}},
    },
}


@pytest.fixture
def values() -> ParsedValues:
    return parse_values(VALUES)


@pytest.fixture
def table(values: ParsedValues) -> str:
    return render_table(build_rows(values, SCHEMA))


def test_documented_keys_in_file_order(values: ParsedValues) -> None:
    assert [d.key for d in values.documented] == [
        "server.port",
        "server.resources",
        "server.devices",
        "secrets",
        "extra",
    ]


@pytest.mark.parametrize(
    ("key", "description", "default"),
    [
        ("server.port", "Port of the server. Continues on this line.", 8000),
        ("server.resources", "Resources; the whole subtree is the default.", {"limits": {"memory": "4Gi"}}),
        ("server.devices", "Extended resources.", {"rdma/hca": 1}),
        ("secrets", "Secrets, e.g. `[{name: a|b}]` for <release>.", [{"name": "regcred", "key": "x"}]),
    ],
)
def test_description_and_default(values: ParsedValues, key: str, description: str, default: Any) -> None:
    doc = next(d for d in values.documented if d.key == key)
    assert (doc.description, doc.default) == (description, default)


def test_undocumented_leaves(values: ParsedValues) -> None:
    assert undocumented_leaves(values) == ["server.host", "server.detached", "flow.x"]


def test_documented_key_missing_from_schema(values: ParsedValues) -> None:
    assert documented_keys_missing_from_schema(values, SCHEMA) == ["extra"]


def test_schema_property_missing_from_values(values: ParsedValues) -> None:
    assert schema_properties_missing_from_values(values, SCHEMA) == ["server.timeout"]


def test_non_strict_object() -> None:
    assert non_strict_objects(SCHEMA) == [
        "#/properties/secrets/items: declares properties but not additionalProperties: false"
    ]


@pytest.mark.parametrize(
    ("path", "type_"),
    [
        (("server", "port"), "integer"),
        (("server", "resources"), "object"),
        (("server", "resources", "limits", "cpu"), "integer or string"),
        (("server", "devices", "rdma/hca"), "integer or string"),
        (("secrets",), "array"),
    ],
)
def test_schema_type_follows_refs_any_of_and_additional_properties(path: tuple[str, ...], type_: str) -> None:
    assert schema_type(schema_at(SCHEMA, path), SCHEMA) == type_


def test_unknown_key_has_no_schema() -> None:
    assert schema_at(SCHEMA, ("server", "nope")) is None


def test_table_rows(table: str) -> None:
    assert "| `server.port` | integer | `8000` | Port of the server. Continues on this line. |" in table
    assert '| `server.resources` | object | `{"limits":{"memory":"4Gi"}}` |' in table
    assert '| `server.devices` | object | `{"rdma/hca":1}` | Extended resources. |' in table


def test_table_escapes_pipes_and_tags(table: str) -> None:
    assert "Secrets, e.g. `[{name: a\\|b}]` for &lt;release&gt;. |" in table


# --------------------------------------------------------------------------------------------------
# The command on a small consistent chart


@pytest.fixture
def stale_chart(tmp_path: Path) -> Path:
    (tmp_path / "values.yaml").write_text("# -- Port.\nport: 8000\n", encoding="utf-8")
    schema = {"type": "object", "additionalProperties": False, "properties": {"port": {"type": "integer"}}}
    (tmp_path / "values.schema.json").write_text(json.dumps(schema), encoding="utf-8")
    (tmp_path / "README.md").write_text(f"# t\n\n{TABLE_START}\nstale\n{TABLE_END}\n", encoding="utf-8")
    return tmp_path


@pytest.fixture
def generated_chart(stale_chart: Path) -> Path:
    assert main(["--chart", str(stale_chart)]) == 0
    return stale_chart


def test_check_fails_on_a_stale_table(stale_chart: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--check", "--chart", str(stale_chart)]) == 1
    err = capsys.readouterr().err
    assert "-stale" in err
    assert f"run `{COMMAND}`" in err
    assert "stale" in (stale_chart / "README.md").read_text(encoding="utf-8")


def test_generated_table_passes_check(generated_chart: Path) -> None:
    assert main(["--check", "--chart", str(generated_chart)]) == 0
    assert (generated_chart / "README.md").read_text(encoding="utf-8") == (
        f"# t\n\n{TABLE_START}\n\n"
        "| Key | Type | Default | Description |\n"
        "|-----|------|---------|-------------|\n"
        "| `port` | integer | `8000` | Port. |\n"
        f"\n{TABLE_END}\n"
    )

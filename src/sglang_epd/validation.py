"""Offline validation of rendered Kubernetes objects.

Three validators, each returning a list of ``"<path>: <message>"`` strings (empty when valid):

* :func:`validate_builtin` - built-in kinds (Service, Ingress, HPA, v1 PodTemplate, ...) against the
  *strict* (``additionalProperties: false``) JSON schemas bundled in the ``kubernetes-validate`` package.
  One validator is built per (Kubernetes minor, apiVersion, kind) and cached, instead of re-reading the
  schema files on each call as ``kubernetes_validate.validate`` does.
* :func:`validate_rbg_crd` - any object of the RBG API group (``RoleBasedGroup``, ``CoordinatedPolicy``,
  ...) against the openAPIV3Schema of its real RBG CRD, converted from a Kubernetes structural schema
  to JSON Schema with the semantics of server-side strict field validation (unknown fields are errors
  except under ``x-kubernetes-preserve-unknown-fields``).
* :func:`validate_rbg_roles_strict` - every ``spec.roles[]`` against the repo's closed role schema
  (the CRD preserves unknown role fields, so a misspelled role field passes it), plus
  :func:`check_rbg_role_graph` (unique names, known dependencies, no cycles).
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Mapping
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import jsonschema
import yaml
from referencing import Registry, Resource

__all__ = [
    "RBG_API_VERSION",
    "RBG_CRDS_ENV",
    "RBG_CRD_FILENAME",
    "RBG_KIND",
    "ROLE_STRICT_SCHEMA",
    "SchemaNotFoundError",
    "UnsupportedKubernetesVersionError",
    "check_rbg_role_graph",
    "is_rbg_api_object",
    "pod_template_as_v1",
    "rbg_crd_path",
    "validate_builtin",
    "validate_object",
    "validate_rbg_crd",
    "validate_rbg_roles_strict",
]

RBG_API_VERSION = "workloads.x-k8s.io/v1alpha2"
RBG_KIND = "RoleBasedGroup"
RBG_API_GROUP = "workloads.x-k8s.io"
# The CRD file of each kind in the rbg repository's config/crd/bases (the layout of ../shared/rbg-crds).
RBG_CRD_FILES = {
    kind: f"{RBG_API_GROUP}_{plural}.yaml"
    for kind, plural in {
        "RoleBasedGroup": "rolebasedgroups",
        "CoordinatedPolicy": "coordinatedpolicies",
        "RoleBasedGroupScalingAdapter": "rolebasedgroupscalingadapters",
        "RoleBasedGroupSet": "rolebasedgroupsets",
        "RoleBasedGroupWarmup": "rolebasedgroupwarmups",
        "ClusterEngineRuntimeProfile": "clusterengineruntimeprofiles",
        "Instance": "instances",
        "InstanceSet": "instancesets",
        "RoleInstance": "roleinstances",
        "RoleInstanceSet": "roleinstancesets",
    }.items()
}
RBG_CRD_FILENAME = RBG_CRD_FILES["RoleBasedGroup"]
RBG_CRDS_ENV = "SGLANG_EPD_RBG_CRDS"
ROLE_STRICT_SCHEMA = "rbg-role-strict.schema.json"
# Custom resources of other operators the chart renders. Their CRDs are not bundled, so closed schemas of
# the fields the chart uses, written from the operators' API references, live here. Objects of the RBG API
# group are checked against RBG's real CRDs instead (validate_rbg_crd).
CUSTOM_SCHEMAS = {
    ("monitoring.coreos.com/v1", "PodMonitor"): "podmonitor-strict.schema.json",
    ("keda.sh/v1alpha1", "ScaledObject"): "scaledobject-strict.schema.json",
}

_REPO_ROOT = Path(__file__).resolve().parents[2]
_DEFAULT_CRDS_DIR = _REPO_ROOT.parent / "shared" / "rbg-crds"
_DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"
_MAX_MESSAGE = 300

_DNS1123_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
_DNS1123_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"


class SchemaNotFoundError(LookupError):
    """No schema is available for an object's kind/apiVersion in the requested Kubernetes version."""


class UnsupportedKubernetesVersionError(ValueError):
    """The Kubernetes version is malformed or outside the range bundled by kubernetes-validate."""


# --------------------------------------------------------------------------------------------------
# error formatting


def _json_path(parts: Iterable[str | int], prefix: str = "") -> str:
    out = prefix
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out = f"{out}.{part}" if out else str(part)
    return out or "<root>"


def _format_error(error: jsonschema.ValidationError, prefix: str) -> str:
    message = error.message
    schema = error.schema
    if error.validator in ("oneOf", "anyOf", "not") and isinstance(schema, Mapping):
        message = schema.get("description", message)
    if len(message) > _MAX_MESSAGE:
        message = message[: _MAX_MESSAGE - 3] + "..."
    return f"{_json_path(error.absolute_path, prefix)}: {message}"


def _path_key(error: jsonschema.ValidationError) -> list[tuple[int, int | str]]:
    return [(0, p) if isinstance(p, int) else (1, str(p)) for p in error.absolute_path]


def _collect(validator: jsonschema.protocols.Validator, instance: Any, prefix: str = "") -> list[str]:
    errors = sorted(validator.iter_errors(instance), key=lambda e: (_path_key(e), e.message))
    return [_format_error(error, prefix) for error in errors]


# --------------------------------------------------------------------------------------------------
# built-in kinds: kubernetes-validate's bundled strict schemas
#
# Layout (kubernetes-validate 1.37.0, see kubernetes_validate/utils.py):
#   kubernetes_validate/kubernetes-json-schema/v<X.Y.0>-local-strict/<kind>-<group>-<version>.json
# with the group's domain dropped ("networking.k8s.io/v1" -> "networking-v1", core "v1" -> "v1").
# Each kind file has "$id": "https://kubernetes.io/api/<kind>/<version>" and refs
# "/api/_definitions.json#/$defs/<name>", which resolve to the "$id" of the sibling _definitions.json.


def _kv_schema_root() -> Traversable:
    try:
        return resources.files("kubernetes_validate").joinpath("kubernetes-json-schema")
    except ModuleNotFoundError as exc:
        raise ModuleNotFoundError(
            "validate_builtin needs the 'kubernetes-validate' package: "
            "pip install kubernetes-validate==1.37.0"
        ) from exc


@functools.cache
def _strict_schema_dirs() -> dict[tuple[int, int], Traversable]:
    pattern = re.compile(r"^v(\d+)\.(\d+)\.\d+-local-strict$")
    dirs: dict[tuple[int, int], Traversable] = {}
    for entry in _kv_schema_root().iterdir():
        match = pattern.match(entry.name)
        if match and entry.is_dir():
            dirs[(int(match[1]), int(match[2]))] = entry
    return dirs


def _parse_minor(kubernetes_version: str) -> tuple[int, int]:
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.\d+)?(?:[-+].*)?", kubernetes_version.strip())
    if not match:
        raise UnsupportedKubernetesVersionError(
            f"malformed Kubernetes version {kubernetes_version!r} (expected e.g. '1.29' or 'v1.29.3')"
        )
    return int(match[1]), int(match[2])


def _strict_dir(minor: tuple[int, int]) -> Traversable:
    dirs = _strict_schema_dirs()
    if minor not in dirs:
        bundled = sorted(dirs)
        span = f"{bundled[0][0]}.{bundled[0][1]}-{bundled[-1][0]}.{bundled[-1][1]}" if bundled else "none"
        raise UnsupportedKubernetesVersionError(
            f"kubernetes-validate bundles no strict schemas for Kubernetes {minor[0]}.{minor[1]}"
            f" (bundled: {span})"
        )
    return dirs[minor]


def _schema_file_name(api_version: str, kind: str) -> str:
    api = re.sub(r"^([^./]*)(?:\.[^/]*)?/", r"\1-", api_version)
    return f"{kind.lower()}-{api}.json"


def _gvk_matches(schema: Mapping[str, Any], api_version: str, kind: str) -> bool:
    group, _, version = api_version.rpartition("/")
    gvks = schema.get("x-kubernetes-group-version-kind") or []
    return any(
        (g.get("group") or "") == group and g.get("version") == version and g.get("kind") == kind
        for g in gvks
    )


@functools.cache
def _definitions_registry(minor: tuple[int, int]) -> Registry:
    definitions = json.loads(_strict_dir(minor).joinpath("_definitions.json").read_text())
    return Registry().with_resource(definitions["$id"], Resource.from_contents(definitions)).crawl()


@functools.cache
def _builtin_validator(minor: tuple[int, int], api_version: str, kind: str) -> jsonschema.protocols.Validator:
    directory = _strict_dir(minor)
    file_name = _schema_file_name(api_version, kind)
    schema_file = directory.joinpath(file_name)
    schema = json.loads(schema_file.read_text()) if schema_file.is_file() else None
    if schema is None or not _gvk_matches(schema, api_version, kind):
        raise SchemaNotFoundError(
            f"no strict schema for kind={kind} apiVersion={api_version} in Kubernetes {minor[0]}.{minor[1]}"
            f" (kubernetes-validate: {directory.name}/{file_name})"
        )
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, registry=_definitions_registry(minor))


def validate_builtin(obj: dict, kubernetes_version: str) -> list[str]:
    """Validate a built-in Kubernetes object against kubernetes-validate's strict schema.

    ``kubernetes_version`` is "1.29", "v1.29" or "1.29.3"; the bundled schema of that minor is used.
    Raises :class:`SchemaNotFoundError` for an unknown kind/apiVersion and
    :class:`UnsupportedKubernetesVersionError` for a version outside the bundled range.
    """
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not isinstance(kind, str):
        raise SchemaNotFoundError(
            f"object has no string apiVersion/kind: apiVersion={api_version!r} kind={kind!r}"
        )
    validator = _builtin_validator(_parse_minor(kubernetes_version), api_version, kind)
    return _collect(validator, obj)


@functools.cache
def _custom_validator(schema_file: str) -> jsonschema.protocols.Validator:
    text = resources.files("sglang_epd").joinpath("schemas").joinpath(schema_file).read_text()
    return jsonschema.Draft202012Validator(json.loads(text))


def is_rbg_api_object(obj: Mapping[str, Any]) -> bool:
    """True for objects of the RBG API group (workloads.x-k8s.io/*), which validate_rbg_crd checks."""
    return str(obj.get("apiVersion", "")).startswith(f"{RBG_API_GROUP}/")


def validate_object(obj: dict, kubernetes_version: str) -> list[str]:
    """Validate a rendered object outside the RBG API group: other operators' custom resources
    (CUSTOM_SCHEMAS) against this repository's closed schemas, built-in kinds against kubernetes-validate's
    strict ones."""
    schema_file = CUSTOM_SCHEMAS.get((obj.get("apiVersion"), obj.get("kind")))  # type: ignore[arg-type]
    if schema_file is not None:
        return _collect(_custom_validator(schema_file), obj)
    return validate_builtin(obj, kubernetes_version)


def pod_template_as_v1(template: dict, name: str) -> dict:
    """Wrap a PodTemplateSpec (e.g. an RBG role's ``standalonePattern.template``) as a v1 PodTemplate."""
    return {
        "apiVersion": "v1",
        "kind": "PodTemplate",
        "metadata": {"name": name},
        "template": copy.deepcopy(template),
    }


# --------------------------------------------------------------------------------------------------
# RoleBasedGroup: the real CRD's structural schema, converted to JSON Schema


def rbg_crd_path(kind: str = RBG_KIND) -> Path | None:
    """The real CRD file of an RBG kind: in $SGLANG_EPD_RBG_CRDS (a folder, or the RoleBasedGroup CRD file
    itself), else in ../shared/rbg-crds/; None when neither has it."""
    file_name = RBG_CRD_FILES[kind]
    candidates: list[Path] = []
    env = os.environ.get(RBG_CRDS_ENV)
    if env:
        env_path = Path(env)
        if env_path.suffix not in (".yaml", ".yml"):
            candidates.append(env_path / file_name)
        elif kind == RBG_KIND:
            candidates.append(env_path)
    candidates.append(_DEFAULT_CRDS_DIR / file_name)
    return next((path for path in candidates if path.is_file()), None)


# Keys that carry no validation for jsonschema, or that are translated below.
_STRUCTURAL_ONLY_KEYS = frozenset(
    {
        "description",
        "default",
        "example",
        "externalDocs",
        "nullable",
        "x-kubernetes-embedded-resource",
        "x-kubernetes-int-or-string",
        "x-kubernetes-list-map-keys",
        "x-kubernetes-list-type",
        "x-kubernetes-map-type",
        "x-kubernetes-preserve-unknown-fields",
        "x-kubernetes-validations",
    }
)
_INT_OR_STRING_ANY_OF = [{"type": "integer"}, {"type": "string"}]
_STRING_MAP = {"type": "object", "additionalProperties": {"type": "string"}}
_LOOSE_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1, "maxLength": 253, "pattern": _DNS1123_SUBDOMAIN},
        "namespace": {"type": "string", "maxLength": 63, "pattern": _DNS1123_LABEL},
        "labels": _STRING_MAP,
        "annotations": _STRING_MAP,
    },
}


def _allow_null(schema: dict[str, Any]) -> None:
    kind = schema.get("type")
    if isinstance(kind, str):
        schema["type"] = [kind, "null"]
    elif isinstance(kind, list) and "null" not in kind:
        schema["type"] = [*kind, "null"]
    if "enum" in schema and None not in schema["enum"]:
        schema["enum"] = [*schema["enum"], None]


def _oas_exclusive_bounds(schema: dict[str, Any]) -> None:
    # OpenAPI 3.0 has boolean exclusiveMinimum/exclusiveMaximum; JSON Schema 2020-12 has numbers.
    for bound, exclusive in (("minimum", "exclusiveMinimum"), ("maximum", "exclusiveMaximum")):
        if isinstance(schema.get(exclusive), bool) and schema.pop(exclusive) and bound in schema:
            schema[exclusive] = schema.pop(bound)


def _convert_structural(node: Mapping[str, Any], *, in_junctor: bool = False, preserve: bool = False) -> dict:
    """Convert one Kubernetes structural-schema node (and its children) to JSON Schema 2020-12.

    Unknown fields are rejected (``additionalProperties: false``) on object nodes, as server-side strict
    field validation does, except where ``x-kubernetes-preserve-unknown-fields`` applies: on the node
    itself, or inherited by the items of a preserving array (the apiserver's skipPrune descends arrays).
    Nodes inside allOf/anyOf/oneOf/not are value validations only and are never closed.
    """
    out = {key: value for key, value in node.items() if key not in _STRUCTURAL_ONLY_KEYS}
    preserve = preserve or bool(node.get("x-kubernetes-preserve-unknown-fields"))
    if node.get("x-kubernetes-int-or-string"):
        out["type"] = ["integer", "string"]
        if out.get("anyOf") == _INT_OR_STRING_ANY_OF:
            del out["anyOf"]
    if node.get("nullable"):
        _allow_null(out)
    _oas_exclusive_bounds(out)
    if node.get("x-kubernetes-list-type") == "set":
        out["uniqueItems"] = True
    if isinstance(out.get("properties"), Mapping):
        out["properties"] = {
            name: _convert_structural(child, in_junctor=in_junctor)
            for name, child in out["properties"].items()
        }
    if isinstance(out.get("additionalProperties"), Mapping):
        out["additionalProperties"] = _convert_structural(out["additionalProperties"], in_junctor=in_junctor)
    if isinstance(out.get("items"), Mapping):
        out["items"] = _convert_structural(
            out["items"], in_junctor=in_junctor, preserve=preserve and node.get("type") == "array"
        )
    for junctor in ("allOf", "anyOf", "oneOf"):
        if junctor in out:
            out[junctor] = [_convert_structural(child, in_junctor=True) for child in out[junctor]]
    if isinstance(out.get("not"), Mapping):
        out["not"] = _convert_structural(out["not"], in_junctor=True)
    if node.get("type") == "object" and "additionalProperties" not in node and not (in_junctor or preserve):
        out["additionalProperties"] = False
    return out


def _load_yaml_documents(path: Path) -> list[Any]:
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with path.open("rb") as stream:
        return [doc for doc in yaml.load_all(stream, Loader=loader) if doc]


@functools.cache
def _crd_version_schema(crd_path: Path, kind: str, version: str) -> Mapping[str, Any]:
    for doc in _load_yaml_documents(crd_path):
        spec = doc.get("spec") or {}
        if doc.get("kind") != "CustomResourceDefinition" or (spec.get("names") or {}).get("kind") != kind:
            continue
        for entry in spec.get("versions") or []:
            if entry.get("name") == version:
                return entry["schema"]["openAPIV3Schema"]
    raise SchemaNotFoundError(f"{crd_path} has no CustomResourceDefinition for kind={kind} version={version}")


@functools.cache
def _rbg_crd_schema(crd_path: Path, kind: str) -> dict[str, Any]:
    version = RBG_API_VERSION.rpartition("/")[2]
    schema = _convert_structural(_crd_version_schema(crd_path, kind, version))
    schema["$schema"] = _DRAFT_2020_12
    properties = schema.setdefault("properties", {})
    properties["apiVersion"] = {"const": RBG_API_VERSION}
    properties["kind"] = {"const": kind}
    properties["metadata"] = _LOOSE_METADATA
    schema["required"] = sorted({*schema.get("required", []), "apiVersion", "kind", "metadata"})
    return schema


@functools.cache
def _rbg_crd_validator(crd_path: Path, kind: str) -> jsonschema.protocols.Validator:
    return jsonschema.Draft202012Validator(_rbg_crd_schema(crd_path, kind))


def _list_map_key_errors(node: Mapping[str, Any], instance: Any, path: str) -> list[str]:
    """Duplicate keys in ``x-kubernetes-list-type: map`` lists, which the API server rejects
    ("Duplicate value") and JSON Schema cannot express."""
    errors: list[str] = []
    if isinstance(instance, list) and node.get("x-kubernetes-list-type") == "map":
        keys = node.get("x-kubernetes-list-map-keys") or []
        seen = Counter(tuple(item.get(k) for k in keys) for item in instance if isinstance(item, Mapping))
        errors += [f"{path}: duplicate {'/'.join(keys)} {list(key)}" for key, n in seen.items() if n > 1]
    if isinstance(instance, list) and isinstance(node.get("items"), Mapping):
        for i, item in enumerate(instance):
            errors += _list_map_key_errors(node["items"], item, f"{path}[{i}]")
    if isinstance(instance, Mapping):
        for name, child in (node.get("properties") or {}).items():
            if name in instance:
                errors += _list_map_key_errors(child, instance[name], f"{path}.{name}" if path else name)
    return errors


def validate_rbg_crd(obj: dict, crd_path: Path) -> list[str]:
    """Validate an object of the RBG API group (its ``kind``, version v1alpha2) against that kind's real
    CRD schema in ``crd_path``: the structural schema, and list-map key uniqueness.

    The CEL rules (``x-kubernetes-validations``) are not evaluated.
    """
    kind = str(obj.get("kind"))
    path = Path(crd_path).resolve()
    errors = _collect(_rbg_crd_validator(path, kind), obj)
    version = RBG_API_VERSION.rpartition("/")[2]
    return errors + _list_map_key_errors(_crd_version_schema(path, kind, version), obj, "")


# --------------------------------------------------------------------------------------------------
# RoleBasedGroup: strict role schema kept in this repo, and the role dependency graph


@functools.cache
def _role_strict_validator() -> jsonschema.protocols.Validator:
    text = resources.files("sglang_epd").joinpath("schemas").joinpath(ROLE_STRICT_SCHEMA).read_text()
    schema = json.loads(text)
    return jsonschema.Draft202012Validator(schema)


def _roles(obj: Mapping[str, Any]) -> list[Any] | None:
    spec = obj.get("spec")
    roles = spec.get("roles") if isinstance(spec, Mapping) else None
    return roles if isinstance(roles, list) else None


def validate_rbg_roles_strict(obj: dict) -> list[str]:
    """Validate every ``spec.roles[]`` against the closed role schema, then :func:`check_rbg_role_graph`."""
    roles = _roles(obj)
    if roles is None:
        return ["spec.roles: missing or not a list"]
    validator = _role_strict_validator()
    errors: list[str] = []
    for index, role in enumerate(roles):
        errors.extend(_collect(validator, role, prefix=f"spec.roles[{index}]"))
    errors.extend(check_rbg_role_graph(obj))
    return errors


def _find_cycles(graph: Mapping[str, list[str]]) -> list[list[str]]:
    """Cycles closed by DFS back edges (at least one per cyclic component), each rotated to start at
    its smallest name and reported once."""
    found: dict[tuple[str, ...], list[str]] = {}
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = "active"
        stack.append(node)
        for nxt in graph.get(node, []):
            if state.get(nxt) == "active":
                cycle = stack[stack.index(nxt) :]
                start = cycle.index(min(cycle))
                rotated = cycle[start:] + cycle[:start]
                found.setdefault(tuple(rotated), rotated)
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in graph:
        if node not in state:
            visit(node)
    return list(found.values())


def check_rbg_role_graph(obj: dict) -> list[str]:
    """Cross-check roles: names unique, dependencies name existing roles, no self-dependency, no cycle."""
    roles = _roles(obj)
    if roles is None:
        return ["spec.roles: missing or not a list"]
    named = [
        (i, r["name"])
        for i, r in enumerate(roles)
        if isinstance(r, Mapping) and isinstance(r.get("name"), str)
    ]
    errors = [
        f"spec.roles: role name {name!r} is used {count} times"
        for name, count in Counter(name for _, name in named).items()
        if count > 1
    ]
    known = {name for _, name in named}
    graph: dict[str, list[str]] = {name: [] for _, name in named}
    for index, name in named:
        dependencies = roles[index].get("dependencies") or []
        if not isinstance(dependencies, list):
            continue
        for dep in dependencies:
            if not isinstance(dep, str):
                continue  # reported by the strict schema
            where = f"spec.roles[{index}].dependencies"
            if dep == name:
                errors.append(f"{where}: role {name!r} depends on itself")
            elif dep not in known:
                errors.append(
                    f"{where}: role {name!r} depends on unknown role {dep!r} (roles: {sorted(known)})"
                )
            else:
                graph[name].append(dep)
    errors.extend(
        f"spec.roles: dependency cycle {' -> '.join([*cycle, cycle[0]])}" for cycle in _find_cycles(graph)
    )
    return errors

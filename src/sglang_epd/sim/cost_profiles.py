"""Cost profiles: the cost model's coefficients as named, versioned YAML files in cost-profiles/.

```yaml
description: what the numbers stand for
version: 2                      # bumped whenever a value changes; printed as NAME@VERSION
model: Qwen/Qwen2.5-VL-7B-Instruct
hardware: NVIDIA H20 96GB
sources:                        # where the numbers come from, by a short key the derivations cite
  pr12263: https://github.com/sgl-project/sglang/pull/12263 (...)
parameters:                     # every CostModel field, each with its value and how it was derived
  encode_ms_per_token: {value: 0.0457, derivation: "[pr12263] 492 ms for 4 images of ..."}
  vit_tp_speedup: {value: {2: 1.0, 4: 1.056}, derivation: "..."}
measured: {...}                 # optional: what a calibration run recorded (GPU, versions, fit errors)
```
The simulator reads one through `SGLANG_SIM_COST_PROFILE` (sim/cost.py, CostModel.from_env), the planner
through `--cost-profile`; both get the same CostModel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from ..named_files import names_in, read_yaml, resolve
from .cost import SPEEDUP_FIELDS, CostModel, checked_speedups

COST_PROFILES_DIR = Path(__file__).resolve().parents[3] / "cost-profiles"
CITATION = re.compile(r"\[([a-z][a-z0-9_-]*)\]")  # a derivation cites a source as [key]
REQUIRED_KEYS = ("description", "version", "model", "hardware", "sources", "parameters")
OPTIONAL_KEYS = ("measured",)


class CostProfileError(ValueError):
    """A profile that cannot be used; the message names the file, the key and what is expected."""


@dataclass(frozen=True)
class CostProfile:
    name: str
    version: int
    description: str
    model: str
    hardware: str
    sources: dict[str, str]
    cost: CostModel
    derivations: dict[str, str]
    measured: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


def cost_profile_names(search_dirs: Sequence[Path] = (COST_PROFILES_DIR,)) -> list[str]:
    return names_in(search_dirs)


def load_cost_profile(name_or_path: str, search_dirs: Sequence[Path] = (COST_PROFILES_DIR,)) -> CostProfile:
    """A profile by name (`<dir>/<name>.yaml`) or by file path."""
    path = resolve(name_or_path, search_dirs, "cost profile", CostProfileError)
    return parse_cost_profile(path.stem, read_yaml(path, "cost profile", CostProfileError), path)


def parse_cost_profile(name: str, document: object, path: Path | None = None) -> CostProfile:
    where = f"cost profile {name}" + (f" ({path})" if path else "")
    if not isinstance(document, Mapping):
        raise CostProfileError(f"{where}: expected a mapping, got {type(document).__name__}")
    missing = [k for k in REQUIRED_KEYS if k not in document]
    unknown = sorted(set(map(str, document)) - set(REQUIRED_KEYS) - set(OPTIONAL_KEYS))
    if missing or unknown:
        raise CostProfileError(
            f"{where}: {_missing_and_unknown(missing, unknown, 'key(s) ')}"
            f" (keys: {', '.join(REQUIRED_KEYS + OPTIONAL_KEYS)})"
        )
    version = document["version"]
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise CostProfileError(f"{where}: version must be a positive integer, got {version!r}")
    for key in ("description", "model", "hardware"):
        if not isinstance(document[key], str) or not document[key].strip():
            raise CostProfileError(f"{where}: {key} must be a non-empty string")
    sources = document["sources"]
    if (
        not isinstance(sources, Mapping)
        or not sources
        or not all(isinstance(v, str) for v in sources.values())
    ):
        raise CostProfileError(f"{where}: sources maps a short key to where the numbers come from")
    measured = document.get("measured") or {}
    if not isinstance(measured, Mapping):
        raise CostProfileError(f"{where}: measured must be a mapping")
    values, derivations = _parameters(where, document["parameters"], set(map(str, sources)))
    try:
        cost = CostModel(**values)
    except TypeError as exc:  # pragma: no cover - _parameters checks the names
        raise CostProfileError(f"{where}: {exc}") from None
    return CostProfile(
        name=name,
        version=version,
        description=document["description"].strip(),
        model=document["model"].strip(),
        hardware=document["hardware"].strip(),
        sources={str(k): v for k, v in sources.items()},
        cost=cost,
        derivations=derivations,
        measured=dict(measured),
        path=path,
    )


def _parameters(where: str, parameters: object, source_keys: set[str]) -> tuple[dict, dict[str, str]]:
    names = [f.name for f in fields(CostModel)]
    if not isinstance(parameters, Mapping):
        raise CostProfileError(
            f"{where}: parameters must map each cost-model coefficient to {{value, derivation}}"
        )
    missing = [n for n in names if n not in parameters]
    unknown = sorted(set(map(str, parameters)) - set(names))
    if missing or unknown:
        raise CostProfileError(
            f"{where}: parameters: {_missing_and_unknown(missing, unknown)}"
            f" (every one of: {', '.join(names)})"
        )
    values: dict[str, object] = {}
    derivations: dict[str, str] = {}
    for name in names:
        entry = parameters[name]
        if not isinstance(entry, Mapping) or set(entry) != {"value", "derivation"}:
            raise CostProfileError(f"{where}: parameters.{name} must be {{value: ..., derivation: ...}}")
        derivation = entry["derivation"]
        if not isinstance(derivation, str) or not derivation.strip():
            raise CostProfileError(
                f"{where}: parameters.{name}.derivation must say how the value was derived"
            )
        cited = set(CITATION.findall(derivation)) - source_keys
        if cited:
            raise CostProfileError(
                f"{where}: parameters.{name}.derivation cites {', '.join(sorted(cited))}, which `sources` "
                f"does not list (sources: {', '.join(sorted(source_keys))})"
            )
        derivations[name] = " ".join(derivation.split())
        values[name] = _value(where, name, entry["value"])
    return values, derivations


def _value(where: str, name: str, value: object) -> object:
    if name in SPEEDUP_FIELDS:
        if not isinstance(value, Mapping) or not all(
            isinstance(k, int) and isinstance(v, int | float) and not isinstance(v, bool)
            for k, v in value.items()
        ):
            raise CostProfileError(
                f"{where}: parameters.{name}.value maps TP sizes to speed-ups, e.g. {{2: 1.8}}"
            )
        try:
            return checked_speedups(value, f"parameters.{name}")
        except ValueError as exc:
            raise CostProfileError(f"{where}: {exc}") from None
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise CostProfileError(
            f"{where}: parameters.{name}.value must be a non-negative number, got {value!r}"
        )
    if name.endswith("_pixels"):
        if not isinstance(value, int):
            raise CostProfileError(f"{where}: parameters.{name}.value must be an integer")
        return value
    if name == "chars_per_token" and value <= 0:
        raise CostProfileError(f"{where}: parameters.chars_per_token.value must be positive")
    return float(value)


def _missing_and_unknown(missing: Sequence[str], unknown: Sequence[str], noun: str = "") -> str:
    parts = [f"missing {noun}{', '.join(missing)}"] if missing else []
    if unknown:
        parts.append(f"unknown {noun}{', '.join(unknown)}")
    return "; ".join(parts)

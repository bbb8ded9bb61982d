"""Files users name on the command line either by a short name (`kep-8img`, looked up in directories) or
by a path: load profiles (load/profiles.py) and cost profiles (sim/cost_profiles.py)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import yaml

SUFFIX = ".yaml"


def names_in(search_dirs: Sequence[Path]) -> list[str]:
    return sorted({p.stem for d in search_dirs if d.is_dir() for p in d.glob(f"*{SUFFIX}")})


def resolve(name_or_path: str, search_dirs: Sequence[Path], kind: str, error: type[ValueError]) -> Path:
    """`<dir>/<name>.yaml` in the first of `search_dirs` that has it, or the file itself when a path is given
    (a .yaml/.yml suffix or a slash); `error` names the `kind` of file and what is known."""
    candidate = Path(name_or_path)
    if candidate.suffix in (".yaml", ".yml") or "/" in name_or_path:
        if not candidate.is_file():
            raise error(f"{kind} file {name_or_path} does not exist")
        return candidate
    for directory in search_dirs:
        if (directory / f"{name_or_path}{SUFFIX}").is_file():
            return directory / f"{name_or_path}{SUFFIX}"
    known = ", ".join(names_in(search_dirs)) or "none"
    where = ", ".join(str(d) for d in search_dirs)
    raise error(f"no {kind} named {name_or_path!r} in {where}; known {kind}s: {known}")


def read_yaml(path: Path, kind: str, error: type[ValueError]) -> object:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise error(f"{kind} {path} is not valid YAML: {exc}") from exc

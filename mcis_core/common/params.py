"""Typed, validated sections of params.yaml.

params.yaml holds every value the pipeline uses. Each section's schema is a frozen
dataclass in its stage's package (`mcis_core/<stage>/params.py`) that holds types,
allowed ranges and a one-line doc per field, and no default values, so the schema and
params.yaml cannot disagree. `load_section` reads one section and rejects unknown,
missing and mistyped keys and out-of-range values with a message naming the key, the
value and what is allowed; relations between fields come from a schema's `relations()`
and are checked by the same loader. `check_params_file` validates every section at once,
unknown sections included (the `check_params` stage).
"""

from __future__ import annotations

import dataclasses
import difflib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import yaml

from mcis_core.common.errors import ConfigError

PARAMS_FILE = "params.yaml"


@dataclass(frozen=True)
class Spec:
    """A field's one-line doc and the range its value (or each of its items) must lie in."""

    doc: str
    ge: float | None = None
    gt: float | None = None
    le: float | None = None
    lt: float | None = None
    min_items: int | None = None
    max_items: int | None = None

    def value_problem(self, value: Any) -> str | None:
        """What is wrong with a number under this spec, or None."""
        if isinstance(value, bool) or not isinstance(value, int | float):
            return None
        bounds = (
            (self.ge, value >= (self.ge or 0), ">="),
            (self.gt, value > (self.gt or 0), ">"),
            (self.le, value <= (self.le or 0), "<="),
            (self.lt, value < (self.lt or 0), "<"),
        )
        for bound, holds, sign in bounds:
            if bound is not None and not holds:
                return f"must be {sign} {bound:g}"
        return None

    def length_problem(self, items: tuple) -> str | None:
        """What is wrong with a list's length under this spec, or None."""
        if self.min_items is not None and len(items) < self.min_items:
            return f"must have at least {self.min_items} item(s)"
        if self.max_items is not None and len(items) > self.max_items:
            return f"must have at most {self.max_items} item(s)"
        return None


def param(doc: str, **bounds: float) -> Any:
    """A schema field: its doc, and bounds ge/gt/le/lt on its value or items, min/max_items."""
    return dataclasses.field(metadata={"spec": Spec(doc, **bounds)})


def spec_of(field: dataclasses.Field) -> Spec | None:
    """The Spec a schema field was declared with (None for a field declared without `param`)."""
    return field.metadata.get("spec")


@dataclass(frozen=True)
class RemoteFile:
    """A file published on the web, verified by md5 after download."""

    filename: str = param("name of the file in the download cache")
    md5: str | None = param("expected md5 hex digest; null only for archives you made yourself")
    urls: tuple[str, ...] = param("primary URL first, then mirrors (http(s)://, file:// or a path)")


@dataclass(frozen=True)
class BaseParams:
    """Settings shared by every stage."""

    seed: int = param("every random choice of the pipeline derives from this", ge=0)
    data_dir: str = param("root of all stage outputs (DVC-tracked, git-ignored)")
    download_cache: str = param("resumable archive cache, not a DVC output")
    cpu_kernels: Literal["portable", "native"] = param(
        "portable: the same bits on any x86-64 CPU (AVX2, fixed threads); native: fastest"
    )
    workers: int | Literal["auto"] = param(
        "processes for the per-image CPU work of download, saliency and pseudo_gt (results do "
        "not depend on it); auto: one per core",
        ge=1,
    )


def read_params_file(path: str | Path = PARAMS_FILE) -> dict:
    """The raw mapping of a params file."""
    path = Path(path)
    try:
        raw = yaml.safe_load(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: not valid YAML: {err}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: expected a mapping of sections")
    return raw


def load_section(name: str, schema: type, path: str | Path = PARAMS_FILE) -> Any:
    """Section `name` of the params file, validated and built as `schema`."""
    raw = read_params_file(path)
    if name not in raw:
        raise ConfigError(f"{path}: section `{name}` is missing")
    return from_dict(schema, raw[name], where=name)


def check_params_file(sections: Mapping[str, type], path: str | Path = PARAMS_FILE) -> dict:
    """Every section of the params file validated: {name: params}; unknown sections refused."""
    raw = read_params_file(path)
    _refuse_unknown(raw, sections, str(path))
    return {name: load_section(name, schema, path) for name, schema in sections.items()}


def from_dict(schema: type, raw: Any, where: str) -> Any:
    """Build dataclass `schema` from a mapping, checking keys, types and ranges recursively."""
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping, got {raw!r}")
    fields = dataclasses.fields(schema)
    _refuse_unknown(raw, [f.name for f in fields], where)
    hints = typing.get_type_hints(schema)
    values = {}
    for f in fields:
        key = f"{where}.{f.name}"
        if f.name not in raw:
            raise ConfigError(f"{key}: required key is missing ({_doc(f)})")
        value = _coerce(hints[f.name], raw[f.name], key)
        problem = _range_problem(value, spec_of(f))
        if problem:
            raise ConfigError(f"{key}: {raw[f.name]!r} is not allowed: {problem}")
        values[f.name] = value
    built = schema(**values)
    for broken, message in getattr(built, "relations", list)():
        if broken:
            raise ConfigError(f"{where}.{message}")
    return built


def _refuse_unknown(raw: dict, allowed: Iterable[str], where: str) -> None:
    """Raise ConfigError naming the first unknown key, with the closest allowed one."""
    allowed = list(allowed)
    for key in sorted(set(raw) - set(allowed)):
        close = difflib.get_close_matches(str(key), allowed, n=1)
        hint = f" (did you mean `{close[0]}`?)" if close else ""
        raise ConfigError(f"{where}: unknown key `{key}`{hint}; allowed: {', '.join(allowed)}")


def _doc(field: dataclasses.Field) -> str:
    spec = spec_of(field)
    return spec.doc if spec else field.name


def _range_problem(value: Any, spec: Spec | None) -> str | None:
    """What is wrong with a value (a list: its length, then each item) under its spec."""
    if spec is None or value is None:
        return None
    items = value if isinstance(value, tuple) else (value,)
    problem = spec.length_problem(value) if isinstance(value, tuple) else None
    for item in items:
        problem = problem or spec.value_problem(item)
    return f"{problem} ({spec.doc})" if problem else None


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for option in (a for a in args if a is not type(None)):
            try:
                return _coerce(option, value, key)
            except ConfigError as err:
                errors.append(str(err))
        raise ConfigError(errors[0] if len(errors) == 1 else f"{key}: {value!r} fits no option")
    if origin is Literal:
        if value not in args:
            raise ConfigError(f"{key}: {value!r} is not one of {list(args)}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{key}: expected a list, got {value!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, f"{key}[{i}]") for i, v in enumerate(value))
        if len(value) != len(args):
            raise ConfigError(f"{key}: expected {len(args)} values, got {len(value)}")
        return tuple(
            _coerce(a, v, f"{key}[{i}]") for i, (a, v) in enumerate(zip(args, value, strict=True))
        )
    if dataclasses.is_dataclass(tp):
        return from_dict(tp, value, key)
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{key}: expected an integer, got {value!r}")
        return value
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        return float(value)
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    raise TypeError(f"{key}: unsupported parameter type {tp}")

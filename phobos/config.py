"""Frozen-dataclass configuration: build from mappings, YAML files and `key=value` overrides.

Every configuration in the project is a frozen dataclass whose fields carry a docstring
(attribute docstrings, the style of cleanrl's `Args`). This module turns plain data into
those dataclasses strictly: an unknown key or a value of the wrong type raises
:class:`ConfigError` naming the key and the valid choices, because a silently ignored
misspelt key trains the wrong thing for hours.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import yaml

T = TypeVar("T")


class ConfigError(ValueError):
    """A configuration value or key that cannot be accepted."""


class _BadTimestamp:
    """An unquoted YAML date-time that is no date (``2013-02-30``): refused where it is used."""

    def __init__(self, text: str, reason: str) -> None:
        self.text = text
        self.reason = reason


class _Loader(yaml.SafeLoader):
    """YAML's safe loader, except that an unquoted date-time stays the text it was written as.

    The config fields that hold times are ISO strings; YAML would turn ``2013-02-01T00:00:00``
    into a ``datetime``. An impossible date becomes a :class:`_BadTimestamp`, so that the error
    can name the field it was given for.
    """


def _construct_timestamp(loader: _Loader, node: yaml.ScalarNode) -> str | _BadTimestamp:
    text = loader.construct_scalar(node)
    try:
        yaml.SafeLoader.construct_yaml_timestamp(loader, node)
    except ValueError as error:
        return _BadTimestamp(text, str(error))
    return text


_Loader.add_constructor("tag:yaml.org,2002:timestamp", _construct_timestamp)


def _parse_yaml(text: str, where: str) -> Any:
    """``text`` as YAML (date-times kept as text); a syntax error is one line naming ``where``."""
    try:
        return yaml.load(text, Loader=_Loader)  # noqa: S506 - a SafeLoader subclass
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        problem = getattr(error, "problem", None) or str(error).splitlines()[0]
        at = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ConfigError(f"{where}: not valid YAML: {problem}{at}") from None


def from_mapping(cls: type[T], data: Mapping[str, Any], *, where: str = "") -> T:
    """Build dataclass ``cls`` from ``data``, recursing into nested dataclass fields.

    Raises:
        ConfigError: for an unknown key (naming the valid ones) or a value of the wrong type.

    """
    if not isinstance(data, Mapping):
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}
    hints = typing.get_type_hints(cls)
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(
            f"unknown key {_path(where, unknown[0])!r} for {cls.__name__}; "
            f"valid keys: {', '.join(sorted(fields))}"
        )
    kwargs = {name: _coerce(hints[name], value, _path(where, name)) for name, value in data.items()}
    return cls(**kwargs)


def to_mapping(config: Any) -> dict[str, Any]:
    """Plain-data form of a config dataclass (tuples become lists), for YAML and logs."""

    def plain(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {f.name: plain(getattr(value, f.name)) for f in dataclasses.fields(value)}
        if isinstance(value, tuple | list):
            return [plain(v) for v in value]
        return value

    return plain(config)


def dump(config: Any, header: Sequence[str] = ()) -> str:
    """``config`` as YAML that :func:`load` reads back to an equal config (``--print-config``).

    Args:
        config: A config dataclass.
        header: Lines written first as YAML comments (what else the command would use);
            loading ignores them.

    """
    comments = "".join(f"# {line}\n" for line in header)
    body = yaml.safe_dump(to_mapping(config), sort_keys=False, default_flow_style=None, width=96)
    return comments + body


def load(cls: type[T], path: str | Path | None = None, overrides: Sequence[str] = ()) -> T:
    """Load ``cls`` from an optional YAML file, then apply ``key.sub=value`` overrides."""
    data: dict[str, Any] = {}
    if path is not None:
        loaded = _parse_yaml(Path(path).read_text(), str(path)) or {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"{path}: the top level must be a mapping of keys to values")
        data = loaded
    for item in overrides:
        key, sep, raw = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r} is not of the form key=value")
        node = data
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
            if not isinstance(node, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a nested section")
        node[leaf] = _parse_yaml(raw, f"override {item!r}")
    return from_mapping(cls, data)


def replace(config: T, **changes: Any) -> T:
    """Checked ``dataclasses.replace``: unknown keys and wrong types raise ConfigError."""
    merged = {f.name: getattr(config, f.name) for f in dataclasses.fields(config) if f.init}
    unknown = sorted(set(changes) - set(merged))
    if unknown:
        raise ConfigError(
            f"unknown key {unknown[0]!r} for {type(config).__name__}; "
            f"valid keys: {', '.join(sorted(merged))}"
        )
    hints = typing.get_type_hints(type(config))
    checked = {k: _coerce(hints[k], v, k) for k, v in changes.items()}
    return dataclasses.replace(config, **checked)


def _path(where: str, name: str) -> str:
    return f"{where}.{name}" if where else name


def _coerce(hint: Any, value: Any, where: str) -> Any:
    if isinstance(value, _BadTimestamp):
        raise ConfigError(f"{where}: {value.text!r} is not a valid date-time: {value.reason}")
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value) and isinstance(value, hint):
            return value
        return from_mapping(hint, value, where=where)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _coerce(arg, value, where)
            except ConfigError as error:
                errors.append(str(error))
        raise ConfigError("; ".join(errors))
    if origin is typing.Literal:
        if value not in args:
            raise ConfigError(f"{where}: {value!r} is not one of {', '.join(map(repr, args))}")
        return value
    if origin is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__}")
        item = args[0] if args else Any
        return tuple(_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value))
    if origin is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
        key_hint, value_hint = args or (Any, Any)
        return {
            _coerce(key_hint, k, where): _coerce(value_hint, v, _path(where, str(k)))
            for k, v in value.items()
        }
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if hint in (bool, str):
        if not isinstance(value, hint):
            raise ConfigError(f"{where}: expected {hint.__name__}, got {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported field type {hint!r}")

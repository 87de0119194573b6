"""JSON round trip for the frozen config dataclasses of :mod:`hypervldd.eval` and
:mod:`hypervldd.distill`.

Configs are plain dataclasses. :func:`config_from_dict` rebuilds one from a dict
(nested dataclasses and tuples included) and rejects unknown keys with an error
that names them, so a typo in a config file never silently falls back to a
default.
"""

from __future__ import annotations

import dataclasses
import json
import types
import typing
from typing import Any, TypeVar

__all__ = ["config_to_dict", "config_from_dict", "config_to_json", "config_from_json"]

T = TypeVar("T")


def config_to_dict(cfg: Any) -> dict[str, Any]:
    """A JSON-ready dict of a config dataclass (tuples become lists)."""
    if not dataclasses.is_dataclass(cfg) or isinstance(cfg, type):
        raise TypeError(f"cfg must be a dataclass instance, got {type(cfg).__name__}")
    out: dict[str, Any] = {}
    for f in dataclasses.fields(cfg):
        out[f.name] = _plain(getattr(cfg, f.name))
    return out


def _plain(v: Any) -> Any:
    if dataclasses.is_dataclass(v) and not isinstance(v, type):
        return config_to_dict(v)
    if isinstance(v, (tuple, list)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


def config_to_json(cfg: Any) -> str:
    """Canonical JSON (sorted keys) of a config dataclass."""
    return json.dumps(config_to_dict(cfg), sort_keys=True, indent=2)


def config_from_json(cls: type[T], text: str) -> T:
    """Inverse of :func:`config_to_json`."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"{cls.__name__}: text is not valid JSON ({err})") from err
    return config_from_dict(cls, data)


def config_from_dict(cls: type[T], data: Any, *, where: str | None = None) -> T:
    """Build ``cls`` from ``data``; unknown keys raise a ``ValueError`` naming them.

    Keys absent from ``data`` keep their defaults; a nested config given as a dict
    is applied over that field's default, so ``{"engine": {"iterations": 100}}`` changes
    the iterations of the class's own engine default and nothing else.
    """
    where = where or cls.__name__
    if not isinstance(data, dict):
        raise TypeError(f"{where} must be a JSON object (dict), got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {unknown}; allowed keys are {sorted(fields)}")
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for name, value in data.items():
        base = _default(fields[name])
        if isinstance(value, dict) and dataclasses.is_dataclass(base):
            # A partial nested config overrides the field's own default (e.g. a method's
            # engine with its iterations and optimiser), not the nested class's defaults.
            value = _merged(config_to_dict(base), value)
        kwargs[name] = _coerce(hints[name], value, f"{where}.{name}")
    return cls(**kwargs)


def _default(f: dataclasses.Field) -> Any:
    """The default value of a dataclass field (``None`` when it has none)."""
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None


def _merged(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """``base`` with ``over`` applied, nested dicts merged key by key."""
    out = dict(base)
    for k, v in over.items():
        out[k] = _merged(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    if dataclasses.is_dataclass(tp):
        return config_from_dict(tp, value, where=where)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        if len(args) == 1:
            return _coerce(args[0], value, where)
        return value
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise TypeError(f"{where} must be a list, got {type(value).__name__}")
        args = typing.get_args(tp)
        inner = args[0] if args else Any
        return tuple(_coerce(inner, v, where) for v in value)
    if tp is float and isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value

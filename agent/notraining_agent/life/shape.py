"""Whether decoded JSON has the shape of a dataclass, read from its type hints.

The state file is trusted only after this check: valid JSON with a string where a
number belongs would otherwise crash the agent on every restart, later and elsewhere.
"""

from __future__ import annotations

import dataclasses
import enum
import types
import typing
from functools import cache
from typing import Any, Literal, Union, get_args, get_origin


@cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def shape_problem(value: object, hint: Any, where: str = "") -> str | None:
    """Where ``value`` (decoded JSON) differs from ``hint``, as ``job.spec.arts_path``, or None.

    Dataclasses are JSON objects with exactly their fields (those without a default
    present); tuples and lists are JSON lists; enums and Literals are their values.
    """
    shown = where or "the document"
    if dataclasses.is_dataclass(hint) and isinstance(hint, type):
        return _dataclass_problem(value, hint, where)
    origin, args = get_origin(hint), get_args(hint)
    if hint is Any:
        return None
    if origin in (Union, types.UnionType):
        problems = [shape_problem(value, arg, where) for arg in args]
        return None if None in problems else f"{shown} has the wrong type"
    if origin is Literal:
        return None if value in args else f"{shown} is not one of {list(args)}"
    if origin in (list, tuple, dict):
        return _container_problem(value, origin, args, where)
    return None if _is_simple(value, hint) else f"{shown} has the wrong type"


def _container_problem(value: object, origin: Any, args: tuple[Any, ...], where: str) -> str | None:
    shown = where or "the document"
    if origin is dict:
        ok = isinstance(value, dict) and all(isinstance(key, str) for key in value)
        return None if ok else f"{shown} is not an object"
    if not isinstance(value, list):
        return f"{shown} is not a list"
    for index, item in enumerate(value):
        if (problem := shape_problem(item, args[0], f"{where}[{index}]")) is not None:
            return problem
    return None


def _is_simple(value: object, hint: Any) -> bool:
    if hint is type(None) or hint is None:
        return value is None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return value in {member.value for member in hint}
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint in (str, bool):
        return isinstance(value, hint)
    return False


def _dataclass_problem(value: object, cls: type, where: str) -> str | None:
    shown = where or "the document"
    if not isinstance(value, dict):
        return f"{shown} is not an object"
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(value) - set(fields))
    if unknown:
        return f"{shown} has unknown keys {unknown[:5]}"
    hints = _hints(cls)
    for name, spec in fields.items():
        path = f"{where}.{name}" if where else name
        if name not in value:
            required = spec.default is dataclasses.MISSING
            if required and spec.default_factory is dataclasses.MISSING:
                return f"{path} is missing"
            continue
        if (problem := shape_problem(value[name], hints[name], path)) is not None:
            return problem
    return None

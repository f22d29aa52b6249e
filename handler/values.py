"""`ValueType`: the class syntax of `typing.NamedTuple`, without its cost at import.

The upload path defines a dozen small value types, and Function Compute pays for building them
on every cold instance. `typing.NamedTuple` imports `typing` and compiles each (postponed, so
textual) annotation into a ForwardRef: together about half of the upload entry's import. This
makes the same `collections.namedtuple` from the same class body and keeps the annotations as
text. Type checkers see `typing.NamedTuple` itself.

Modules on the upload path import `typing` only for type checkers, behind a local
`TYPE_CHECKING = False`, which type checkers read as true.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import NamedTuple as ValueType
else:
    # What a class body may not set: namedtuple makes these itself, or they describe the discarded body.
    _NOT_COPIED = frozenset({"__module__", "__qualname__", "__dict__", "__weakref__", "__slots__"})

    class _ValueTypeMeta(type):
        def __new__(mcls, name, bases, namespace):
            if not bases:  # ValueType itself
                return super().__new__(mcls, name, bases, namespace)
            fields = tuple(namespace.get("__annotations__", {}))
            with_default = [field for field in fields if field in namespace]
            if with_default != list(fields[len(fields) - len(with_default):]):
                raise TypeError(f"{name}: a field without a default follows one with a default")
            value_type = namedtuple(name, fields, defaults=[namespace[f] for f in with_default],
                                    module=namespace["__module__"])
            value_type.__qualname__ = namespace["__qualname__"]
            for key, value in namespace.items():
                if key not in _NOT_COPIED and key not in fields:
                    setattr(value_type, key, value)
            return value_type

    class ValueType(metaclass=_ValueTypeMeta):
        """Base of a value type: annotated fields (defaults last), a docstring, methods and properties."""

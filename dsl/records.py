"""Dataclasses that are cheaper to define: `record` and `frozen_record`.

`@dataclass` generates each method of each class as source text and compiles it (one `exec` per
method in Python 3.11): ~0.1 ms a method, most of the import time of the modules with many small
dataclasses (issue 16; import self time: dsl.ast's 48 classes 14.6 -> 9.3 ms, compiler.ir's 23
5.6 -> 3.3 ms). Here `__eq__`,
`__hash__` and `__repr__` are written once, in the base classes, with the same results as the
generated ones (the compared fields as a tuple, equal only between instances of the same class;
`Name(field=value, ...)` as repr); the decorators generate only `__init__` (and, frozen, the
`__setattr__`/`__delattr__` that raise `dataclasses.FrozenInstanceError`). `dataclasses.fields`,
`replace` and `asdict` work as with any dataclass. A class must derive from the base that matches
its decorator: `@record class A(Record)`, `@frozen_record class B(FrozenRecord)`.
"""
from __future__ import annotations

from dataclasses import dataclass, fields


class Record:
    """Equality and repr by fields; unhashable, like a dataclass with eq=True and frozen=False."""

    __slots__ = ()
    __hash__ = None   # type: ignore[assignment]

    def _values(self) -> tuple:
        return tuple(getattr(self, f.name) for f in fields(self) if f.compare)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values() == other._values()
        return NotImplemented

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={getattr(self, f.name)!r}" for f in fields(self) if f.repr)
        return f"{type(self).__qualname__}({shown})"


class FrozenRecord(Record):
    """A `Record` whose fields cannot be set after __init__, hashed by its fields."""

    __slots__ = ()

    def __hash__(self) -> int:
        return hash(self._values())


record = dataclass(eq=False, repr=False)                 # for subclasses of Record
frozen_record = dataclass(frozen=True, eq=False, repr=False)   # for subclasses of FrozenRecord

"""A recording stand-in for the ``tensorrt`` module, backed by the REAL Python bindings.

Every attribute our code touches (module names, classes, methods, properties, enum members) is
looked up on the real bindings class; a name that does not exist there is recorded as missing and
raises AttributeError, exactly as it would on a device. Calls do not reach the native library (the
libraries are stubs here): a method returns a value of the type its pybind11 signature declares
(``-> bool`` gives True, ``-> tensorrt.IHostMemory`` gives another recording instance), so our code
path runs to the end and every name on it is checked. Keyword arguments are checked against the
signature and property assignments against the property's setter.

This checks *names and signatures*, not behaviour: nothing here builds or runs an engine.
"""

from __future__ import annotations

import inspect
import re
from dataclasses import dataclass, field
from typing import Any

_RETURNS = re.compile(r"\)\s*->\s*([\w.\[\], ]+)")


@dataclass
class Record:
    used: set[str] = field(default_factory=set)
    missing: list[str] = field(default_factory=list)
    bad_calls: list[str] = field(default_factory=list)

    def lookup(self, owner: Any, name: str, label: str) -> Any:
        try:
            value = inspect.getattr_static(owner, name)
        except AttributeError:
            self.missing.append(f"{label}.{name}")
            raise AttributeError(f"{label} has no attribute {name!r} in this TensorRT") from None
        self.used.add(f"{label}.{name}")
        return value


def _signatures(doc: str | None, name: str) -> list[str]:
    # pybind11 lists overloads as "1. name(self: ..., arg: type) -> type" under a "(*args, **kwargs)" header.
    return [line.strip() for line in (doc or "").splitlines()
            if re.match(rf"\s*(\d+\.\s*)?{name}\(", line) and "(*args, **kwargs)" not in line]


def _return_type(signature: str) -> str:
    found = _RETURNS.search(signature)
    return found.group(1).strip() if found else "None"


class ModuleProxy:
    def __init__(self, module: Any, record: Record) -> None:
        object.__setattr__(self, "_module", module)
        object.__setattr__(self, "_record", record)

    def __getattr__(self, name: str) -> Any:
        value = self._record.lookup(self._module, name, "tensorrt")
        value = getattr(self._module, name)
        if isinstance(value, type):
            return ClassProxy(value, self._record)
        return value  # plain Python helpers (nptype), enum members, __version__: the real thing


class ClassProxy:
    """A bindings class: attribute access gives its enum members / nested types; calling it
    constructs a recording instance."""

    def __init__(self, cls: type, record: Record) -> None:
        self._cls, self._record = cls, record

    def __getattr__(self, name: str) -> Any:
        self._record.lookup(self._cls, name, self._cls.__name__)
        value = getattr(self._cls, name)
        return ClassProxy(value, self._record) if isinstance(value, type) else value

    def __call__(self, *args: Any, **kwargs: Any) -> InstanceProxy:
        _check_call(self._record, self._cls, "__init__", self._cls.__init__.__doc__, kwargs)
        return InstanceProxy(self._cls, self._record)


class InstanceProxy:
    def __init__(self, cls: type, record: Record) -> None:
        object.__setattr__(self, "_cls", cls)
        object.__setattr__(self, "_record", record)

    def __getattr__(self, name: str) -> Any:
        attr = self._record.lookup(self._cls, name, self._cls.__name__)
        if isinstance(attr, property):
            return _value_of(_return_type(attr.fget.__doc__ or ""), self._record)
        return MethodProxy(self._cls, name, getattr(self._cls, name).__doc__, self._record)

    def __setattr__(self, name: str, value: Any) -> None:
        attr = self._record.lookup(self._cls, name, self._cls.__name__)
        if not isinstance(attr, property) or attr.fset is None:
            self._record.bad_calls.append(f"{self._cls.__name__}.{name} is not a settable property")
            raise AttributeError(f"{self._cls.__name__}.{name} cannot be set")

    def __bytes__(self) -> bytes:  # IHostMemory supports the buffer protocol; the stub holds nothing
        return b""


class MethodProxy:
    def __init__(self, cls: type, name: str, doc: str | None, record: Record) -> None:
        self._cls, self._name, self._doc, self._record = cls, name, doc, record

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        signatures = _check_call(self._record, self._cls, self._name, self._doc, kwargs)
        return _value_of(_return_type(signatures[0]) if signatures else "None", self._record)


def _check_call(record: Record, cls: type, name: str, doc: str | None, kwargs: dict[str, Any]) -> list[str]:
    signatures = _signatures(doc, name)
    for keyword in kwargs:
        if signatures and not any(f"{keyword}:" in s for s in signatures):
            record.bad_calls.append(f"{cls.__name__}.{name}() has no keyword {keyword!r}")
    return signatures


def _value_of(type_name: str, record: Record) -> Any:
    """A stand-in return value of the declared type."""
    simple = {"bool": True, "int": 0, "float": 0.0, "str": "", "None": None, "bytes": b""}
    if type_name in simple:
        return simple[type_name]
    cls_name = type_name.rsplit(".", 1)[-1]
    import tensorrt_bindings as real  # the module this recorder wraps (a subprocess per version)

    cls = getattr(real, cls_name, None)
    if not isinstance(cls, type):
        return None
    members = getattr(cls, "__members__", None)
    if members:  # an enum: FLOAT for DataType (our tensors), else the first member
        return members.get("FLOAT", next(iter(members.values())))
    return InstanceProxy(cls, record)

"""Option types of the module system: what a value may be, how definitions of one option merge.

Each type checks a definition's value (`check`, returning the normalised value or raising
`TypeMismatch` with what was expected) and says how several definitions combine:

* scalars (`Bool`, `Int`, `Str`, `Enum`, `Path`, `Package`): one value; two different values
  at the same priority are a conflict (the evaluator names both modules and values);
* `ListOf`: the definitions of the highest priority concatenate in module order (`unique`
  drops later duplicates);
* `AttrsOf` and `Submodule`: merged key by key, deeply; priorities and conditions are pushed
  down to the leaves.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Dict, Optional, Sequence, Tuple


class TypeMismatch(Exception):
    """A value that does not fit its option's type; the message says what was expected."""


def describe(value: Any) -> str:
    if isinstance(value, bool):
        return f"bool {value!r}"
    if isinstance(value, int):
        return f"int {value}"
    if isinstance(value, str):
        return f"string {value!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an attribute set"
    if value is None:
        return "None"
    return type(value).__name__


class OptionType:
    name = "?"
    kind = "scalar"  # scalar | list | attrs | submodule

    def check(self, value: Any, where: str) -> Any:
        raise NotImplementedError

    def relativize(self, value: Any, module_dir: str) -> Any:
        """Resolve references relative to the defining module's directory (checked values only)."""
        return value

    def __str__(self) -> str:
        return self.name


class Bool(OptionType):
    name = "bool"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, bool):
            raise TypeMismatch(f"expected a bool (True/False), got {describe(value)}")
        return value


@dataclass(frozen=True)
class Int(OptionType):
    minimum: Optional[int] = None
    maximum: Optional[int] = None

    @property
    def name(self) -> str:  # type: ignore[override]
        if self.minimum is None and self.maximum is None:
            return "int"
        return f"int ({'' if self.minimum is None else self.minimum}..{'' if self.maximum is None else self.maximum})"

    def check(self, value: Any, where: str) -> Any:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeMismatch(f"expected an int, got {describe(value)}")
        if self.minimum is not None and value < self.minimum or self.maximum is not None and value > self.maximum:
            raise TypeMismatch(f"expected {self.name}, got {value}")
        return value


class Str(OptionType):
    name = "str"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            raise TypeMismatch(f"expected a string, got {describe(value)}")
        return value


@dataclass(frozen=True)
class Enum(OptionType):
    values: Tuple[str, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return "one of " + " | ".join(self.values)

    def check(self, value: Any, where: str) -> Any:
        if value not in self.values or not isinstance(value, str):
            raise TypeMismatch(f"expected one of {', '.join(map(repr, self.values))}, got {describe(value)}")
        return value


class Path(OptionType):
    """An absolute path inside the image, normalised (`//etc/./x` -> `/etc/x`); `..` is refused."""

    name = "path"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str):
            raise TypeMismatch(f"expected an absolute image path, got {describe(value)}")
        return normalize_image_path(value)


def normalize_image_path(value: str) -> str:
    if not value.startswith("/"):
        raise TypeMismatch(f"path {value!r} is not absolute (image paths start with /)")
    if "\0" in value:
        raise TypeMismatch(f"path {value!r} contains a NUL byte")
    parts = []
    for part in value.split("/"):
        if part in ("", "."):
            continue
        if part == "..":
            raise TypeMismatch(f"path {value!r} leaves the image root ('..')")
        parts.append(part)
    if not parts:
        raise TypeMismatch(f"path {value!r} is the image root itself")
    return "/" + "/".join(parts)


class Package(OptionType):
    """A package target: a Pants address (`//dir:name`, or `:name` relative to the module's
    directory). The evaluator only checks the form; the build checks it names a package."""

    name = "package"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, str) or not value or any(c.isspace() for c in value):
            raise TypeMismatch(f"expected a package target address like '//packages/userspace:ion', got {describe(value)}")
        if not (value.startswith("//") or value.startswith(":")) and "/" not in value and ":" not in value:
            raise TypeMismatch(
                f"expected a package target address like '//packages/userspace:{value}', got {value!r}"
            )
        return value

    def relativize(self, value: Any, module_dir: str) -> Any:
        return f"//{module_dir}{value}" if value.startswith(":") else value


@dataclass(frozen=True)
class NullOr(OptionType):
    inner: OptionType = field(default_factory=Str)

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"null or {self.inner}"

    def check(self, value: Any, where: str) -> Any:
        return None if value is None else self.inner.check(value, where)

    def relativize(self, value: Any, module_dir: str) -> Any:
        return None if value is None else self.inner.relativize(value, module_dir)


@dataclass(frozen=True)
class Either(OptionType):
    """The first of `choices` that accepts the value (all must be scalars or lists)."""

    choices: Tuple[OptionType, ...] = ()

    @property
    def name(self) -> str:  # type: ignore[override]
        return " or ".join(str(c) for c in self.choices)

    def check(self, value: Any, where: str) -> Any:
        problems = []
        for c in self.choices:
            try:
                return c.check(value, where)
            except TypeMismatch as e:
                problems.append(str(e))
        raise TypeMismatch(f"expected {self.name}, got {describe(value)}")


@dataclass(frozen=True)
class ListOf(OptionType):
    element: OptionType = field(default_factory=Str)
    unique: bool = False
    kind = "list"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"list of {self.element}" + (" (duplicates dropped)" if self.unique else "")

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, (list, tuple)):
            raise TypeMismatch(f"expected a list of {self.element}, got {describe(value)}")
        out = []
        for i, v in enumerate(value):
            try:
                out.append(self.element.check(v, f"{where}[{i}]"))
            except TypeMismatch as e:
                raise TypeMismatch(f"element {i}: {e}") from None
        return out

    def relativize(self, value: Any, module_dir: str) -> Any:
        return [self.element.relativize(v, module_dir) for v in value]


@dataclass(frozen=True)
class AttrsOf(OptionType):
    element: OptionType = field(default_factory=Str)
    kind = "attrs"

    @property
    def name(self) -> str:  # type: ignore[override]
        return f"attribute set of {self.element}"

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise TypeMismatch(f"expected an attribute set of {self.element}, got {describe(value)}")
        return value


@dataclass
class Submodule(OptionType):
    """A set of named sub-options (a user, an interface, a unit); used inside `AttrsOf`."""

    options: Dict[str, "Option"] = field(default_factory=dict)
    label: str = "submodule"
    kind = "submodule"

    @property
    def name(self) -> str:  # type: ignore[override]
        return self.label

    def check(self, value: Any, where: str) -> Any:
        if not isinstance(value, dict):
            raise TypeMismatch(f"expected an attribute set ({self.label}), got {describe(value)}")
        return value


_NO_DEFAULT = object()


@dataclass
class Option:
    """One declared option. `path` and `declared_in` are filled in when its group registers it."""

    type: OptionType
    description: str
    default: Any = _NO_DEFAULT
    example: Any = None
    secret: bool = False  # the value never appears in output, logs or errors
    path: str = ""
    declared_in: str = ""

    @property
    def has_default(self) -> bool:
        return self.default is not _NO_DEFAULT


def option(
    type: OptionType,
    description: str,
    default: Any = _NO_DEFAULT,
    example: Any = None,
    secret: bool = False,
) -> Option:
    return Option(type, " ".join(description.split()), default, example, secret)


def sub(label: str, **options: Option) -> Submodule:
    return Submodule(dict(options), label)


def enum(*values: str) -> Enum:
    return Enum(tuple(values))


def list_of(element: OptionType, unique: bool = False) -> ListOf:
    return ListOf(element, unique)


def attrs_of(element: OptionType) -> AttrsOf:
    return AttrsOf(element)


def null_or(inner: OptionType) -> NullOr:
    return NullOr(inner)


def either(*choices: OptionType) -> Either:
    return Either(tuple(choices))


BOOL = Bool()
INT = Int()
STR = Str()
PATH = Path()
PACKAGE = Package()

__all__: Sequence[str] = (
    "BOOL", "INT", "STR", "PATH", "PACKAGE", "Int", "Option", "OptionType", "Submodule", "TypeMismatch",
    "attrs_of", "either", "enum", "list_of", "null_or", "option", "sub",
)

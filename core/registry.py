"""A name -> class registry for each family of plugins (embedders, clusterers, reducers, scorers, strategies,
loops), and the typed description of their parameters that forms, the CLI and job files share.

Implementations are frozen dataclasses whose fields are their hyperparameters, so a registry can build
one from a name plus a dict of parameters, and a UI can build a parameter form from the fields: each
field becomes a :class:`Param` (``Literal`` types become choices, ``X | None`` an optional value; bounds
and help come from :func:`param` metadata, help also from a numpy-style ``name : text`` docstring line).
A plugin that is not a dataclass declares its parameters instead, as ``declared_params``. A plugin's
``name`` is its id (CLI, job files, manifests); its class attribute ``title`` is the human name the pages'
pickers show (:meth:`Registry.title`), so a new plugin needs no UI code for either.
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable
from typing import Any, Generic, Literal, TypeVar

T = TypeVar("T")

# The kinds a form can show and a NAME=VALUE string can be parsed into.
SCALAR_KINDS: tuple[type, ...] = (bool, int, float, str)
# What an optional parameter's text means when it means "none".
NONE_WORDS = ("", "none", "null")


@dataclasses.dataclass(frozen=True)
class Param:
    """One parameter of a plugin: name, type, default, choices, bounds and help.

    ``kind`` is bool, int, float or str; ``optional`` allows None; ``required`` has no default.
    """

    name: str
    kind: type
    default: Any = None
    choices: tuple[Any, ...] = ()
    low: float | None = None
    high: float | None = None
    help: str = ""
    optional: bool = False
    required: bool = False

    def parse(self, value: Any) -> Any:
        """``value`` (often a string from a CLI or form) converted to this parameter's type, then checked."""
        if self.optional and (value is None or (isinstance(value, str) and value.strip().lower() in NONE_WORDS)):
            return None
        if not isinstance(value, str) or self.kind is str:
            converted = value
        elif self.kind is bool:
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(f"{self.name} must be true or false, not {value!r}")
            converted = value.lower() in ("true", "1", "yes")
        else:
            try:
                converted = self.kind(value)
            except ValueError:
                raise ValueError(f"{self.name} must be a {self.kind.__name__}, not {value!r}") from None
        return self.check(converted)

    def check(self, value: Any) -> Any:
        """``value`` itself when it is one of the choices and within the bounds; else a ValueError."""
        if self.choices and value not in self.choices:
            raise ValueError(f"{self.name} must be one of {', '.join(map(str, self.choices))}, not {value!r}")
        if self.low is not None and value is not None and value < self.low:
            raise ValueError(f"{self.name} must be at least {self.low:g}, not {value!r}")
        if self.high is not None and value is not None and value > self.high:
            raise ValueError(f"{self.name} must be at most {self.high:g}, not {value!r}")
        return value

    def describe(self) -> str:
        """One line for help texts: ``name (type, default X; choices): help``."""
        kind = "|".join(map(str, self.choices)) if self.choices else self.kind.__name__
        default = "required" if self.required else f"default {self.default}"
        return f"{self.name} ({kind}, {default})" + (f": {self.help}" if self.help else "")


def changed_values(params: list[Param], values: dict[str, Any]) -> dict[str, Any]:
    """The entries of ``values`` that differ from their parameter's default (what a job file needs to say)."""
    defaults = {p.name: p.default for p in params}
    return {key: value for key, value in values.items() if key not in defaults or defaults[key] != value}


def param(
    default: Any = dataclasses.MISSING, *, help: str = "", low: float | None = None, high: float | None = None
) -> Any:
    """A dataclass field with its help text and bounds (what :func:`params_of` reads back)."""
    metadata = {"help": help, "low": low, "high": high}
    return dataclasses.field(default=default, metadata=metadata)


def params_of(cls: type) -> list[Param]:
    """The parameters of a plugin class: its ``declared_params``, else its scalar dataclass fields."""
    declared = getattr(cls, "declared_params", None)
    if declared is not None:
        return list(declared)
    hints = typing.get_type_hints(cls)
    helps = _docstring_help(cls.__doc__ or "")
    result = []
    for field in dataclasses.fields(cls):
        shape = _shape(hints[field.name])
        if field.init and shape is not None:
            kind, choices, optional = shape
            required = field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING
            default = None if required else _default(field)
            meta = field.metadata
            help_text = meta.get("help") or helps.get(field.name, "")
            bounds = {"low": meta.get("low"), "high": meta.get("high")}
            result.append(
                Param(
                    field.name, kind, default, choices, help=help_text, optional=optional, required=required, **bounds
                )
            )
    return result


def _default(field: dataclasses.Field[Any]) -> Any:
    """The field's default, or a fresh value from its default factory (the caller checked it has one)."""
    if field.default is not dataclasses.MISSING:
        return field.default
    factory = field.default_factory
    if not callable(factory):
        raise ValueError(f"the field {field.name!r} has neither a default nor a default factory")
    return factory()


def _shape(hint: Any) -> tuple[type, tuple[Any, ...], bool] | None:
    """(kind, choices, optional) of a type hint, or None for a type no form can show (a tuple, an array)."""
    if typing.get_origin(hint) is Literal:
        choices = typing.get_args(hint)
        return type(choices[0]), choices, False
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = typing.get_args(hint)
        inner = [_shape(arg) for arg in args if arg is not type(None)]
        first = next((shape for shape in inner if shape is not None), None)
        return None if first is None else (first[0], first[1], type(None) in args or first[2])
    return (hint, (), False) if hint in SCALAR_KINDS else None


_DOC_LINE = re.compile(r"^\s*([a-z_][a-z0-9_]*(?:\s*,\s*[a-z_][a-z0-9_]*)*)\s+:\s+(.+)$")


def _docstring_help(doc: str) -> dict[str, str]:
    """``{name: text}`` from numpy-style ``name : text`` lines and the more indented lines under them
    (``a, b : text`` gives both the text)."""
    found: dict[str, str] = {}
    names: list[str] = []
    indent = 0
    for line in doc.splitlines():
        match = _DOC_LINE.match(line)
        depth = len(line) - len(line.lstrip())
        if match:
            names, indent = [name.strip() for name in match.group(1).split(",")], depth
            for name in names:
                found.setdefault(name, match.group(2).strip())
        elif names and line.strip() and depth > indent:
            for name in names:
                found[name] += " " + line.strip()
        else:
            names = []
    return found


class Registry(Generic[T]):
    """Maps ``cls.name`` to an implementation class of one family."""

    def __init__(self, family: str):
        self.family = family
        self._classes: dict[str, type[T]] = {}

    def register(self, cls: type[T]) -> type[T]:
        """Class decorator: add ``cls`` under ``cls.name``."""
        name = getattr(cls, "name", None)
        if not name:
            raise TypeError(f"{cls.__name__} needs a class attribute 'name' to join the {self.family} registry")
        if not dataclasses.is_dataclass(cls) and getattr(cls, "declared_params", None) is None:
            raise TypeError(
                f"{cls.__name__} needs dataclass fields or declared_params to join the {self.family} registry"
            )
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.family} {name!r}; known: {', '.join(self.names())}") from None

    def title(self, name: str) -> str:
        """The human name pickers show for ``name`` (the class's ``title``, e.g. "kMQ (k-means quality)"), else
        ``name`` itself; ids stay what the CLI, job files and manifests use. A ``format_func`` for selectboxes."""
        return getattr(self.get(name), "title", None) or name

    def summary(self, name: str) -> str:
        """The first paragraph of the implementation's docstring, for captions and help texts."""
        return " ".join((self.get(name).__doc__ or "").split("\n\n")[0].split())

    def params(self, name: str) -> list[Param]:
        """The parameters a user sets for ``name`` (generated forms, CLI flags, parsing): its fields, less the
        ``run_fields`` its caller fills in itself (a loop's budget, rounds and seed come from the run)."""
        cls = self.get(name)
        set_by_caller = set(getattr(cls, "run_fields", ()))
        return [p for p in params_of(cls) if p.name not in set_by_caller]

    def parse(self, name: str, values: dict[str, Any]) -> dict[str, Any]:
        """``values`` (strings or typed) parsed and checked against ``name``'s parameters; unknown names are an error."""
        known = {p.name: p for p in self.params(name)}
        unknown = set(values) - set(known)
        if unknown:
            raise ValueError(f"{self.family} {name!r} has no parameter(s) {sorted(unknown)}; it has {sorted(known)}")
        return {key: known[key].parse(value) for key, value in values.items()}

    def build(self, name: str, **params: Any) -> T:
        """An instance of ``name`` with ``params``; unknown parameter names are an error."""
        cls = self.get(name)
        if dataclasses.is_dataclass(cls):
            known = {f.name for f in dataclasses.fields(cls)}
        else:
            known = {p.name for p in params_of(cls)}
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"{self.family} {name!r} has no parameter(s) {sorted(unknown)}; it has {sorted(known)}")
        return cls(**params)


def spec_of(instance: Any) -> dict[str, Any]:
    """``{"name": ..., **params}`` describing a registered instance, for manifests and job files."""
    return {"name": instance.name, **dataclasses.asdict(instance)}


def builder(registry: Registry[T]) -> Callable[[dict[str, Any]], T]:
    """A function that rebuilds an instance from :func:`spec_of` output."""

    def build(spec: dict[str, Any]) -> T:
        params = dict(spec)
        return registry.build(params.pop("name"), **params)

    return build

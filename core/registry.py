"""A name -> class registry for each family of algorithms (embedders, clusterers, reducers, strategies...).

Implementations are frozen dataclasses whose fields are their hyperparameters, so a registry can build
one from a name plus a dict of parameters, and a UI can build a parameter form from the fields.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, Generic, TypeVar

T = TypeVar("T")


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
        self._classes[name] = cls
        return cls

    def names(self) -> list[str]:
        return sorted(self._classes)

    def get(self, name: str) -> type[T]:
        try:
            return self._classes[name]
        except KeyError:
            raise KeyError(f"unknown {self.family} {name!r}; known: {', '.join(self.names())}") from None

    def build(self, name: str, **params: Any) -> T:
        """An instance of ``name`` with ``params``; unknown parameter names are an error."""
        cls = self.get(name)
        known = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        unknown = set(params) - known
        if unknown:
            raise TypeError(f"{self.family} {name!r} has no parameter(s) {sorted(unknown)}; it has {sorted(known)}")
        return cls(**params)

    def parameters(self, name: str) -> list[dataclasses.Field[Any]]:
        """The hyperparameter fields of ``name`` (for generated forms)."""
        return list(dataclasses.fields(self.get(name)))  # type: ignore[arg-type]


def spec_of(instance: Any) -> dict[str, Any]:
    """``{"name": ..., **params}`` describing a registered instance, for manifests and job files."""
    return {"name": instance.name, **dataclasses.asdict(instance)}


def builder(registry: Registry[T]) -> Callable[[dict[str, Any]], T]:
    """A function that rebuilds an instance from :func:`spec_of` output."""

    def build(spec: dict[str, Any]) -> T:
        params = dict(spec)
        return registry.build(params.pop("name"), **params)

    return build

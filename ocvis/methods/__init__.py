"""Methods by name. Each is a :class:`~ocvis.methods.base.Method`; pages and benchmarks
work for every entry without method-specific code."""
from __future__ import annotations

from ocvis.errors import DataError
from ocvis.methods.ae import CAE, CLS, ICS
from ocvis.methods.base import Method, config_fields, config_to_dict
from ocvis.methods.shallow import HOG, PCA, Original

METHODS: dict[str, type[Method]] = {m.name: m for m in (ICS, CAE, CLS, Original, PCA, HOG)}


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        raise DataError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def make_method(name: str, preset: str = "cpu", **overrides) -> Method:
    """A method from its name, a preset and keyword overrides of its config."""
    cls = get_method(name)
    presets = cls.presets
    if preset not in presets:
        raise DataError(f"unknown preset {preset!r} for {name}; choose one of "
                        f"{', '.join(presets)}")
    return cls(cls.Config(**{**presets[preset], **overrides}))


__all__ = ["METHODS", "Method", "get_method", "make_method", "config_fields", "config_to_dict"]

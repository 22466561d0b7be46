"""Methods by name. Each is a :class:`~ocvis.methods.base.Method`; pages and benchmarks
work for every entry without method-specific code.

A new method is one module plus one :func:`register` call. Modules named in
``$OCVIS_METHOD_PLUGINS`` (comma-separated import paths) are imported when this package is,
so methods outside ``ocvis`` (a lab's own, or a test's) reach the dashboard and the job
worker process the same way.
"""
from __future__ import annotations

import importlib
import json
import logging
import os
from pathlib import Path

from ocvis.errors import DataError
from ocvis.methods.ae import CAE, CLS, ICS, CAEIForest
from ocvis.methods.base import (FeatureMethod, Method, config_fields, config_from_dict,
                                config_to_dict)
from ocvis.methods.clad import CLAD
from ocvis.methods.deep_svdd import DeepSVDD
from ocvis.methods.e3outlier import E3Outlier, SSDIForest
from ocvis.methods.ics_e2e import ICSE2E, NaiveNN, NNwDS
from ocvis.methods.shallow import HOG, HOGE2E, PCA, Original, PixelIForest, PixelOCSVM
from ocvis.methods.split_ae import SSIMError
from ocvis.methods.two_stage import DAE, Contrastive, ContrastiveDA, RotNet

log = logging.getLogger(__name__)
METHODS: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    """Add a method class to the registry (usable as a class decorator)."""
    if not cls.name or cls.name in ("method", "split"):
        raise ValueError(f"{cls.__name__} needs a unique name")
    METHODS[cls.name] = cls
    return cls


for _cls in (ICS, CLS, CAE, Original, PCA, HOG, RotNet, ContrastiveDA, Contrastive, DAE,
             ICSE2E, DeepSVDD, SSIMError, PixelOCSVM, PixelIForest, HOGE2E, NNwDS, NaiveNN, CLAD, E3Outlier, SSDIForest, CAEIForest):
    register(_cls)


def load_plugins(spec: str | None = None) -> list[str]:
    """Import the modules named in ``spec`` (default ``$OCVIS_METHOD_PLUGINS``)."""
    spec = os.environ.get("OCVIS_METHOD_PLUGINS", "") if spec is None else spec
    loaded = []
    for mod in (m.strip() for m in spec.split(",")):
        if not mod:
            continue
        try:
            importlib.import_module(mod)
            loaded.append(mod)
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break ocvis
            log.warning("could not import method plugin %s: %s", mod, exc)
    return loaded


load_plugins()


def get_method(name: str) -> type[Method]:
    if name not in METHODS:
        load_plugins()  # a plugin named in the environment after the first import
    if name not in METHODS:
        raise DataError(f"unknown method {name!r}; choose one of {', '.join(METHODS)}")
    return METHODS[name]


def presets_dir() -> Path:
    """Where named presets saved by ``sweep`` live: ``$OCVIS_PRESETS_DIR`` or ``./presets``."""
    return Path(os.environ.get("OCVIS_PRESETS_DIR", "presets")).expanduser()


def user_presets(name: str) -> dict[str, dict]:
    """The saved presets of method ``name`` (``<presets_dir>/<method>/<preset>.json``)."""
    folder = presets_dir() / name
    out = {}
    for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            out[p.stem] = json.loads(p.read_text())
        except (OSError, ValueError) as exc:
            log.warning("preset %s unreadable: %s", p, exc)
    return out


def available_presets(name: str) -> list[str]:
    """Built-in presets of a method, then its saved ones."""
    cls = get_method(name)
    return list(cls.presets) + [p for p in user_presets(name) if p not in cls.presets]


def preset_values(name: str, preset: str) -> dict:
    """The config values of a built-in or saved preset (a saved one = its base preset's
    values updated with its own)."""
    cls = get_method(name)
    if preset in cls.presets:
        return dict(cls.presets[preset])
    saved = user_presets(name).get(preset)
    if saved is None:
        raise DataError(f"unknown preset {preset!r} for {name}; choose one of "
                        f"{', '.join(available_presets(name))}")
    base = saved.get("base", "cpu")
    return {**cls.presets.get(base, {}), **dict(saved.get("values") or {})}


def save_preset(name: str, preset: str, values: dict, base: str = "cpu",
                source: dict | None = None) -> Path:
    """Save a named preset for method ``name`` (what ``sweep`` does with its best trial)."""
    cls = get_method(name)
    if preset in cls.presets:
        raise DataError(f"{preset!r} is a built-in preset of {name}; choose another name")
    if not preset.replace("-", "").replace("_", "").isalnum():
        raise DataError(f"a preset name is letters, digits, - and _: {preset!r}")
    config_from_dict(cls.Config, {**cls.presets.get(base, {}), **values}, strict=True)
    path = presets_dir() / name / f"{preset}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"method": name, "base": base, "values": values,
                                "source": source or {}}, indent=2, default=str))
    return path


def make_method(name: str, preset: str = "cpu", **overrides) -> Method:
    """A method from its name, a preset (built-in or saved) and keyword overrides of its
    config (unknown settings are an error that names the known ones)."""
    cls = get_method(name)
    return cls(config_from_dict(cls.Config, {**preset_values(name, preset), **overrides},
                                strict=True))


def describe_methods() -> list[dict]:
    """One row per registered method (plugins included), in table order: its name, what it
    is, the paper, the scores a run stores (primary first) and the presets."""
    rows = []
    for name in sorted(METHODS, key=table_order):
        cls = METHODS[name]
        try:
            scores = tuple(cls().score_names)  # a property for some (the chosen detector)
        except Exception:  # noqa: BLE001 - a plugin whose defaults do not build
            scores = tuple(cls.score_names) if isinstance(cls.score_names, tuple) else ()
        rows.append({"method": name, "what": cls.title, "paper": cls.paper,
                     "scores": ", ".join(scores), "deep": bool(cls.deep),
                     "presets": ", ".join(available_presets(name))})
    return rows


def table_order(name: str) -> tuple[int, str]:
    """Sort key of a method name in benchmark tables (its class's ``table_order``)."""
    cls = METHODS.get(name)
    return (cls.table_order if cls is not None else 1000, name)


__all__ = ["METHODS", "Method", "FeatureMethod", "get_method", "make_method", "register",
           "available_presets", "preset_values", "save_preset",
           "load_plugins", "table_order", "describe_methods", "config_fields", "config_to_dict",
           "config_from_dict"]

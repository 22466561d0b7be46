"""Forms generated from a method's config dataclass (paper defaults, bounds, help)."""
from __future__ import annotations

import streamlit as st

from ocvis.errors import DataError
from ocvis.methods import config_fields
from ocvis.methods.base import parse_field_value

HIDDEN = ("seed",)  # the task's seed is used (one seed reproduces a run)


def config_form(method_cls, preset: str, key: str, defaults: dict | None = None) -> dict:
    """Widgets for every config field; returns the overrides that differ from the preset."""
    from ocvis.methods import preset_values

    base = {**preset_values(method_cls.name, preset), **(defaults or {})}
    cfg = method_cls.Config(**base)
    overrides = dict(defaults or {})
    fields = [f for f in config_fields(method_cls.Config) if f["name"] not in HIDDEN]
    cols = st.columns(3)
    for i, f in enumerate(fields):
        name, value = f["name"], getattr(cfg, f["name"])
        wkey = f"{key}-{method_cls.name}-{preset}-{name}"
        col = cols[i % 3]
        label = name.replace("_", " ")
        if f["choices"]:
            opts = list(f["choices"])
            v = col.selectbox(label, opts, index=opts.index(value) if value in opts else 0,
                              help=f["help"], key=wkey)
        elif isinstance(value, bool):
            v = col.checkbox(label, value=value, help=f["help"], key=wkey)
        elif isinstance(value, int):
            v = int(col.number_input(label, value=int(value), step=1,
                                     min_value=int(f["min"]) if f["min"] is not None else None,
                                     max_value=int(f["max"]) if f["max"] is not None else None,
                                     help=f["help"], key=wkey))
        elif isinstance(value, float):
            fmt = "%.2e" if (f["log"] or (0 < abs(value) < 1e-3)) else "%g"
            v = float(col.number_input(label, value=float(value), format=fmt,
                                       min_value=float(f["min"]) if f["min"] is not None else None,
                                       max_value=float(f["max"]) if f["max"] is not None else None,
                                       step=None, help=f["help"], key=wkey))
        elif isinstance(value, tuple):
            text = col.text_input(label, value=", ".join(map(str, value)),
                                  help=(f["help"] or "") + " (comma-separated)", key=wkey)
            try:
                v = parse_field_value(method_cls.Config, name, text)
            except DataError as exc:
                col.error(str(exc))
                v = value
        else:
            v = col.text_input(label, value=str(value), help=f["help"], key=wkey)
        preset_value = getattr(method_cls.Config(**preset_values(method_cls.name, preset)),
                               name)
        if v != preset_value:
            overrides[name] = v
        else:
            overrides.pop(name, None)
    return overrides

"""One experiment end to end (task -> fit -> scores -> metrics -> run store) and the
intra-class split alone, on one skeleton. Used by the CLI, the UI's jobs and ``bench/``.

What a run stores comes from the :class:`~ocvis.methods.base.Method` interface only:

* ``run.json``: ``metrics`` (of the primary score), ``metrics_by_score`` (every score),
  ``score_names`` / ``primary_score``, ``info`` (``fit_info()``), ``config`` (with
  ``config_version``), ``notes`` (warnings raised on the way), ``column_nmi`` (for each
  of the method's ``grouping_columns`` of the training images, e.g. CLAD's pseudo-labels,
  its normalised mutual information with their true classes, where they hold several:
  measured after ``fit``, which never sees those classes);
* ``arrays.npz``: ``test_scores`` / ``train_scores`` (primary), ``test_scores.<name>`` /
  ``train_scores.<name>`` (every score), ``train_latent`` / ``test_latent`` (``embed``),
  ``test_col.<name>`` / ``train_col.<name>`` (``sample_columns``), ``fit_arrays()`` under
  their own names (e.g. ``split_atypical``), the labels and the validation mask.
"""
from __future__ import annotations

import logging
import time
import warnings
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np
import torch

from ocvis.errors import Cancelled, OcvisError, OcvisWarning
from ocvis.train import Hooks, MultiHooks, device_description, divergence, resolve_device

log = logging.getLogger(__name__)


HISTORY_FLUSH_SECONDS = 5.0


class _Recorder(Hooks):
    """Keeps the step records so a failed run still stores its curves, and writes them to
    the run store every ``HISTORY_FLUSH_SECONDS`` while the run trains, so the dashboard
    shows live curves of every stored run (a CLI or ``bench`` run as much as a page's job)
    and a killed process leaves the curves it had."""

    def __init__(self) -> None:
        self.records: list[dict] = []
        self.store, self.run_id = None, None
        self._last_flush = time.monotonic()

    def on_step(self, event: dict) -> None:
        self.records.append(event)
        if self.store is not None and self.run_id and \
                time.monotonic() - self._last_flush >= HISTORY_FLUSH_SECONDS:
            self._last_flush = time.monotonic()
            try:
                self.store.write_history(self.run_id, self.records)
            except OSError as exc:
                log.warning("could not flush the history of %s: %s", self.run_id, exc)


def task_from_config(cfg: dict):
    """``make_task`` from a task configuration as the UI and the run store keep it."""
    from ocvis.data import make_task

    return make_task(cfg.get("dataset", "digits"), cfg.get("protocol", "one-class"),
                     cfg.get("normal", 0), n_train=cfg.get("n_train"),
                     ratio=cfg.get("ratio", 10.0), seed=int(cfg.get("seed", 0)))


def task_of_run(meta: dict):
    """The task a run was trained on, rebuilt from its stored configuration (deterministic)."""
    task = meta.get("task")
    return task_from_config(task if isinstance(task, dict) else {})


def _label(task_cfg: dict) -> str:
    return f"{task_cfg.get('dataset')}-{task_cfg.get('normal')}"


@dataclass
class _Context:
    """What the body of a job gets: the task, hooks, the run's metadata so far."""

    task: Any
    hooks: Hooks
    meta: dict
    overrides: dict
    store: Any
    run_id: str | None
    result: dict = field(default_factory=dict)

    def publish(self) -> None:
        """Write the metadata so far (a page shows the config while training runs)."""
        if self.store is not None:
            self.store.update(self.run_id, **self.meta)

    def write_model(self, state_dict: dict) -> None:
        if self.store is not None:
            self.store.write_model(self.run_id, state_dict)


def _run(kind: str, name: str, task_cfg: dict, preset: str, overrides: dict | None,
         body: Callable[[_Context], dict], *, store, hooks: Hooks | None,
         run_id: str | None) -> dict:
    """The skeleton of every stored job: create / mark the run (holding its lease), build
    the task, run ``body(ctx) -> arrays``, record notes, arrays and history, and on any
    failure store why (with the curves so far) before re-raising."""
    overrides = dict(overrides or {})
    overrides.setdefault("seed", int(task_cfg.get("seed", 0)))
    recorder = _Recorder()
    all_hooks = MultiHooks([recorder, hooks])
    meta: dict[str, Any] = {"method": name, "kind": kind, "preset": preset,
                            "task": dict(task_cfg), "overrides": overrides,
                            "seed": overrides["seed"]}
    lease = None
    if store is not None:  # the run is held (its lease renewed) while this process works
        if run_id is None:
            run_id = store.create({**meta, "task_name": _label(task_cfg)})  # holds it
        else:
            store.hold(run_id)
        lease = run_id
        recorder.store, recorder.run_id = store, run_id
    ctx = None
    try:
        if store is not None:
            store.update(run_id, status="running", started=time.time())
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            task = task_from_config(task_cfg)
            meta.update(task_name=task.name, task_summary=task.summary(),
                        class_names=list(task.class_names))
            ctx = _Context(task, all_hooks, meta, overrides, store, run_id)
            arrays = body(ctx)
        meta["notes"] = list(dict.fromkeys(
            list(task.notes) + [str(w.message) for w in caught
                                if issubclass(w.category, UserWarning)]))
        meta.update(status="done", finished=time.time())
        if store is not None:
            store.write_arrays(run_id, **arrays)
            store.write_history(run_id, recorder.records)
            store.update(run_id, **meta)
    except BaseException as exc:
        _store_failure(store, run_id, meta, recorder, exc)
        raise
    finally:
        if lease is not None:
            store.release(lease)
    meta["id"] = run_id
    meta.update(ctx.result)
    return meta


def _store_failure(store, run_id, meta, recorder, exc: BaseException) -> None:
    """Record why a run ended early (cancelled / failed) with the curves it had."""
    if isinstance(exc, Cancelled):
        meta.update(status="cancelled", error=str(exc))
    elif isinstance(exc, KeyboardInterrupt):
        meta.update(status="cancelled", error="interrupted (Ctrl-C)")
    else:
        meta.update(status="failed", error=str(exc) if isinstance(exc, OcvisError)
                    else f"{type(exc).__name__}: {exc}")
    meta["finished"] = time.time()
    if store is None or run_id is None:
        return
    try:
        store.write_history(run_id, recorder.records)
        store.update(run_id, **meta)
    except Exception as err:  # noqa: BLE001 - never hide the original error
        log.warning("could not record the failure of run %s: %s", run_id, err)


def run_experiment(task_cfg: dict, method: str, preset: str = "cpu",
                   overrides: dict | None = None, *, store=None, hooks: Hooks | None = None,
                   run_id: str | None = None) -> dict:
    """Build the task, fit ``method``, score the test set, evaluate, store the run.

    ``task_cfg`` holds the arguments of :func:`ocvis.data.make_task` (dataset, protocol,
    normal, n_train, ratio, seed). The method's seed is the task's seed unless overridden.
    Returns the run's metadata (with ``metrics``); with ``store`` a run directory is written
    even when fitting fails or is cancelled (status, error and the curves so far).
    """
    from ocvis.methods import make_method
    from ocvis.methods.base import CONFIG_VERSION, config_to_dict, validate_config
    from ocvis.metrics import evaluate, grouping_agreement

    def body(ctx: _Context) -> dict:
        task, hooks, meta = ctx.task, ctx.hooks, ctx.meta
        m = make_method(method, preset, **ctx.overrides)
        validate_config(m.config)  # every setting checked before any training
        device = resolve_device(getattr(m.config, "device", "auto"))
        amp = getattr(m, "autocast_dtype", lambda: None)()
        meta.update(config={**config_to_dict(m.config), "config_version": CONFIG_VERSION},
                    title=m.title, device=device_description(device) + (
                        ", bfloat16 mixed precision" if amp is not None else ""),
                    threads=torch.get_num_threads(), score_names=list(m.score_names),
                    primary_score=m.primary_score)
        ctx.publish()
        m.fit(task, hooks=hooks)
        hooks.on_status("scoring the test set")
        t0 = time.perf_counter()
        test = m.scores(task.x_test)
        test_latent = m.embed(task.x_test)
        test_cols = m.sample_columns(task.x_test)
        score_seconds = time.perf_counter() - t0
        by_score = {k: evaluate(v, task.y_test, task.val_mask) for k, v in test.items()}
        info = m.fit_info()
        div = divergence(m.history.records)
        if div:
            info["divergence"] = div
            warnings.warn(f"training did not converge: {div}; the scores mean little (try a "
                          "smaller learning rate)", OcvisWarning, stacklevel=2)
        fit_seconds = float(m.fit_seconds_)
        if info.get("pretrain_reused"):  # the cached stage 1 is part of the cost
            fit_seconds += float(info.get("pretrain_seconds", 0.0))
        meta.update(metrics=by_score[m.primary_score], metrics_by_score=by_score, info=info,
                    fit_seconds=fit_seconds, score_seconds=score_seconds,
                    pretrain_reused=bool(info.get("pretrain_reused", False)))
        train_cols = m.sample_columns(task.x_train)
        agreement = grouping_agreement(train_cols, m.grouping_columns, task.train_classes)
        if agreement:
            meta["column_nmi"] = agreement
        arrays: dict[str, np.ndarray] = {
            "test_scores": test[m.primary_score],
            "train_scores": m.train_scores_[m.primary_score],
            "train_latent": np.asarray(m.embed_train(task.x_train), np.float32),
            "test_latent": np.asarray(test_latent, np.float32),
            "y_test": task.y_test, "test_classes": task.test_classes,
            "val_mask": task.val_mask, "train_classes": task.train_classes}
        if len(test) > 1:
            arrays.update({f"test_scores.{k}": v for k, v in test.items()})
            arrays.update({f"train_scores.{k}": v for k, v in m.train_scores_.items()})
        arrays.update({f"test_col.{k}": v for k, v in test_cols.items()})
        arrays.update({f"train_col.{k}": v for k, v in train_cols.items()})
        if task.y_train_hidden is not None:
            arrays["y_train_hidden"] = task.y_train_hidden
        arrays.update(m.fit_arrays())
        ctx.write_model(m.state_dict())
        return arrays

    return _run("experiment", method, task_cfg, preset, overrides, body, store=store,
                hooks=hooks, run_id=run_id)


def run_split(task_cfg: dict, preset: str = "cpu", overrides: dict | None = None, *,
              store=None, hooks: Hooks | None = None, run_id: str | None = None) -> dict:
    """The intra-class split alone: train the splitting autoencoder (cached, so a later ICS
    run with the same settings reuses it), reconstruct every normal training image and
    measure its similarity. The typical / atypical cut is then free to move (``rho``)."""
    from ocvis.methods.base import CONFIG_VERSION, config_from_dict, config_to_dict, \
        validate_config
    from ocvis.methods.split_ae import SplitAutoencoder

    def body(ctx: _Context) -> dict:
        task, hooks, meta = ctx.task, ctx.hooks, ctx.meta
        if preset not in SplitAutoencoder.presets:
            raise OcvisError(f"unknown preset {preset!r}; choose one of "
                             f"{', '.join(SplitAutoencoder.presets)}")
        cfg = config_from_dict(SplitAutoencoder.Config,
                               {**SplitAutoencoder.presets[preset], **ctx.overrides},
                               strict=True)
        m = SplitAutoencoder(cfg)
        validate_config(m.config)
        meta.update(config={**config_to_dict(m.config), "config_version": CONFIG_VERSION},
                    title="Intra-class split", device=device_description(m.device_),
                    threads=torch.get_num_threads())
        ctx.publish()
        t0 = time.perf_counter()
        m.pretrain(task.x_train, hooks)
        x_hat = m.reconstruct(task.x_train)
        sp = m.compute_split(task.x_train, hooks, x_hat=x_hat)
        fit_seconds = time.perf_counter() - t0
        if m.pretrain_reused_:
            fit_seconds += float(m.pretrain_seconds_)
        meta.update(fit_seconds=fit_seconds, rho=m.config.rho,
                    similarity=m.config.similarity, pretrain_reused=bool(m.pretrain_reused_),
                    n_atypical=int(sp.atypical.sum()))
        ctx.result["split"] = sp  # returned to the caller, not stored in run.json
        recon = (x_hat.clamp(0, 1) * 255).round().to(dtype=torch.uint8)
        return {"similarity": sp.similarity, "atypical": sp.atypical,
                "recon_uint8": recon.numpy(), "train_classes": task.train_classes}

    return _run("split", "split", task_cfg, preset, overrides, body, store=store,
                hooks=hooks, run_id=run_id)


def stored_config(meta: dict, *, quiet: bool = False):
    """The method class of a stored run and the config it was trained with.

    Read tolerantly: the stored ``config`` (very old runs without one: their preset and
    overrides); settings added after the run was stored take what they meant then
    (:attr:`Method.older_config`), other missing ones their default; settings this version
    does not know are dropped (with a warning unless ``quiet``). One reading for every
    consumer (reloading a model, re-scoring a table, grouping repetitions on Evaluate)."""
    from ocvis.methods import get_method
    from ocvis.methods.base import config_from_dict

    cls = get_method(str(meta.get("method")))
    cfg = dict(meta.get("config") or {})
    if not cfg:
        cfg = {**cls.presets.get(meta.get("preset", "cpu"), {}), **(meta.get("overrides") or {})}
    cfg = {**cls.older_config, **cfg}
    with warnings.catch_warnings():
        if quiet:
            warnings.simplefilter("ignore", OcvisWarning)
        return cls, config_from_dict(cls.Config, cfg)


def load_run_method(store, run_id: str):
    """Rebuild the fitted method of a stored run (weights loaded with weights_only=True),
    with the config of :func:`stored_config`."""
    meta = store.read(run_id)
    if meta.get("status") != "done" or meta.get("kind", "experiment") != "experiment":
        raise OcvisError(f"run {run_id} has no finished model ({meta.get('status')})")
    cls, cfg = stored_config(meta)
    return cls(cfg).load_state_dict(store.model_state(run_id))

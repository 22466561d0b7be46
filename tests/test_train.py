"""The training engine: device choice, determinism, cancel, NaN guard, L2 term, hooks."""

import pytest
import torch

from ocvis.errors import Cancelled, TrainingError
from ocvis.train import (History, Hooks, batches, make_optimizer, resolve_device, run_epochs,
                         seed_everything)


def _setup(seed=0):
    g = seed_everything(seed)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 1))
    x = torch.randn(64, 4, generator=torch.Generator().manual_seed(1))
    y = x.sum(1, keepdim=True)
    idx = {"b": None}

    def step(i):
        if i == 0:
            idx["b"] = list(batches(len(x), 16, g))
        b = idx["b"][i]
        return {"mse": (model(x[b]) - y[b]).pow(2).mean()}

    return model, step


class Recorder(Hooks):
    def __init__(self, stop_after=None):
        self.steps, self.stages, self.epochs = [], [], []
        self.stop_after = stop_after

    def on_stage(self, *a):
        self.stages.append(a)

    def on_step(self, e):
        self.steps.append(e)

    def on_epoch(self, e):
        self.epochs.append(e)

    def should_stop(self):
        return self.stop_after is not None and len(self.steps) >= self.stop_after


def test_resolve_device_cpu_here():
    dev = resolve_device("auto")
    assert dev.type in ("cpu", "cuda", "mps")
    if not torch.cuda.is_available():
        assert dev.type == "cpu"
        with pytest.raises(TrainingError, match="CUDA"):
            resolve_device("cuda")


def test_events_and_history():
    model, step = _setup()
    rec, hist = Recorder(), History()
    n = run_epochs(model, step, stage="s", epochs=3, steps_per_epoch=4,
                   optimizer=make_optimizer("adam", model.parameters(), 1e-2),
                   l2=1e-3, l2_params=[model[0].weight], hooks=rec, history=hist)
    assert n == 12 and len(rec.steps) == 12 and len(hist) == 12 and len(rec.epochs) == 3
    e = rec.steps[-1]
    assert e["stage"] == "s" and e["epoch"] == 3 and e["step"] == 4
    assert set(e["losses"]) == {"mse", "l2", "total"}
    assert e["losses"]["total"] == pytest.approx(e["losses"]["mse"] + e["losses"]["l2"])
    assert rec.epochs[-1]["losses"]["mse"] < rec.epochs[0]["losses"]["mse"]  # it learns


def test_determinism_with_seed():
    def losses(seed):
        model, step = _setup(seed)
        h = History()
        run_epochs(model, step, stage="s", epochs=2, steps_per_epoch=4,
                   optimizer=make_optimizer("sgd", model.parameters(), 1e-2), history=h)
        return [r["losses"]["mse"] for r in h.records]

    assert losses(3) == losses(3)
    assert losses(3) != losses(4)


def test_cancel_between_steps():
    model, step = _setup()
    rec = Recorder(stop_after=5)
    with pytest.raises(Cancelled, match="epoch 2"):
        run_epochs(model, step, stage="s", epochs=10, steps_per_epoch=4,
                   optimizer=make_optimizer("adam", model.parameters(), 1e-2), hooks=rec)
    assert len(rec.steps) == 5


def test_nan_guard_keeps_last_finite_state():
    model, step = _setup()
    calls = {"n": 0}

    def bad_step(i):
        calls["n"] += 1
        out = step(i)
        if calls["n"] == 3:
            out["mse"] = out["mse"] * float("nan")
        return out

    hist = History()
    before = None

    class Snap(Hooks):
        def on_step(self, e):
            nonlocal before
            before = {k: v.clone() for k, v in model.state_dict().items()}

    with pytest.raises(TrainingError, match="diverged.*mse"):
        run_epochs(model, bad_step, stage="s", epochs=1, steps_per_epoch=4,
                   optimizer=make_optimizer("adam", model.parameters(), 1e-2),
                   hooks=Snap(), history=hist)
    assert len(hist) == 2  # the two finite steps are kept
    for k, v in model.state_dict().items():  # no update from the NaN step
        assert torch.equal(v, before[k])
        assert torch.isfinite(v).all()


def test_unknown_optimizer():
    with pytest.raises(TrainingError, match="unknown optimizer"):
        make_optimizer("lbfgs", [torch.zeros(1, requires_grad=True)], 1.0)


def test_batches_drop_single_last():
    g = torch.Generator().manual_seed(0)
    sizes = [len(b) for b in batches(65, 16, g)]
    assert sizes == [16, 16, 16, 16]
    assert sorted(torch.cat(list(batches(10, 4, g))).tolist()) == list(range(10))


def test_autocast_runs_the_forward_in_mixed_precision():
    """With ``autocast`` the step's forward runs in bfloat16 (CPU autocast here, CUDA on a
    GPU), the loss read back is finite, and the weights stay float32 and are updated."""
    torch.manual_seed(0)
    net = torch.nn.Linear(8, 1)
    before = net.weight.detach().clone()
    x, seen = torch.randn(32, 8), []

    def step(i):
        out = net(x)
        seen.append(out.dtype)
        return {"mse": (out.float() ** 2).mean()}

    h = History()
    run_epochs(net, step, stage="s", epochs=2, steps_per_epoch=3, optimizer=make_optimizer(
        "adam", net.parameters(), 1e-2), history=h, autocast=torch.bfloat16)
    assert seen and all(d == torch.bfloat16 for d in seen)
    assert net.weight.dtype == torch.float32 and not torch.equal(net.weight, before)
    assert len(h) == 6 and all(r["losses"]["mse"] > 0 for r in h.records)
    seen.clear()
    run_epochs(net, step, stage="s", epochs=1, steps_per_epoch=1, optimizer=make_optimizer(
        "adam", net.parameters(), 1e-2))
    assert seen == [torch.float32]


def test_mixed_precision_where_native_for_safe_methods(monkeypatch):
    """``mixed_precision``: ``auto`` trains in bfloat16 where the device computes it
    natively (CUDA with bf16; a CPU with AVX512-BF16 / AMX), ``bf16`` always, ``off`` never;
    the distance-based methods never (they have no such setting); ``OCVIS_AMP=0`` wins."""
    import ocvis.methods.deep as deep
    from ocvis.methods import make_method

    for native in (False, True):
        monkeypatch.setattr(deep, "native_bf16", lambda dev, native=native: native)
        for name, safe in (("rotnet", True), ("contrastive-da", True), ("dae", True),
                           ("e3outlier", True), ("ics", False), ("cls", False),
                           ("deep-svdd", False), ("clad", False)):
            m = make_method(name, "tiny")
            assert hasattr(m.config, "mixed_precision") == safe, name
            assert m.autocast_dtype() == (torch.bfloat16 if safe and native else None), name
            if safe:
                for mode, want in (("bf16", torch.bfloat16), ("off", None)):
                    assert make_method(name, "tiny", mixed_precision=mode) \
                        .autocast_dtype() == want, (name, mode)
            monkeypatch.setenv("OCVIS_AMP", "0")
            assert make_method(name, "tiny", **({"mixed_precision": "bf16"} if safe else {})) \
                .autocast_dtype() is None
            monkeypatch.delenv("OCVIS_AMP")


def test_native_bf16_reads_the_device(monkeypatch):
    from ocvis.methods.deep import native_bf16

    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: True)
    assert native_bf16(torch.device("cuda"))
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: False, raising=False)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False, raising=False)
    assert not native_bf16(torch.device("cpu"))
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: True, raising=False)
    assert native_bf16(torch.device("cpu"))
    assert not native_bf16(torch.device("mps"))

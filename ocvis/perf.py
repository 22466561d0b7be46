"""Performance benchmarks, each against a reference measured side by side in the same run.

    python -m ocvis perf [--quick] [--only ssim,engine,ae-step,detectors,umap,dashboard]
    # -> bench/results/perf.csv (rows replaced per benchmark name)

Machines here are noisy, so every row holds ``ours``, ``reference`` and their ``ratio``
(reference / ours for times: > 1 = we are faster; ours / reference for rates), measured in
the same process and interleaved where it matters; absolute numbers are reported but are only
comparable within a row.

* ``ssim``: batched torch SSIM vs scikit-image's per-image loop (values equal within 1e-4);
* ``engine:<method>``: for every registered deep method, its first training stage through the
  engine (hooks, history, NaN guard) vs a bare loop of the same ``step`` function and
  optimiser (steps/s), and the achieved FLOP/s of its step (``torch.utils.flop_counter``) as a
  fraction of this machine's dense float32 matmul FLOP/s measured in the same run
  (``matmul-ceiling``). No method-specific code: the stage is captured from ``train_stage``;
* ``ae-step``: the paper autoencoder's training step as ocvis runs it (channels-last on the
  CPU, foreach Adam) vs plain eager float32 NCHW;
* ``kde`` (torch vs scikit-learn ``KernelDensity``, 10,000 x 512 scored against 5,000),
  ``ocsvm-fit`` (ours, converged, vs scikit-learn's default tolerance), ``gde`` (ours vs
  scikit-learn ``EmpiricalCovariance``);
* ``umap``: first call in a fresh process, warm call (10,000 x 64 and x 512, reference =
  the subsample-then-transform strategy ocvis uses), PCA;
* ``dashboard``: server start to the first page rendered in Chromium, page switch cold and
  warm (reference: the 5 s target), peak RSS of loading the CIFAR-10 training set
  (reference: 2 GiB).

``--quick`` shrinks every size (UMAP: 64 dimensions only) for a smoke run of under two
minutes on a quiet machine.
"""
from __future__ import annotations

import csv
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable, Iterable

import numpy as np
import torch

FIELDS = ["benchmark", "ours", "reference", "ratio", "unit", "note", "command", "date",
          "cores", "threads", "torch", "device"]
ROOT = Path(__file__).resolve().parents[1]


class _Stop(Exception):
    pass


def _row(name, ours, ref, unit, note="", higher_is_better=False) -> dict:
    """ratio = reference / ours (times) or ours / reference (rates, ``higher_is_better``)."""
    if ours and ref:
        ratio = ours / ref if higher_is_better else ref / ours
    else:
        ratio = float("nan")
    return {"benchmark": name, "ours": f"{ours:.4g}", "reference": f"{ref:.4g}",
            "ratio": f"{ratio:.3g}", "unit": unit, "note": note}


def _median_time(fn: Callable[[], object], repeats: int) -> float:
    ts = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t0)
    return statistics.median(ts)


# ----------------------------------------------------------------------------- ceiling
def matmul_flops(quick: bool) -> float:
    """Dense float32 GEMM FLOP/s of this process (its torch threads): the ceiling.

    The best of two GEMM back ends torch uses on the CPU: ``torch.matmul`` (MKL's sgemm,
    which takes its AVX2 code path on AMD CPUs) and the same n x n x n product as a 1 x 1
    channels-last convolution (oneDNN, which uses AVX-512 where the CPU has it; it also runs
    the networks' convolutions). On this project's AMD EPYC the second is ~2x the first, so a
    ceiling from ``matmul`` alone would put convolution-heavy steps above 100 %.
    """
    n = 512 if quick else 1024
    reps = 5 if quick else 20
    a, b = torch.randn(n, n), torch.randn(n, n)
    a @ b
    best = 2 * n ** 3 * reps / _median_time(lambda: [a @ b for _ in range(reps)], 3)
    conv = torch.nn.Conv2d(n, n, 1, bias=False).to(memory_format=torch.channels_last)
    side = 8
    x = torch.randn(n // side ** 2, n, side, side).contiguous(memory_format=torch.channels_last)
    with torch.no_grad():
        conv(x)
        t = _median_time(lambda: [conv(x) for _ in range(reps)], 3)
    return max(best, 2 * n ** 3 * reps / t)


# ----------------------------------------------------------------------------- ssim
def bench_ssim(quick: bool) -> list[dict]:
    from skimage.metrics import structural_similarity

    from ocvis.ssim import ssim

    n = 300 if quick else 4000
    g = np.random.default_rng(0)
    x = g.random((n, 1, 32, 32)).astype(np.float32)
    y = np.clip(x + 0.1 * g.standard_normal(x.shape).astype(np.float32), 0, 1)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    ssim(xt[:8], yt[:8])
    t_ours = _median_time(lambda: ssim(xt, yt), 3)
    ours = ssim(xt, yt).numpy()

    def loop():
        return np.array([structural_similarity(a[0], b[0], data_range=1.0,
                                               gaussian_weights=True, sigma=1.5,
                                               use_sample_covariance=False)
                         for a, b in zip(x, y)])

    t_ref = _median_time(loop, 1)
    diff = float(np.abs(loop() - ours).max())
    return [_row(f"ssim {n} images", t_ours, t_ref, "s",
                 f"max |diff| {diff:.1e} (must be < 1e-4)")]


# ----------------------------------------------------------------------------- engine
def bench_engine(quick: bool, ceiling: float, methods: Iterable[str] | None = None
                 ) -> list[dict]:
    """Every deep method's first stage: engine vs bare loop of the same step, FLOP share."""
    from torch.utils.flop_counter import FlopCounterMode

    from ocvis.data import make_task
    from ocvis.methods import METHODS, make_method
    from ocvis.methods.deep import DeepMethod
    from ocvis.train import l2_penalty, run_epochs

    task = make_task("digits", normal=[0])
    steps = 6 if quick else 20
    rows, ceilings = [], []
    names = [n for n, c in METHODS.items() if issubclass(c, DeepMethod)
             and (methods is None or n in methods)]
    for name in names:
        m = make_method(name, "cpu")
        captured = {}

        def capture(self, net, step, *, stage, epochs, steps_per_epoch, hooks,
                    optimizer=None, **kw):
            captured.update(net=net, step=step, spe=steps_per_epoch, stage=stage,
                            opt=optimizer or self.optimizer_for(net.parameters()),
                            weights=kw.get("weights"), l2=kw.get("l2", 0.0),
                            l2_params=list(kw.get("l2_params") or ()))
            raise _Stop

        orig = DeepMethod.train_stage
        DeepMethod.train_stage = capture
        try:
            m.fit(task)
        except _Stop:
            pass
        except Exception as exc:  # noqa: BLE001 - a method that cannot run is a row
            rows.append({"benchmark": f"engine:{name}", "note": f"failed: {exc}"})
            continue
        finally:
            DeepMethod.train_stage = orig
        if not captured:
            rows.append({"benchmark": f"engine:{name}", "note": "no training stage"})
            continue
        net, step, opt, spe = captured["net"], captured["step"], captured["opt"], captured["spe"]
        k = min(steps, spe)

        w = captured["weights"] or {}

        def bare():
            net.train()
            for i in range(k):
                loss = sum(w.get(t, 1.0) * v for t, v in step(i).items())
                if captured["l2"] and captured["l2_params"]:
                    loss = loss + l2_penalty(captured["l2_params"], captured["l2"])
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

        def engine():
            run_epochs(net, step, stage=captured["stage"], epochs=1, steps_per_epoch=k,
                       optimizer=opt, weights=captured["weights"], l2=captured["l2"],
                       l2_params=captured["l2_params"])

        with _Seeded():
            bare()  # warm-up
            t_b, t_e = [], []
            for _ in range(2 if quick else 5):  # interleaved, with the ceiling probe
                t_b.append(_median_time(bare, 1))
                t_e.append(_median_time(engine, 1))
                ceiling = max(ceiling, matmul_flops(True))
            flop = FlopCounterMode(display=False)
            with flop:
                loss = sum(step(0).values())
                loss.backward()
            opt.zero_grad(set_to_none=True)
        # the fastest round of each side: the least disturbed by other processes (the
        # engine's own work per step is a few dictionary updates and one host read-back)
        tb, te = min(t_b) / k, min(t_e) / k
        frac = flop.get_total_flops() / tb / ceiling
        ceilings.append(ceiling)
        why = ""
        if frac < 0.4:  # the bar: say where the rest of the step goes, measured
            gemm, top = _step_profile(bare)
            why = (f"; below 40 % because only {100 * gemm:.0f} % of the step's CPU time is in "
                   f"GEMM / convolution kernels, the rest mostly in {top}")
        rows.append(_row(f"engine:{name}", tb / te * 100, 100.0, "% of bare speed",
                         f"{captured['stage']}: {1 / te:.2f} steps/s engine, {1 / tb:.2f} "
                         f"bare; step at {100 * frac:.1f} % of the matmul ceiling "
                         f"({flop.get_total_flops() / 1e9:.2f} GFLOP/step){why}",
                         higher_is_better=True))
    if ceilings:
        rows.append(_row("matmul-ceiling (best during engine)", max(ceilings) / 1e9,
                         max(ceilings) / 1e9, "GFLOP/s", "the ceiling the FLOP shares above use",
                         higher_is_better=True))
    return rows


_GEMM_OPS = ("conv", "mm", "matmul", "linear", "addmm", "bmm", "baddbmm")


def _step_profile(steps: Callable[[], object]) -> tuple[float, str]:
    """Share of self CPU time in GEMM / convolution aten ops over ``steps()``, and the three
    largest other ops (with their shares): the measured reason a step is not FLOP-bound."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        steps()
    ops = [e for e in prof.key_averages() if e.key.startswith("aten::")]
    total = sum(e.self_cpu_time_total for e in ops) or 1.0
    is_gemm = [any(g in e.key for g in _GEMM_OPS) for e in ops]
    gemm = sum(e.self_cpu_time_total for e, g in zip(ops, is_gemm) if g)
    rest = sorted((e for e, g in zip(ops, is_gemm) if not g),
                  key=lambda e: -e.self_cpu_time_total)[:3]
    return gemm / total, ", ".join(f"{e.key[6:]} {100 * e.self_cpu_time_total / total:.0f} %"
                                   for e in rest)


class _Seeded:
    def __enter__(self):
        self._state = torch.random.get_rng_state()
        torch.manual_seed(0)

    def __exit__(self, *exc):
        torch.random.set_rng_state(self._state)


# ----------------------------------------------------------------------------- ae step
def bench_ae_step(quick: bool) -> list[dict]:
    from ocvis.nets import PaperAutoencoder
    from ocvis.train import to_device

    bs, reps = 64, (4 if quick else 20)
    x = torch.rand(bs, 1, 32, 32)

    def make(optimised: bool):
        torch.manual_seed(0)
        net = PaperAutoencoder(in_channels=1, latent_dim=64)
        if optimised:
            net = to_device(net, torch.device("cpu"))
            xb = x.contiguous(memory_format=torch.channels_last)
            opt = torch.optim.Adam(net.parameters(), 1e-3, foreach=True)
        else:
            xb = x
            opt = torch.optim.Adam(net.parameters(), 1e-3, foreach=False)

        losses = []

        def step():
            _, xh = net(xb)
            loss = ((xh - xb) ** 2).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        return step, losses

    fast, l_fast = make(True)
    eager, l_eager = make(False)
    fast(), eager()
    t_f, t_e = [], []
    for _ in range(3 if quick else 7):  # interleaved rounds; medians of both sides
        t_f.append(_median_time(lambda: [fast() for _ in range(reps)], 1) / reps)
        t_e.append(_median_time(lambda: [eager() for _ in range(reps)], 1) / reps)
    d = max(abs(float(a) - float(b)) for a, b in zip(l_fast, l_eager))
    rels = [abs(float(a) - float(b)) / abs(float(b)) for a, b in zip(l_fast, l_eager)]
    return [_row("ae-step (paper autoencoder, batch 64)", statistics.median(t_f),
                 statistics.median(t_e), "s/step",
                 f"reference: eager NCHW, for-loop Adam; same initial weights and batch, "
                 f"{len(l_eager)} steps each on one batch: loss curves differ by at most "
                 f"{d:.1e} ({100 * max(rels[:20]):.2f} % of the loss in the first 20 steps, "
                 f"{100 * max(rels):.1f} % over all, as the loss approaches 0)")]


# ----------------------------------------------------------------------------- detectors
def bench_detectors(quick: bool) -> list[dict]:
    from sklearn.covariance import EmpiricalCovariance
    from sklearn.neighbors import KernelDensity
    from sklearn.svm import OneClassSVM

    from ocvis.detectors import GDE, KDE, OCSVM

    g = np.random.default_rng(0)
    n_bank, n_q, d = (1000, 2000, 128) if quick else (5000, 10000, 512)
    bank, q = g.standard_normal((n_bank, d)), g.standard_normal((n_q, d))
    kde = KDE().fit(bank)
    t_ours = _median_time(lambda: kde.score_samples(q), 2)
    bn = bank / np.linalg.norm(bank, axis=1, keepdims=True)
    qn = q / np.linalg.norm(q, axis=1, keepdims=True)
    bw = float(np.sqrt(1 / (2 * kde.gamma_)))
    sk = KernelDensity(bandwidth=bw).fit(bn)
    t_ref = _median_time(lambda: sk.score_samples(qn), 1)
    rows = [_row(f"kde {n_q} x {d} vs {n_bank}", t_ours, t_ref, "s",
                 "reference: scikit-learn KernelDensity (same kernel)")]
    f = g.standard_normal((2000 if quick else 5000, 64))
    t_oc = _median_time(lambda: OCSVM(nu=0.1).fit(f).score_samples(f), 1)
    t_sk = _median_time(lambda: OneClassSVM(nu=0.1, gamma=1 / 64).fit(f).decision_function(f), 1)
    rows.append(_row(f"ocsvm fit+score {len(f)} x 64", t_oc, t_sk, "s",
                     "reference: scikit-learn OneClassSVM, default tolerance"))
    t_g = _median_time(lambda: GDE().fit(f).score_samples(f), 3)
    t_gs = _median_time(lambda: EmpiricalCovariance().fit(f).mahalanobis(f), 3)
    rows.append(_row(f"gde fit+score {len(f)} x 64", t_g, t_gs, "s",
                     "reference: scikit-learn EmpiricalCovariance"))
    return rows


# ----------------------------------------------------------------------------- umap
_UMAP_CHILD = """
import sys, time, numpy as np
t0 = time.perf_counter()
from ocvis.projection import project
z = np.random.default_rng(0).standard_normal(({n}, {d})).astype(np.float32)
project(z, 'umap')
print(time.perf_counter() - t0)
"""


def bench_umap(quick: bool) -> list[dict]:
    from ocvis.projection import project, warm_up_umap

    n = 2000 if quick else 10000
    # the dashboard compiles umap's and pynndescent's kernels in the background at start
    # (ocvis.jobs): "warm" is the state a user meets after that
    t_warm_up = warm_up_umap()
    rows = []
    for d in ((64,) if quick else (64, 512)):
        out = subprocess.run([sys.executable, "-c", _UMAP_CHILD.format(n=n, d=d)], cwd=ROOT,
                             capture_output=True, text=True, check=True)
        first = float(out.stdout.strip().splitlines()[-1])
        z = np.random.default_rng(1).standard_normal((n, d)).astype(np.float32)
        warm = _median_time(lambda: project(z, "umap"), 1)
        full = _median_time(lambda: project(z, "umap", max_fit=n), 1)
        rows.append(_row(f"umap {n} x {d} warm", warm, full, "s",
                         f"ocvis: fit on 5,000 + transform the rest; reference: fit on all "
                         f"{n}; first call in a fresh process {first:.1f} s, the dashboard's "
                         f"background warm-up {t_warm_up:.1f} s (target warm <= 5 s)"))
        t_pca = _median_time(lambda: project(z, "pca"), 3)
        rows.append(_row(f"pca {n} x {d}", t_pca, warm, "s", "reference: warm UMAP"))
    return rows


# ----------------------------------------------------------------------------- dashboard
# the child's own peak (ocvis.memory: VmHWM, not the ru_maxrss a child inherits from this
# large process)
_RSS_CHILD = """
from ocvis.data import load_dataset
from ocvis.memory import peak_rss_mib
ds = load_dataset('cifar10')
x = ds.x_train
print(peak_rss_mib(), x.nbytes / 2**20, ds.source)
"""


def bench_dashboard(quick: bool) -> list[dict]:
    import tempfile

    rows = []
    # cold: decoded from the image files (an empty cache folder), warm: from the decoded cache
    with tempfile.TemporaryDirectory() as cache:
        for kind in ("cold", "warm"):
            env = {**os.environ, "OCVIS_CACHE_DIR": cache}
            name = f"cifar10 train set peak RSS ({kind})"
            try:
                out = subprocess.run([sys.executable, "-c", _RSS_CHILD], cwd=ROOT, env=env,
                                     capture_output=True, text=True, check=True)
                rss, nbytes, source = out.stdout.split(maxsplit=2)
                rows.append(_row(name, float(rss), 2048.0, "MiB",
                                 f"array {float(nbytes):.0f} MiB, process incl. torch; from "
                                 f"{'the image files' if kind == 'cold' else 'the decoded cache'}"
                                 f" ({Path(source.strip()).name}); reference: the 2 GiB target"))
            except subprocess.CalledProcessError as exc:
                rows.append({"benchmark": name, "note": "not measured: "
                             f"{exc.stderr.strip().splitlines()[-1][:200]}"})
    try:
        sys.path.insert(0, str(ROOT / "tests"))
        from browser_utils import browser, sidebar_link, streamlit_server, wait_for_app
    except Exception as exc:  # noqa: BLE001
        return rows + [{"benchmark": "dashboard", "note": f"not measured: {exc}"}]
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        with streamlit_server(Path(tmp)) as server, browser() as b:
            page = b.new_page()
            page.goto(str(server))
            wait_for_app(page)
            first = time.perf_counter() - t0
            switches = {}
            for rnd in ("cold", "warm"):
                for target in ("Train", "Evaluate"):
                    t1 = time.perf_counter()
                    sidebar_link(page, target).click()
                    page.get_by_role("heading", name=target).first.wait_for(timeout=120_000)
                    wait_for_app(page)
                    switches.setdefault(rnd, []).append(time.perf_counter() - t1)
    rows.append(_row("dashboard first page", first, 5.0, "s",
                     "server start to first page rendered in Chromium; reference: 5 s target"))
    for rnd, ts in switches.items():
        rows.append(_row(f"dashboard page switch {rnd}", max(ts), 5.0, "s",
                         "slowest of Train and Evaluate; reference: 5 s target"))
    return rows


BENCHES = ("ssim", "engine", "ae-step", "detectors", "umap", "dashboard")


def run(only: Iterable[str] | None = None, quick: bool = False,
        out: Path | None = None, progress: Callable[[str], None] = print) -> Path:
    out = out or ROOT / "bench" / "results" / "perf.csv"
    only = list(only or BENCHES)
    ceiling = matmul_flops(quick)
    rows = [_row("matmul-ceiling", ceiling / 1e9, ceiling / 1e9, "GFLOP/s",
                 "dense float32 GEMM of this process (best of MKL matmul and oneDNN): the "
                 "ceiling the FLOP shares use",
                 higher_is_better=True)]
    progress(f"matmul ceiling {ceiling / 1e9:.1f} GFLOP/s")
    fns = {"ssim": lambda: bench_ssim(quick), "engine": lambda: bench_engine(quick, ceiling),
           "ae-step": lambda: bench_ae_step(quick), "detectors": lambda: bench_detectors(quick),
           "umap": lambda: bench_umap(quick), "dashboard": lambda: bench_dashboard(quick)}
    for name in only:
        t0 = time.perf_counter()
        new = fns[name]()
        rows += new
        for r in new:
            progress(f"{r['benchmark']}: ours {r.get('ours', '')} reference "
                     f"{r.get('reference', '')} ratio {r.get('ratio', '')} {r.get('unit', '')}"
                     f"  {r.get('note', '')}")
        progress(f"[{name}: {time.perf_counter() - t0:.0f} s]")
    meta = {"command": "python -m ocvis perf" + (" --quick" if quick else "") +
            ("" if set(only) == set(BENCHES) else f" --only {','.join(only)}"),
            "date": time.strftime("%Y-%m-%d %H:%M"), "cores": os.cpu_count(),
            "threads": torch.get_num_threads(), "torch": torch.__version__,
            "device": f"CPU ({platform.processor() or platform.machine()})"}
    old = []
    if out.exists():
        names = {r["benchmark"] for r in rows}
        old = [r for r in csv.DictReader(out.open()) if r["benchmark"] not in names]
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=FIELDS, restval="", extrasaction="ignore")
        w.writeheader()
        w.writerows(old + [{**r, **meta} for r in rows])
    return out

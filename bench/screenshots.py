"""Browser screenshots of the dashboard for the notes (headless Chromium, a real server).

    OCVIS_DATA_ROOT=../shared/datasets python bench/screenshots.py split-mnist3 reload OUTDIR

* ``split-mnist3``: the Split page after training the splitting autoencoder on MNIST class 3
  (4,000 images, cpu preset): SSIM range, contrast, galleries, originals vs reconstructions.
* ``reload``: a CAE run started on the Train page (Fashion-MNIST class 7 remembered as the
  task), the page reloaded while it trains: the task and the running job are still shown.
* ``explain:RUN_ID[:N[:PREFIX]]``: the Explain page of a stored run (``$OCVIS_RUNS_DIR``,
  e.g. a bench row's run) for its N (default 1) most normal and N most anomalous test images
  (two screenshots, ``PREFIX_normal.png`` and ``PREFIX_anomalous.png``, default ``explain``).
* ``train-options:METHOD``: the Train page (digits 0) with METHOD chosen and its
  hyperparameter form open (every option of the method's config, e.g. two-stage's
  ``bn_stats``); ``train_options_METHOD.png``.
* ``evaluate:RUN_ID:SCORE``: the Evaluate page of a stored run with one of its scores chosen
  (the caption under the Score box says what that score is); ``evaluate_SCORE.png``, and
  its metrics and per-class tables, ``evaluate_SCORE_tables.png``.
* ``latent:RUN_ID:COLOUR``: the Latent page of a stored run (its kept projection) coloured by
  COLOUR (e.g. ``pseudo_label``, with the NMI caption of a grouping column, or ``true class``);
  ``latent_COLOUR.png``.
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT))
from browser_utils import browser, sidebar_link, streamlit_server, wait_for_app  # noqa: E402


def _open(page, server, path: str, heading: str) -> None:
    page.goto(str(server))
    wait_for_app(page)
    sidebar_link(page, path).click()
    page.get_by_role("heading", name=heading).first.wait_for(timeout=120_000)
    wait_for_app(page)


def split_mnist3(page, server, out: Path) -> None:
    _open(page, server, "Split", "Intra-class split")
    page.get_by_role("button", name="Train splitting autoencoder").click()
    page.get_by_text("Original vs reconstruction").first.wait_for(timeout=1_800_000)
    wait_for_app(page)
    time.sleep(2)  # a screenshot, not a test: let images decode
    page.screenshot(path=str(out / "split_mnist3.png"), full_page=True)


def reload_during_training(page, server, out: Path) -> None:
    _open(page, server, "Train", "Train")
    page.get_by_role("combobox").first.click()
    page.get_by_role("option", name="CAE", exact=False).first.click()
    wait_for_app(page)
    page.get_by_role("button", name="Start").click()
    page.get_by_text("running", exact=False).first.wait_for(timeout=300_000)
    time.sleep(15)  # some steps on the chart
    page.reload()
    wait_for_app(page)
    page.get_by_text("running", exact=False).first.wait_for(timeout=120_000)
    time.sleep(3)
    page.screenshot(path=str(out / "train_after_reload.png"), full_page=True)
    page.get_by_role("button", name="Cancel").first.click()


def _pick_run(page, server, path: str, heading: str, run_id: str) -> None:
    """Open page ``path`` and choose run ``run_id`` in its "Run" box."""
    _open(page, server, path, heading)
    page.get_by_role("combobox", name="Run").click()
    page.keyboard.type(run_id[-4:])  # the list is virtualised: filter it to the run
    page.get_by_role("option", name=run_id[-4:], exact=False).first.click()
    wait_for_app(page)


def _choose(page, box: str, option: str, exact: bool = True) -> None:
    page.get_by_role("combobox", name=box).click()
    page.get_by_role("option", name=option, exact=exact).first.click()
    wait_for_app(page)


def explain_run(page, server, out: Path, run_id: str, n_images: int = 1,
                prefix: str = "explain") -> None:
    for source, label in (("normal", "Most normal test images"),
                          ("anomalous", "Most anomalous test images")):
        _pick_run(page, server, "Explain", "Explain", run_id)
        _choose(page, "Samples", label, exact=False)
        n = page.get_by_role("spinbutton", name="How many")
        n.fill(str(n_images))
        n.press("Enter")
        wait_for_app(page)
        done = page.get_by_text("IG completeness error", exact=False)
        # a crash, or an error the page shows (e.g. the run's dataset not found: set
        # OCVIS_DATA_ROOT), instead of waiting out the timeout
        crashed = page.get_by_text("This app has encountered an error", exact=False).or_(
            page.locator('[data-testid="stAlertContentError"]'))
        done.or_(crashed).first.wait_for(timeout=900_000)
        if crashed.count():
            page.screenshot(path=str(out / f"{prefix}_{source}_failed.png"), full_page=True)
            raise RuntimeError(f"the Explain page failed on {source} images")
        wait_for_app(page)
        time.sleep(2)  # a screenshot, not a test: let the image decode
        page.screenshot(path=str(out / f"{prefix}_{source}.png"), full_page=True)


def evaluate_run(page, server, out: Path, run_id: str, score: str) -> None:
    _pick_run(page, server, "Evaluate", "Evaluate", run_id)
    _choose(page, "Score", score)
    page.get_by_text("ROC", exact=False).first.wait_for(timeout=300_000)
    time.sleep(2)  # a screenshot, not a test: let the figures draw
    page.screenshot(path=str(out / f"evaluate_{score}.png"), full_page=True)
    # the tables under the figures (the app scrolls inside its own container, so a
    # full-page screenshot holds one window): a taller window, cropped to the tables
    page.set_viewport_size({"width": 1400, "height": 2400})
    time.sleep(2)
    heading = page.get_by_role("heading", name="Metrics").first.bounding_box()
    page.screenshot(path=str(out / f"evaluate_{score}_tables.png"),
                    clip={"x": 0, "y": heading["y"] - 20, "width": 1400, "height": 700})


def latent_run(page, server, out: Path, run_id: str, colour: str) -> None:
    _pick_run(page, server, "Latent_Space", "Latent space", run_id)
    _choose(page, "Colour", colour)
    page.locator(".js-plotly-plot").first.wait_for(timeout=600_000)
    time.sleep(2)  # a screenshot, not a test: let the figure draw
    page.screenshot(path=str(out / f"latent_{colour.replace(' ', '_')}.png"), full_page=True)


def train_options(page, server, out: Path, method: str) -> None:
    from ocvis.methods import get_method

    _open(page, server, "Train", "Train")
    page.get_by_role("combobox", name="Method").click()
    page.get_by_role("option", name=get_method(method).title, exact=True).first.click()
    wait_for_app(page)
    page.get_by_text("Hyperparameters (paper defaults)").first.click()
    wait_for_app(page)
    time.sleep(1)  # a screenshot, not a test: let the expander open
    page.screenshot(path=str(out / f"train_options_{method}.png"), full_page=True)


def _stored_runs_scene(name: str, out: Path) -> None:
    import os

    kind, rid, *more = name.split(":")
    runs = Path(os.environ.get("OCVIS_RUNS_DIR", "runs")).resolve()
    with tempfile.TemporaryDirectory() as tmp, \
            streamlit_server(Path(tmp), env_extra={"OCVIS_RUNS_DIR": str(runs),
                                                   "OCVIS_UMAP_WARMUP": "0"}) as server, \
            browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1500})
        try:
            if kind == "explain":
                explain_run(page, server, out, rid, int(more[0]) if more else 1,
                            more[1] if len(more) > 1 else "explain")
            elif kind == "latent":
                latent_run(page, server, out, rid, more[0])
            else:
                evaluate_run(page, server, out, rid, more[0])
        except Exception:
            print(server.describe(f"the {kind} scene failed"), flush=True)
            raise


SCENES = {"split-mnist3": ({"dataset": "mnist", "normal": [3], "n_train": 4000}, split_mnist3),
          "reload": ({"dataset": "fashion-mnist", "normal": [7], "n_train": 4000},
                     reload_during_training)}


def main(argv: list[str]) -> int:
    *scenes, out = argv
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    for name in scenes:
        if name.split(":")[0] in ("explain", "evaluate", "latent"):
            _stored_runs_scene(name, out)
            print(f"{name}: done", flush=True)
            continue
        if name.startswith("train-options:"):
            method = name.split(":", 1)[1]
            task, fn = {"dataset": "digits", "normal": [0]}, \
                (lambda page, server, out, m=method: train_options(page, server, out, m))
        else:
            task, fn = SCENES[name]
        with tempfile.TemporaryDirectory() as tmp:
            runs = Path(tmp) / "runs"
            runs.mkdir()
            full = {"protocol": "one-class", "ratio": 10.0, "seed": 0, **task}
            (runs / ".ui_state.json").write_text(json.dumps({"task": full}))
            with streamlit_server(Path(tmp)) as server, browser() as b:
                page = b.new_page(viewport={"width": 1400, "height": 3400 if name == "split-mnist3" else 1300})
                fn(page, server, out)
                print(f"{name}: done", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

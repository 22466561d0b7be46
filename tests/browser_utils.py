"""Helpers for the end-to-end browser tests and the UI latency benchmark.

A real ``streamlit run app.py`` server in a subprocess (its own process group, runs and
caches under a temporary folder) and headless Debian Chromium driven by Playwright's sync
API. Nothing is downloaded: the browser is ``/usr/bin/chromium`` or the tests skip.
"""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
HEALTH_TIMEOUT = 60.0
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def chromium_path() -> str | None:
    """``/usr/bin/chromium`` when it exists and the playwright package imports, else None."""
    if not os.path.exists(CHROMIUM):
        return None
    try:
        import playwright  # noqa: F401
        from playwright.sync_api import sync_playwright  # noqa: F401
    except ImportError:
        return None
    return CHROMIUM


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_python() -> str:
    """The project's virtualenv python (``.venv``), else the running interpreter."""
    cand = ROOT / ".venv" / "bin" / "python"
    return str(cand) if cand.exists() else sys.executable


def log_tail(path: Path | str, n: int = 60) -> str:
    try:
        lines = Path(path).read_text(errors="replace").splitlines()
    except OSError:
        return "(no server log)"
    return "\n".join(lines[-n:])


class StreamlitServer:
    """What ``streamlit_server`` yields: ``str(server)`` is the base URL."""

    def __init__(self, url: str, proc: subprocess.Popen, log_path: Path) -> None:
        self.url = url
        self.proc = proc
        self.log_path = log_path

    def __str__(self) -> str:
        return self.url

    def __add__(self, other: str) -> str:  # server + "/Train"
        return self.url + other

    def log_tail(self, n: int = 60) -> str:
        return log_tail(self.log_path, n)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def describe(self, msg: str = "") -> str:
        """``msg`` plus the tail of the server log (for assertion messages)."""
        state = "running" if self.alive() else f"exited with {self.proc.returncode}"
        return f"{msg}\n--- streamlit server ({state}), log {self.log_path}:\n{self.log_tail()}"


def _health_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url + "/_stcore/health", timeout=2) as r:
            return r.status == 200 and r.read().decode().strip() == "ok"
    except (urllib.error.URLError, OSError, ValueError):
        return False


def _stop(proc: subprocess.Popen, timeout: float = 15.0) -> None:
    if proc.poll() is not None:
        return
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # the group we created: the server and its children
    except ProcessLookupError:
        return
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(timeout=timeout)


@contextmanager
def streamlit_server(tmp_path: Path | str, env_extra: dict | None = None,
                     timeout: float = HEALTH_TIMEOUT, cwd: Path | None = None,
                     safe_flags: bool = True) -> Iterator[StreamlitServer]:
    """Start ``streamlit run app.py`` on a free port with runs/caches under ``tmp_path``;
    yield the server (``str()`` gives ``http://127.0.0.1:PORT``); stop it on exit.

    ``cwd``: the folder it starts from (default the project); ``safe_flags=False`` leaves
    the address and usage statistics to the configuration (to test that it holds)."""
    tmp_path = Path(tmp_path)
    tmp_path.mkdir(parents=True, exist_ok=True)
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = dict(os.environ)  # keeps PATH, HOME, OCVIS_DATA_ROOT, ...
    env.update(OCVIS_RUNS_DIR=str(tmp_path / "runs"), OCVIS_CACHE_DIR=str(tmp_path / "cache"),
               PYTHONUNBUFFERED="1")
    env.update({k: str(v) for k, v in (env_extra or {}).items()})
    cmd = [venv_python(), "-m", "streamlit", "run", str(ROOT / "app.py"),
           "--server.port", str(port), "--server.headless", "true"]
    if safe_flags:
        cmd += ["--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false"]
    log_path = tmp_path / "streamlit.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(cmd, cwd=cwd or ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, start_new_session=True)
    server = StreamlitServer(url, proc, log_path)
    try:
        t0 = time.monotonic()
        while not _health_ok(url):
            if proc.poll() is not None:
                raise AssertionError(server.describe("the streamlit server exited at start"))
            if time.monotonic() - t0 > timeout:
                raise AssertionError(server.describe(
                    f"the streamlit server did not answer /_stcore/health in {timeout:.0f} s"))
            time.sleep(0.25)
        yield server
    finally:
        _stop(proc)
        log.close()


@contextmanager
def browser(headless: bool = True):
    """Playwright's sync chromium on the Debian binary (never a downloaded one)."""
    path = chromium_path()
    if path is None:
        raise RuntimeError("no usable chromium (/usr/bin/chromium + the playwright package)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=path, headless=headless, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


# plotly.py >= 6 sends numpy arrays as typed-array specs ({dtype, bdata[, shape]}), so a
# trace's ``x`` in ``gd.data`` is an object; plotly.js keeps the decoded array in
# ``_inputArray`` (and in ``gd._fullData``). Count plain arrays, typed arrays and specs.
_TRACE_POINTS_JS = """(key) => {
    const box = document.querySelector('.st-key-' + CSS.escape(key));
    if (!box) return 0;
    const plot = box.querySelector('.js-plotly-plot');
    if (!plot || !Array.isArray(plot.data)) return 0;
    const size = {i1: 1, u1: 1, u1c: 1, i2: 2, u2: 2, i4: 4, u4: 4, f4: 4, f8: 8,
                  int8: 1, uint8: 1, int16: 2, uint16: 2, int32: 4, uint32: 4,
                  float32: 4, float64: 8};
    const count = (x) => {
        if (x == null) return 0;
        if (typeof x.length === 'number') return x.length;
        if (x._inputArray && typeof x._inputArray.length === 'number')
            return x._inputArray.length;
        if (typeof x.bdata === 'string') {
            if (x.shape) return String(x.shape).split(',')
                .reduce((a, b) => a * (parseInt(b, 10) || 1), 1);
            const b64 = x.bdata.replace(/=+$/, '');
            return Math.floor(Math.floor(b64.length * 3 / 4) / (size[x.dtype] || 8));
        }
        return 0;
    };
    let n = 0;
    for (const t of plot.data) if (t) n += count(t.x);
    return n;
}"""


def trace_points(page, key: str) -> int:
    """Total x points over all traces of the plotly chart keyed ``key`` (0 if absent)."""
    return int(page.evaluate(_TRACE_POINTS_JS, key) or 0)


def has_exception(page) -> bool:
    return page.locator('[data-testid="stException"]').count() > 0


def exception_text(page) -> str:
    loc = page.locator('[data-testid="stException"]')
    return "\n---\n".join(loc.nth(i).inner_text() for i in range(loc.count()))


def wait_for_app(page, timeout: float = 60.0) -> None:
    """Wait until the script run finished (the "Running" status widget is gone) after at
    least one element rendered."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout * 1000)
    page.wait_for_selector('h1', timeout=timeout * 1000)
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if page.locator('[data-testid="stStatusWidget"]').count() == 0:
            return
        time.sleep(0.1)


def sidebar_link(page, path: str = ""):
    """The sidebar navigation link to page ``path`` ("" = the overview, "Train", ...): ocvis
    draws its own links (``st.page_link``) so the overview is named "Overview"."""
    return page.locator(f'[data-testid="stSidebar"] a[data-testid="stPageLink-NavLink"]'
                        f'[href="{path}"]').first


# ------------------------------------------------------------------ plotly scatter selection
SCATTER = '[class*="st-key-scatter-"] .js-plotly-plot'  # the Latent page's keyed scatter(s)

# Every drawn point of the first plot matching ``sel`` in viewport pixels (what
# page.mouse uses), with its trace name up to " (" ("test abnormal"), plus the plot area.
# plotly.js decodes typed arrays into gd._fullData[i].x / .y; xa._offset + xa.d2p(x) is the
# pixel from the plot div's left edge (linear axes).
_SCATTER_PX_JS = """(sel) => {
    const gd = document.querySelector(sel);
    if (!gd || !gd._fullLayout || !Array.isArray(gd._fullData)) return null;
    const xa = gd._fullLayout.xaxis, ya = gd._fullLayout.yaxis;
    if (!xa || !ya || typeof xa.d2p !== 'function') return null;
    const r = gd.getBoundingClientRect();
    const left = r.left + xa._offset, top = r.top + ya._offset;
    const points = [];
    for (const t of gd._fullData) {
        if (!t || t.visible === false || t.visible === 'legendonly' || !t.x || !t.y) continue;
        const name = String(t.name || '').split(' (')[0];
        const n = t._length != null ? t._length : Math.min(t.x.length, t.y.length);
        for (let j = 0; j < n; j++) {
            const px = left + xa.d2p(t.x[j]), py = top + ya.d2p(t.y[j]);
            if (Number.isFinite(px) && Number.isFinite(py)) points.push([px, py, name]);
        }
    }
    return {points, area: [left, top, xa._length, ya._length],
            dragmode: gd._fullLayout.dragmode};
}"""


def scatter_pixels(page, selector: str = SCATTER) -> dict | None:
    """``{"points": [[x, y, trace_name], ...], "area": [left, top, width, height],
    "dragmode": ...}`` of the first plotly chart matching ``selector``, in viewport pixels;
    None while it is not drawn."""
    return page.evaluate(_SCATTER_PX_JS, selector)


def lasso(page, cx: float, cy: float, r: float, n: int = 24) -> list[tuple[float, float]]:
    """Draw a closed lasso (regular ``n``-gon of radius ``r`` around (cx, cy)) with the mouse;
    the plot's dragmode must be "lasso". Returns the vertices."""
    import math

    verts = [(cx + r * math.cos(2 * math.pi * k / n), cy + r * math.sin(2 * math.pi * k / n))
             for k in range(n + 1)]
    page.mouse.move(*verts[0])
    page.mouse.down()
    for x, y in verts[1:]:
        page.mouse.move(x, y, steps=2)
    page.mouse.up()
    return verts


def box_drag(page, x0: float, y0: float, x1: float, y1: float) -> None:
    """Drag a rectangle from (x0, y0) to (x1, y1) (box select / zoom, by the dragmode)."""
    page.mouse.move(x0, y0)
    page.mouse.down()
    page.mouse.move(x1, y1, steps=8)
    page.mouse.up()

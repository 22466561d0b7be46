"""End to end in a real browser: the digits demo on the overview page, live loss curves,
page switches while it trains, and the final message.

Needs Debian's /usr/bin/chromium and the playwright package (no browser is downloaded);
skips otherwise. Takes about a minute on 2 cores.
"""
from __future__ import annotations

import time

import pytest

from browser_utils import (browser, chromium_path, exception_text, has_exception,
                           sidebar_link, streamlit_server, trace_points, wait_for_app)

pytestmark = pytest.mark.skipif(
    chromium_path() is None,
    reason="browser test needs /usr/bin/chromium (apt-get install chromium) and the "
           "playwright python package; no browser is downloaded")

DEMO_TIMEOUT = 240.0  # click -> "Demo finished"
FIRST_POINT_TIMEOUT = 90.0
GROWTH_WINDOW = 30.0


def _no_exception(page, server, where: str) -> None:
    if has_exception(page):
        raise AssertionError(server.describe(f"st.exception on {where}:\n"
                                             f"{exception_text(page)}"))


def _visit(page, server, path: str, heading: str, where: str) -> None:
    """Click the sidebar link to ``path``, wait for the page and check it has no error."""
    sidebar_link(page, path).click()
    page.wait_for_url(f"**/{path}", timeout=30_000)
    try:
        page.get_by_role("heading", name=heading).first.wait_for(timeout=60_000)
    except Exception as exc:  # noqa: BLE001 - add the server log
        raise AssertionError(server.describe(f"{where} did not show '{heading}': {exc}"))
    wait_for_app(page)
    _no_exception(page, server, where)


def test_digits_demo_live_chart(tmp_path):
    t_start = time.monotonic()
    with streamlit_server(tmp_path) as server, browser() as b:
        page = b.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(60_000)
        try:
            page.goto(server.url)
            wait_for_app(page)
            button = page.get_by_role("button", name="Run the digits demo")
            button.wait_for()
            _no_exception(page, server, "the overview page")

            # -- start the demo; the live chart appears and grows -------------------------
            button.click()
            t_click = time.monotonic()
            finished = page.get_by_text("Demo finished", exact=False)
            while trace_points(page, "demo-loss") == 0:
                if finished.count():
                    break
                _no_exception(page, server, "the overview page after the click")
                assert time.monotonic() - t_click < FIRST_POINT_TIMEOUT, server.describe(
                    f"no point on the demo loss chart {FIRST_POINT_TIMEOUT:.0f} s after "
                    "the click")
                time.sleep(0.2)
            counts = [(time.monotonic() - t_click, trace_points(page, "demo-loss"))]
            increases = 0
            t_grow = time.monotonic()
            while increases < 3 and time.monotonic() - t_grow < GROWTH_WINDOW:
                if finished.count():
                    break
                time.sleep(0.2)
                n = trace_points(page, "demo-loss")
                if n != counts[-1][1]:
                    counts.append((time.monotonic() - t_click, n))
                    increases += n > counts[-2][1]
            assert increases >= 2, server.describe(
                f"the demo loss chart did not grow while training: (s, points) {counts}")
            _no_exception(page, server, "the overview page while training")

            # -- switch pages while the jobs run ------------------------------------------
            _visit(page, server, "Train", "Train", "the Train page during the demo")
            page.locator(".st-key-train-loss").first.wait_for(timeout=60_000)
            _no_exception(page, server, "the Train page during the demo")

            _visit(page, server, "", "ocvis — deep one-class classification",
                   "the overview page after the Train page")
            chart_or_done = page.locator(".st-key-demo-loss").or_(finished)
            try:
                chart_or_done.first.wait_for(timeout=60_000)
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(server.describe(
                    f"back on the overview: neither the demo chart nor the final message "
                    f"({exc})"))
            _no_exception(page, server, "the overview page after the Train page")

            # -- the end ------------------------------------------------------------------
            left = DEMO_TIMEOUT - (time.monotonic() - t_click)
            try:
                finished.first.wait_for(timeout=max(1.0, left) * 1000)
            except Exception as exc:  # noqa: BLE001
                raise AssertionError(server.describe(
                    f"no 'Demo finished' {DEMO_TIMEOUT:.0f} s after the click ({exc})"))
            wait_for_app(page)
            _no_exception(page, server, "the overview page at the end")
            assert "AUROC" in finished.first.inner_text()
            assert trace_points(page, "demo-loss") > 0, server.describe(
                "the finished demo shows an empty loss chart")
        finally:
            try:
                page.screenshot(path=str(tmp_path / "demo.png"), full_page=True)
            except Exception:  # noqa: BLE001 - a screenshot never hides the real failure
                pass
    print(f"browser demo test: {time.monotonic() - t_start:.0f} s; chart growth {counts}")

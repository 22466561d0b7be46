"""The faults an audit found by probing (issue 12); each test failed on the code before
its fix."""
from __future__ import annotations

import io
import json
import os
import struct
import subprocess
import sys
import threading
import zipfile
import zlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from ocvis.errors import DataError, OcvisWarning
from ocvis.runs import RunStore

ROOT = Path(__file__).resolve().parents[1]
PAGES = ROOT / "pages"
DIGITS = {"dataset": "digits", "protocol": "one-class", "normal": [0], "n_train": None,
          "ratio": 10.0, "seed": 0}


@pytest.fixture(autouse=True)
def _fresh(fresh_streamlit):
    yield


def _png(seed: int = 0, size=(12, 12)) -> bytes:
    buf = io.BytesIO()
    rng = np.random.default_rng(seed)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(buf, "PNG")
    return buf.getvalue()


def _zip_bytes(entries: dict, compression=zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression) as z:
        for name, data in entries.items():
            z.writestr(name, data)
    return buf.getvalue()


def _tiny_run(store: RunStore, method: str = "pca", task: dict | None = None) -> str:
    from ocvis.experiment import run_experiment

    return run_experiment(dict(task or DIGITS), method, "tiny" if method == "ics" else "cpu",
                          {"reuse_pretrain": False} if method == "ics" else {},
                          store=store)["id"]


# --------------------------------------------------------------------------- run store
def test_malformed_run_json_field_is_listed_as_broken():
    store = RunStore()
    good = _tiny_run(store)
    bad = store.root / "20260101-000000-pca-x-0000"
    bad.mkdir()
    (bad / "run.json").write_text(json.dumps({"id": bad.name, "method": "pca",
                                              "status": "done", "created": "yesterday"}))
    runs = {r["id"]: r for r in store.list()}  # raised TypeError (str vs float) before
    assert runs[good]["status"] == "done"
    assert runs[bad.name]["status"] == "broken" and "created" in runs[bad.name]["_broken"]
    for page in ("7_Runs.py", "5_Evaluate.py", "4_Latent_Space.py", "6_Explain.py"):
        at = AppTest.from_file(str(PAGES / page), default_timeout=120).run()
        assert not at.exception, (page, at.exception)


def test_reused_pid_does_not_keep_a_run_running():
    """A run whose recorded process id now belongs to another live process (here: this
    one) is not running unless its lease is renewed; it can then be deleted."""
    from ocvis.ui.runs_page import delete_run

    store = RunStore()
    rid = "20260101-000000-ics-ghost-0000"
    store.path(rid).mkdir(parents=True)
    # written by a process that has ended; its pid now belongs to a live process (this one)
    (store.path(rid) / "run.json").write_text(json.dumps(
        {"id": rid, "method": "ics", "status": "running", "pid": os.getpid(),
         "created": 1.0e9}))
    assert store.read(rid)["status"] == "interrupted"
    delete_run(rid)
    assert not store.path(rid).exists()


def test_missing_or_truncated_arrays_are_messages_on_every_page():
    store = RunStore()
    rid = _tiny_run(store, "ics")
    npz = store.path(rid) / "arrays.npz"
    data = npz.read_bytes()
    for damage in ("truncated", "missing"):
        if damage == "truncated":
            npz.write_bytes(data[: len(data) // 3])
        else:
            npz.unlink()
        for page in ("4_Latent_Space.py", "5_Evaluate.py", "6_Explain.py"):
            import streamlit as st

            st.cache_data.clear()
            at = AppTest.from_file(str(PAGES / page), default_timeout=120).run()
            assert not at.exception, (damage, page, at.exception)
            assert at.error, (damage, page, "no message for the damaged run")


# --------------------------------------------------------------------------- uploads
def test_concurrent_uploads_with_the_same_name_keep_every_file(tmp_path):
    from ocvis.uploads import extract_zip

    n = 300
    data = _zip_bytes({f"set/{'ab'[i % 2]}/{i}.png": _png(i) for i in range(n)})
    start = threading.Barrier(2)
    reports, errors = [], []

    def upload():
        start.wait()
        try:
            reports.append(extract_zip(io.BytesIO(data), "set.zip", tmp_path))
        except Exception as exc:  # noqa: BLE001 - recorded for the assertion
            errors.append(exc)

    threads = [threading.Thread(target=upload) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    paths = {r.path for r in reports}
    assert len(paths) == 2
    for p in paths:
        assert sum(1 for f in p.rglob("*.png")) == n
    assert not list(tmp_path.glob(".*partial"))


def _patch_member(data: bytes, name: str, *, crc: int | None = None,
                  corrupt: bool = False) -> bytes:
    """Damage one member of a zip: its CRC in both headers, or bytes of its data."""
    buf = bytearray(data)
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        info = z.getinfo(name)
    off = info.header_offset
    n_name, n_extra = struct.unpack("<HH", buf[off + 26:off + 30])
    start = off + 30 + n_name + n_extra
    if crc is not None:
        struct.pack_into("<I", buf, off + 14, crc)
        cd = buf.find(b"PK\x01\x02")
        while cd != -1:
            if buf[cd + 46:cd + 46 + len(name)] == name.encode():
                struct.pack_into("<I", buf, cd + 16, crc)
            cd = buf.find(b"PK\x01\x02", cd + 4)
    if corrupt:
        for k in range(start + 2, start + min(info.compress_size, 40)):
            buf[k] ^= 0xA5
    return bytes(buf)


def test_damaged_zip_members_are_skipped_and_named(tmp_path):
    from ocvis.uploads import extract_zip

    data = _zip_bytes({"c/ok.png": _png(0), "c/badcrc.png": _png(1), "c/deflate.png": _png(2),
                       "d/ok.png": _png(3)})
    data = _patch_member(data, "c/badcrc.png", crc=0x12345678)
    data = _patch_member(data, "c/deflate.png", corrupt=True)
    report = extract_zip(io.BytesIO(data), "damaged.zip", tmp_path)
    assert report.images == 2 and report.skipped_corrupt == 2
    text = " ".join(report.messages)
    assert "c/badcrc.png" in text and "c/deflate.png" in text


def test_disguised_and_oversized_images_are_refused(tmp_path):
    """A PostScript file named .png is not decoded (PIL would hand it to Ghostscript), and an
    image above the per-image pixel cap is skipped although PIL's own cap allows it."""
    from ocvis.data import load_image_folder
    from ocvis.uploads import extract_zip

    eps = (b"%!PS-Adobe-3.0 EPSF-3.0\n%%BoundingBox: 0 0 10 10\n"
           b"newpath 0 0 moveto 10 10 lineto stroke\nshowpage\n%%EOF\n")
    side = 4200  # 17.6 MP: above our cap (16.8 MP), far below PIL's own ~89 MP
    big = io.BytesIO()
    Image.new("L", (side, side)).save(big, "PNG")
    for d in ("a", "b"):
        (tmp_path / "imgs" / d).mkdir(parents=True)
        for i in range(3):
            (tmp_path / "imgs" / d / f"{i}.png").write_bytes(_png(i))
    (tmp_path / "imgs" / "a" / "ps.png").write_bytes(eps)
    (tmp_path / "imgs" / "b" / "big.png").write_bytes(big.getvalue())
    with pytest.warns(OcvisWarning, match="2 unreadable"):
        ds = load_image_folder(tmp_path / "imgs", use_cache=False)
    assert ds.skipped == 2 and len(ds.x_train) + len(ds.x_test) == 6
    report = extract_zip(io.BytesIO(_zip_bytes({"a/ps.png": eps, "a/ok.png": _png(0),
                                                "b/big.png": big.getvalue(),
                                                "b/ok.png": _png(1)})), "x.zip",
                         tmp_path / "up")
    assert report.images == 2 and report.skipped_corrupt == 2
    assert "a/ps.png" in " ".join(report.messages) and "b/big.png" in " ".join(report.messages)


# --------------------------------------------------------------------------- folders
@pytest.mark.parametrize("path", ["/", "/etc", "/usr", "/proc/self"])
def test_folder_datasets_only_below_configured_roots(tmp_path, monkeypatch, path):
    from ocvis.data import load_dataset

    monkeypatch.setenv("OCVIS_FOLDER_ROOTS", str(tmp_path))
    with pytest.raises(DataError, match="outside the folders"):
        load_dataset(f"folder:{path}")


def test_folder_walk_is_guarded_even_when_allowed(monkeypatch):
    """With the whole disk allowed, special and system folders still give a clear error,
    never a crash or an endless walk."""
    from ocvis.data import load_dataset

    monkeypatch.setenv("OCVIS_FOLDER_ROOTS", "/")
    for path in ("/proc/self", "/etc"):
        with pytest.raises(DataError):
            load_dataset(f"folder:{path}")


def test_data_page_refuses_a_folder_outside_the_roots(tmp_path, monkeypatch):
    monkeypatch.setenv("OCVIS_FOLDER_ROOTS", str(tmp_path))
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    at.selectbox(key="data_dataset").set_value("folder").run()
    at.text_input(key="data_folder").set_value("/etc").run()
    assert not at.exception
    assert any("outside the folders" in e.value for e in at.error)
    assert not at.get("imgs") and not at.get("image")


def test_one_image_per_class_warns_about_the_empty_test_set(tmp_path):
    for c in ("a", "b", "c"):
        (tmp_path / "one" / c).mkdir(parents=True)
        (tmp_path / "one" / c / "x.png").write_bytes(_png(ord(c)))
    at = AppTest.from_file(str(PAGES / "1_Data.py"), default_timeout=60).run()
    at.selectbox(key="data_dataset").set_value("folder").run()
    at.text_input(key="data_folder").set_value(str(tmp_path / "one")).run()
    assert not at.exception
    assert any(m.label == "Test images" and str(m.value) == "0" for m in at.metric)
    assert any("test set is empty" in w.value for w in at.warning)


# --------------------------------------------------------------------------- settings
def test_nan_and_unknown_settings_are_clear_errors_before_training():
    from ocvis.experiment import run_experiment
    from ocvis.methods import make_method
    from ocvis.train import Hooks

    class Steps(Hooks):
        n = 0

        def on_step(self, e):
            Steps.n += 1

    for key in ("lr", "rho"):
        with pytest.raises(DataError, match=f"{key}=nan is not a finite number"):
            make_method("ics", "tiny", **{key: float("nan")}).fit(
                np.random.rand(20, 1, 32, 32).astype(np.float32), Steps())
    assert Steps.n == 0  # refused before the first step
    store = RunStore()
    with pytest.raises(DataError, match="rho=nan"):
        run_experiment(DIGITS, "ics", "tiny", {"rho": float("nan")}, store=store)
    (run,) = store.list()
    assert run["status"] == "failed" and "rho=nan" in run["error"]
    assert store.history(run["id"]) == []
    with pytest.raises(DataError, match="unknown setting"):
        make_method("ics", "tiny", no_such_setting=1)
    proc = subprocess.run([sys.executable, "-m", "ocvis", "run", "--method", "pca",
                           "--no-store", "--set", "foo=1"], cwd=ROOT, capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 2 and "unknown setting 'foo'" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_a_failing_hook_does_not_end_training(caplog):
    from ocvis.methods import make_method
    from ocvis.train import Hooks

    class Broken(Hooks):
        calls = 0

        def on_step(self, e):
            Broken.calls += 1
            raise BrokenPipeError("stdout closed")

        def on_status(self, m):
            raise OSError("disk full")

    x = np.random.default_rng(0).random((40, 1, 32, 32)).astype(np.float32)
    m = make_method("cae", "tiny", reuse_pretrain=False).fit(x, Broken())
    assert Broken.calls == len(m.history) > 1  # every step still reached the hook
    assert np.isfinite(m.score_samples(x)).all()
    assert "hook on_step failed" in caplog.text


def test_cli_progress_on_a_closed_pipe_still_stores_the_run(tmp_path):
    env = dict(os.environ, OCVIS_RUNS_DIR=str(tmp_path / "runs"))
    proc = subprocess.Popen([sys.executable, "-m", "ocvis", "run", "--method", "cae",
                             "--preset", "tiny", "--projection", "none", "--set",
                             "reuse_pretrain=false"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader went away (`... | head -0`)
    proc.wait(timeout=600)
    runs = RunStore(tmp_path / "runs").list()
    assert [r["status"] for r in runs] == ["done"], proc.stderr.read().decode()[-2000:]


# --------------------------------------------------------------------------- server
def test_safe_settings_hold_when_started_from_another_folder(tmp_path):
    """Started from elsewhere, the dashboard still listens on localhost only, hides error
    details and sends no usage statistics (the script-level config and ocvis.ui)."""
    from browser_utils import streamlit_server

    code = ("import streamlit.config as c, sys; c._main_script_path = sys.argv[1]; "
            "o = c.get_config_options(force_reparse=True); "
            "print(o['client.showErrorDetails'].value, o['browser.gatherUsageStats'].value, "
            "o['server.address'].value); import ocvis.ui; "
            "print(c.get_option('client.showErrorDetails'))")
    out = subprocess.run([sys.executable, "-c", code, str(ROOT / "app.py")], cwd=tmp_path,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True,
                         text=True, timeout=120)
    assert out.stdout.split() == ["none", "False", "localhost", "none"], out.stderr
    with streamlit_server(tmp_path / "srv", cwd=tmp_path, safe_flags=False) as server:
        port = int(str(server).rsplit(":", 1)[1])
        listening = []
        for table in ("/proc/net/tcp", "/proc/net/tcp6"):
            try:
                lines = Path(table).read_text().splitlines()[1:]
            except OSError:
                continue
            for line in lines:
                local, state = line.split()[1], line.split()[3]
                addr, p = local.split(":")
                if int(p, 16) == port and state == "0A":  # LISTEN
                    listening.append(addr)
        assert listening and all(a in ("0100007F", "00000000000000000000000001000000")
                                 for a in listening), listening


def test_sidebar_names_pages_and_follows_the_shown_run(tmp_path):
    """The overview is "Overview", not "app"; a page that shows a run trained on an
    uploaded folder says so in the sidebar instead of the Data page's digits task."""
    for c in ("cats", "dogs"):
        (tmp_path / "pets" / c).mkdir(parents=True)
        for i in range(12):
            (tmp_path / "pets" / c / f"{i}.png").write_bytes(_png(i + (50 if c == "dogs" else 0)))
    store = RunStore()
    task = dict(DIGITS, dataset=f"folder:{tmp_path / 'pets'}", normal=[1])
    rid = _tiny_run(store, "pca", task)
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60).run()
    assert not at.exception
    links = [el for el in at.sidebar if getattr(el, "type", "") == "page_link" or
             "page_link" in str(getattr(el, "proto", ""))[:40]]
    labels = " ".join(str(el.proto) for el in links)
    assert "Overview" in labels and "Latent space" in labels, labels
    for page in ("5_Evaluate.py", "6_Explain.py"):
        at = AppTest.from_file(str(PAGES / page), default_timeout=120).run()
        assert not at.exception
        side = " ".join(m.value for m in at.sidebar.markdown)
        assert "folder pets" in side and "dogs" in side, side
        assert rid[-9:] in side

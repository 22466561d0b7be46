"""Background jobs in a worker process: queueing, live history, cancel, failures, a crashed
worker, runs on disk. Timings (how fast a cancel ends a job) are measured in bench/, not
asserted here."""
import os

from ocvis.jobs import JobManager
from ocvis.runs import RunStore
from waiting import GENEROUS, wait_until


def _manager(tmp_path, **kw):
    return JobManager(RunStore(tmp_path / "runs"), torch_threads=1, **kw)


def test_jobs_run_in_another_process(tmp_path):
    jm = _manager(tmp_path)
    job = jm.wait(jm.submit("test", "pid", "job_targets:pid"), GENEROUS)
    assert job.status == "done", job.error
    assert job.result != os.getpid() and job.result == job.worker_pid
    assert job.worker_pid in jm.worker_pids
    # a training job too: its history reaches this process over the pipe
    tr = jm.submit_experiment({"dataset": "digits", "normal": [0], "seed": 0}, "cae", "tiny",
                              {"reuse_pretrain": False})
    assert jm.wait(tr, GENEROUS).status == "done", tr.error
    assert tr.worker_pid == job.worker_pid != os.getpid()
    assert tr.threads == 1
    assert jm.store.read(tr.run_id)["threads"] == 1  # the run records the threads used


def test_experiment_job_records_history_and_run(tmp_path):
    jm = _manager(tmp_path)
    job = jm.submit_experiment({"dataset": "digits", "normal": [0], "seed": 0}, "ics", "tiny",
                               {"reuse_pretrain": False})
    assert job.run_id and job.status in ("queued", "running")
    jm.wait(job, GENEROUS)
    assert job.status == "done", job.error
    assert job.history and {h["stage"] for h in job.history} == {"pretrain", "joint"}
    assert job.view()["fraction"] == 1.0
    run = jm.store.read(job.run_id)
    assert run["status"] == "done" and "auroc" in run["metrics"]
    assert len(jm.store.history(job.run_id)) == len(job.history)
    assert not (jm.store.path(job.run_id) / ".lease").exists()  # released when it ended


def test_second_job_is_queued_not_lost(tmp_path):
    jm = _manager(tmp_path)
    started, gate = tmp_path / "started", tmp_path / "gate"
    a = jm.submit("test", "a", "job_targets:gated",
                  {"started": str(started), "gate": str(gate), "value": "first"})
    b = jm.submit("test", "b", "job_targets:value", {"value": "second"})
    wait_until(started.exists, what="the first job to start")
    assert a.status == "running" and b.status == "queued"
    assert jm.queued() == [b] and jm.counts() == {"running": 1, "queued": 1, "threads": 1}
    gate.touch()
    jm.wait(b, GENEROUS)
    assert (a.result, b.result) == ("first", "second")


def test_cancel_running_job(tmp_path):
    jm = _manager(tmp_path)
    job = jm.submit_experiment({"dataset": "digits", "normal": [1]}, "cae", "cpu",
                               {"pretrain_epochs": 200, "reuse_pretrain": False})
    wait_until(lambda: len(job.history) >= 3, what="three training steps")
    assert job.status == "running"
    n = len(job.history)
    jm.cancel(job.id)
    jm.wait(job, GENEROUS)
    assert job.status == "cancelled"
    assert n <= len(job.history) < 200 * 3  # it stopped long before the end
    run = jm.store.read(job.run_id)
    assert run["status"] == "cancelled"
    assert len(jm.store.history(job.run_id)) >= 3  # the curves so far are kept
    # the status and the message tell the same moment
    v = job.view()
    assert f"epoch {v['epoch']}" in job.message and f"after step {v['step']}" in job.message


def test_cancel_queued_job(tmp_path):
    jm = _manager(tmp_path)
    started, gate = tmp_path / "started", tmp_path / "gate"
    a = jm.submit("test", "a", "job_targets:gated", {"started": str(started), "gate": str(gate)})
    b = jm.submit_experiment({"dataset": "digits", "normal": [1]}, "pca")
    c = jm.submit("test", "c", "job_targets:value", {"value": "after b"})
    jm.cancel(b.id)
    assert b.status == "cancelled"
    gate.touch()
    assert jm.wait(c, GENEROUS).result == "after b"  # the worker has passed b
    assert b.status == "cancelled" and b.result is None and a.status == "done"
    assert jm.store.read(b.run_id)["status"] == "cancelled"


def test_failing_job_reports_readable_error(tmp_path):
    jm = _manager(tmp_path)
    job = jm.wait(jm.submit("test", "boom", "job_targets:steps_then_fail"), GENEROUS)
    assert job.status == "failed" and "diverged" in job.error
    assert len(job.history) == 1  # the curve so far is kept
    ok = jm.wait(jm.submit("test", "next", "job_targets:value", {"value": 1}), GENEROUS)
    assert ok.status == "done" and ok.result == 1  # the worker survived


def test_a_crashing_worker_fails_its_job_not_the_server(tmp_path):
    jm = _manager(tmp_path)
    run_id = jm.store.create({"method": "x", "task_name": "crash"})
    crash = jm.wait(jm.submit("test", "crash", "job_targets:crash", run_id=run_id), GENEROUS)
    assert crash.status == "failed" and "worker process ended unexpectedly" in crash.error
    assert jm.store.read(run_id)["status"] == "failed"
    after = jm.wait(jm.submit("test", "next", "job_targets:pid"), GENEROUS)
    assert after.status == "done" and after.result != crash.worker_pid  # a new worker
    assert len(jm.worker_pids) == 2


def test_split_job(tmp_path):
    jm = _manager(tmp_path)
    job = jm.wait(jm.submit_split({"dataset": "digits", "normal": [3]}, "tiny"), GENEROUS)
    assert job.status == "done", job.error
    arr = jm.store.arrays(job.run_id)
    n = len(arr["similarity"])
    assert arr["atypical"].sum() == int(0.1 * n)
    assert arr["recon_uint8"].shape == (n, 1, 32, 32)
    assert jm.store.read(job.run_id)["kind"] == "split"


def test_status_fields_agree(tmp_path):
    """One view of a running job: stage, epoch, step, fraction and ETA from the same moment,
    the fraction within the stage's share, the queue counts consistent with the job."""
    jm = _manager(tmp_path)
    job = jm.submit_experiment({"dataset": "digits", "normal": [2]}, "ics", "cpu",
                               {"pretrain_epochs": 100, "reuse_pretrain": False})
    wait_until(lambda: len(job.history) >= 20, what="twenty steps")
    v = job.view()
    assert v["status"] == "running" and v["stage"] == "pretrain" and v["n_stages"] == 2
    done = (v["epoch"] - 1) * v["steps"] + v["step"]
    assert 0 < v["fraction"] <= 0.5 and abs(v["fraction"] - 0.5 * done / (
        v["epochs"] * v["steps"])) < 1e-9
    assert v["eta"] is not None and v["eta"] > 0 and v["step_seconds"] > 0
    assert jm.counts()["running"] == 1 and jm.active() is job
    from ocvis.ui.jobs import job_status_line

    line = job_status_line(v)
    assert f"epoch {v['epoch']}/{v['epochs']}" in line and f"step {v['step']}/" in line
    assert "1 torch thread" in line
    jm.cancel(job.id)
    jm.wait(job, GENEROUS)


def test_idle_worker_projects_runs_that_have_none(tmp_path, monkeypatch):
    """Idle, the worker gives every finished run without one a projection (runs of
    `bench --store` or older ones), newest first, once; failed runs are left alone."""
    import numpy as np

    monkeypatch.setenv("OCVIS_UMAP_WARMUP", "1")
    monkeypatch.setenv("OCVIS_IDLE_PROJECTION", "pca")  # fast, same mechanism as UMAP
    monkeypatch.setenv("OCVIS_IDLE_SECONDS", "0.2")
    store = RunStore(tmp_path / "runs")
    ids = {}
    rng = np.random.default_rng(0)
    for k, (name, status) in enumerate((("old", "done"), ("has", "done"), ("bad", "failed"),
                                        ("new", "done"))):
        ids[name] = store.create({"kind": "experiment", "method": name, "status": status,
                                  "seed": 3, "created": 1000.0 + k})
        store.write_arrays(ids[name], train_latent=rng.random((20, 4)),
                           test_latent=rng.random((30, 4)), y_test=np.arange(30) % 2)
    store.write_file(ids["has"], "proj-pca-abc.npy", b"")
    jm = JobManager(store, torch_threads=1, warm=True)
    assert jm.idle_swept.wait(GENEROUS)  # the worker found nothing more to project
    done = {n for n, rid in ids.items() if list(store.path(rid).glob("proj-pca-*.npy"))}
    assert done == {"old", "has", "new"}
    assert len(list(store.path(ids["has"]).glob("proj-pca-*.npy"))) == 1  # left alone


def test_projection_already_queued_is_followed_not_repeated(tmp_path):
    """The Latent page asking for a projection that training already queued gets that job
    (one computation, not two in a row); once it has ended a new request queues again."""
    import numpy as np

    store = RunStore(tmp_path / "runs")
    rng = np.random.default_rng(0)
    for rid in ("r1", "r2"):
        store.path(rid).mkdir(parents=True)
        store.write_arrays(rid, train_latent=rng.random((20, 4)),
                           test_latent=rng.random((30, 4)), y_test=np.arange(30) % 2)
    jm = JobManager(store, torch_threads=1)
    started, gate = tmp_path / "started", tmp_path / "gate"
    jm.submit("test", "busy", "job_targets:gated", {"started": str(started),
                                                     "gate": str(gate)})
    first = jm.submit_projection("r1", "pca")
    assert jm.submit_projection("r1", "pca") is first
    other_method = jm.submit_projection("r1", "tsne")
    other_run = jm.submit_projection("r2", "pca")
    assert len({first.id, other_method.id, other_run.id}) == 3
    gate.touch()
    for j in (first, other_method, other_run):
        assert jm.wait(j, GENEROUS).status == "done", j.error
    assert first.result == [50, 2]
    again = jm.submit_projection("r1", "pca")
    assert again is not first
    assert jm.wait(again, GENEROUS).result == [50, 2]


def test_a_user_job_preempts_a_background_job(tmp_path):
    """The projection ocvis queues after training must not make a click on Start wait:
    the user's job runs first, the background job is queued again and ends later."""
    jm = _manager(tmp_path)
    started, gate = tmp_path / "started", tmp_path / "gate"
    bg = jm.submit("test", "bg", "job_targets:gated",
                   {"started": str(started), "gate": str(gate), "value": "bg"},
                   background=True)
    wait_until(started.exists, what="the background job to start")
    first_pid = int(started.read_text())
    started.unlink()
    user = jm.submit("test", "user", "job_targets:value", {"value": "user"})
    assert jm.wait(user, GENEROUS).result == "user"  # without the gate: bg was preempted
    wait_until(started.exists, what="the background job to start again")
    assert int(started.read_text()) != first_pid and bg.status == "running"
    gate.touch()
    assert jm.wait(bg, GENEROUS).result == "bg"


def test_a_user_job_does_not_wait_for_idle_work(tmp_path, monkeypatch):
    """While idle, the worker compiles UMAP (half a minute, not interruptible); a job
    submitted meanwhile gets a fresh worker instead of waiting for the compile."""
    monkeypatch.setenv("OCVIS_UMAP_WARMUP", "1")
    monkeypatch.setenv("OCVIS_IDLE_SECONDS", "0.1")
    jm = _manager(tmp_path, warm=True)
    wait_until(lambda: jm._idle_busy, what="the worker to start its idle work")
    busy_pid = jm.worker_pids[-1]
    job = jm.wait(jm.submit("test", "pid", "job_targets:pid"), GENEROUS)
    assert job.status == "done" and job.result != busy_pid
    assert len(jm.worker_pids) == 2

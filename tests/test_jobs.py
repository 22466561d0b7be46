"""Background jobs: queueing, live history, cancel, failures, run on disk. Timings (how
fast a cancel ends a job) are measured in bench/, not asserted here."""
import threading


from ocvis.errors import TrainingError
from ocvis.jobs import JobManager
from ocvis.runs import RunStore
from waiting import wait_until


def _manager(tmp_path):
    return JobManager(RunStore(tmp_path), torch_threads=1)


def test_experiment_job_records_history_and_run(tmp_path):
    jm = _manager(tmp_path)
    job = jm.submit_experiment({"dataset": "digits", "normal": [0], "seed": 0}, "ics", "tiny",
                               {"reuse_pretrain": False})
    assert job.run_id and job.status in ("queued", "running")
    jm.wait(job, 300)
    assert job.status == "done", job.error
    assert job.history and {h["stage"] for h in job.history} == {"pretrain", "joint"}
    assert job.progress["fraction"] == 1.0
    run = jm.store.read(job.run_id)
    assert run["status"] == "done" and "auroc" in run["metrics"]
    assert len(jm.store.history(job.run_id)) == len(job.history)


def test_second_job_is_queued_not_lost(tmp_path):
    jm = _manager(tmp_path)
    gate, started = threading.Event(), threading.Event()

    def blocker(job, hooks):
        started.set()
        gate.wait(300)
        return "first"

    a = jm.submit("test", "a", blocker)
    b = jm.submit("test", "b", lambda job, hooks: "second")
    assert started.wait(300)
    assert a.status == "running" and b.status == "queued"
    assert jm.queued() == [b]
    gate.set()
    jm.wait(b, 300)
    assert (a.result, b.result) == ("first", "second")


def test_cancel_running_job(tmp_path):
    jm = _manager(tmp_path)
    job = jm.submit_experiment({"dataset": "digits", "normal": [1]}, "cae", "cpu",
                               {"pretrain_epochs": 200, "reuse_pretrain": False})
    wait_until(lambda: len(job.history) >= 3, what="three training steps")
    assert job.status == "running"
    n = len(job.history)
    jm.cancel(job.id)
    jm.wait(job, 300)
    assert job.status == "cancelled"
    assert len(job.history) < 200 * 3  # it stopped long before the end
    assert len(job.history) >= n
    run = jm.store.read(job.run_id)
    assert run["status"] == "cancelled"
    assert len(jm.store.history(job.run_id)) >= 3  # the curves so far are kept


def test_cancel_queued_job(tmp_path):
    jm = _manager(tmp_path)
    gate = threading.Event()
    a = jm.submit("test", "a", lambda job, hooks: gate.wait(300))
    b = jm.submit_experiment({"dataset": "digits", "normal": [1]}, "pca")
    c = jm.submit("test", "c", lambda job, hooks: "after b")
    jm.cancel(b.id)
    assert b.status == "cancelled"
    gate.set()
    assert jm.wait(c, 300).result == "after b"  # the worker has passed b
    assert b.status == "cancelled" and b.result is None
    assert jm.store.read(b.run_id)["status"] == "cancelled"


def test_failing_job_reports_readable_error(tmp_path):
    jm = _manager(tmp_path)

    def boom(job, hooks):
        hooks.on_step({"stage": "s", "epoch": 1, "epochs": 1, "step": 1, "steps": 2,
                       "global_step": 1, "losses": {"rec": 1.0}})
        raise TrainingError("the loss diverged (rec is NaN)")

    job = jm.wait(jm.submit("test", "boom", boom), 300)
    assert job.status == "failed" and "diverged" in job.error
    assert len(job.history) == 1  # the curve so far is kept
    ok = jm.wait(jm.submit("test", "next", lambda j, h: 1), 300)
    assert ok.status == "done"  # the worker survived


def test_split_job(tmp_path):
    jm = _manager(tmp_path)
    job = jm.wait(jm.submit_split({"dataset": "digits", "normal": [3]}, "tiny"), 300)
    assert job.status == "done", job.error
    arr = jm.store.arrays(job.run_id)
    n = len(arr["similarity"])
    assert arr["atypical"].sum() == int(0.1 * n)
    assert arr["recon_uint8"].shape == (n, 1, 32, 32)
    assert jm.store.read(job.run_id)["kind"] == "split"


def test_idle_worker_projects_runs_that_have_none(tmp_path, monkeypatch):
    """Idle, the worker gives every finished run without one a UMAP projection (runs of
    `bench --store` or older ones), newest first, once; failed runs are left alone."""
    import ocvis.jobs
    import ocvis.projection

    monkeypatch.setenv("OCVIS_UMAP_WARMUP", "1")
    monkeypatch.setattr(ocvis.jobs, "IDLE_WARM_SECONDS", 0.2)
    monkeypatch.setattr(ocvis.jobs, "warm_up", lambda: None)
    monkeypatch.setattr(ocvis.projection, "warm_up_umap", lambda seed=0: 0.0)
    calls = []

    def fake_projection(store, run_id, method="umap", seed=0):
        calls.append((run_id, method, seed))
        store.write_file(run_id, f"proj-{method}-x.npy", b"")

    monkeypatch.setattr(ocvis.projection, "cached_projection", fake_projection)
    store = RunStore(tmp_path)
    ids = {}
    for k, (name, status) in enumerate((("old", "done"), ("has", "done"), ("bad", "failed"),
                                        ("new", "done"))):
        ids[name] = store.create({"kind": "experiment", "method": name, "status": status,
                                  "seed": 3, "created": 1000.0 + k})
    store.write_file(ids["has"], "proj-umap-abc.npy", b"")
    jm = JobManager(store, torch_threads=1, warm=True)
    assert jm.idle_swept.wait(300)  # the worker found nothing more to project
    assert calls == [(ids["new"], "umap", 3), (ids["old"], "umap", 3)]


def test_projection_already_queued_is_followed_not_repeated(tmp_path, monkeypatch):
    """The Latent page asking for a projection that training already queued gets that job
    (one computation, not two in a row); once it has ended a new request queues again."""
    import numpy as np

    import ocvis.projection

    calls = []

    def fake_projection(store, run_id, method="umap", seed=0):
        calls.append((run_id, method))
        return np.zeros((3, 2))

    monkeypatch.setattr(ocvis.projection, "cached_projection", fake_projection)
    jm = _manager(tmp_path)
    gate = threading.Event()
    jm.submit("test", "busy", lambda job, hooks: gate.wait(300))
    first = jm.submit_projection("r1", "umap")
    assert jm.submit_projection("r1", "umap") is first
    other_method = jm.submit_projection("r1", "tsne")
    other_run = jm.submit_projection("r2", "umap")
    assert len({first.id, other_method.id, other_run.id}) == 3
    gate.set()
    for j in (first, other_method, other_run):
        assert jm.wait(j, 300).status == "done", j.error
    assert calls == [("r1", "umap"), ("r1", "tsne"), ("r2", "umap")]
    again = jm.submit_projection("r1", "umap")
    assert again is not first
    assert jm.wait(again, 300).result == (3, 2)
    assert calls[-1] == ("r1", "umap") and len(calls) == 4

"""Scoring and model selection on a Dask cluster (loopback LocalCluster, worker processes).

One cluster of two worker processes (one thread each, restarted by their Nanny)
serves the whole module; the tiny model is saved to a folder, so the workers load
it by path through the process-wide cache. Every wait has a timeout.
"""

from __future__ import annotations

import concurrent.futures
import importlib
import os
import signal
import subprocess
import sys
import time

import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest
from conftest import CORPUS, SENTIMENT_X, SENTIMENT_Y
from distributed import Client, LocalCluster, futures_of, get_task_stream, wait
from sklearn.exceptions import NotFittedError
from sklearn.model_selection import GridSearchCV

from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._loading import model_cache_info
from skllm_fewshot.dask import for_workers, predict, predict_proba

N_ROWS = 10_000
TIMEOUT = 300  # seconds for any one job; a loaded 2-core machine is slow, a hang is not

# calibrate=True spreads the tiny random model's predictions over the three
# classes (without it, one class wins nearly every text).
PARAMS = dict(calibrate=True, random_state=0, device="cpu", dtype="float32")


def make_texts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    words = " ".join(CORPUS).split()
    return [" ".join(rng.choice(words, size=rng.integers(1, 12))) for _ in range(n)]


@pytest.fixture(scope="module")
def client():
    with (
        LocalCluster(
            n_workers=2,
            threads_per_worker=1,
            processes=True,  # worker processes under a Nanny, as on a real cluster
            host="127.0.0.1",
            dashboard_address=None,
            resources={"GPU": 1},  # a label only: tests the recipe of docs/dask.md for GPU workers
        ) as cluster,
        Client(cluster, timeout=120) as c,
    ):
        c.wait_for_workers(2, timeout=120)
        yield c


@pytest.fixture(scope="module")
def clf(tiny_model_dir):
    return FewShotLLMClassifier(str(tiny_model_dir), **PARAMS).fit(SENTIMENT_X, SENTIMENT_Y)


@pytest.fixture(scope="module")
def rows():
    """10,000 texts with an index that is neither 0..n-1 nor the row order of a default frame."""
    return pd.Series(make_texts(N_ROWS), index=pd.Index(np.arange(N_ROWS) * 3 + 7, name="id"), name="text")


@pytest.fixture(scope="module")
def reference(clf, rows):
    """The single-process result."""
    return clf.predict_proba(rows)


def workers_that_ran(tasks: list[dict], prefix: str) -> set[str]:
    return {t["worker"] for t in tasks if prefix in str(t["key"])}


def assert_loaded_once(client: Client, workers: set[str]) -> None:
    """Each worker that ran the job read the weights once; no worker read them twice."""
    info = client.run(model_cache_info)
    assert workers, "no task ran on a worker"
    for worker in workers:
        assert info[worker]["loads"] == 1, (worker, info)
    assert all(v["loads"] <= 1 for v in info.values()), info


def test_cluster_equals_single_process_on_10000_rows(client, clf, rows, reference):
    texts = dd.from_pandas(rows, npartitions=20)
    proba = predict_proba(clf, texts)
    labels = predict(clf, texts)
    assert list(proba.columns) == list(clf.classes_)
    with get_task_stream(client) as stream:
        # One job: predict's graph reuses predict_proba's keys, so texts are scored once.
        got_proba, got_labels = (f.result(timeout=TIMEOUT) for f in client.compute([proba, labels]))

    assert isinstance(got_proba, pd.DataFrame) and got_proba.shape == (N_ROWS, 3)
    assert list(got_proba.columns) == list(clf.classes_)
    pd.testing.assert_index_equal(got_proba.index, rows.index)
    pd.testing.assert_index_equal(got_labels.index, rows.index)
    np.testing.assert_allclose(got_proba.to_numpy(), reference, rtol=0, atol=1e-4)
    expected = clf.classes_[reference.argmax(axis=1)]
    np.testing.assert_array_equal(got_labels.to_numpy(), expected)
    assert len(set(expected)) == 3  # the comparison covers every class

    scored = [t for t in stream.data if "_proba_partition" in str(t["key"])]
    assert len(scored) == 20  # each partition scored once, for both results
    ran = workers_that_ran(stream.data, "_proba_partition")
    assert ran == set(client.scheduler_info()["workers"])  # both workers scored partitions
    assert_loaded_once(client, ran)


def test_later_jobs_reuse_the_worker_model(client, clf, rows, reference):
    before = client.run(model_cache_info)
    texts = dd.from_pandas(rows.iloc[:600], npartitions=6)
    with get_task_stream(client) as stream:
        got = client.compute(predict_proba(clf, texts)).result(timeout=TIMEOUT)
    np.testing.assert_allclose(got.to_numpy(), reference[:600], rtol=0, atol=1e-4)
    ran = workers_that_ran(stream.data, "_proba_partition")
    after = client.run(model_cache_info)
    for worker in ran & set(before):
        assert after[worker]["loads"] == before[worker]["loads"], (before, after)
    assert_loaded_once(client, ran)


def test_dataframe_column_and_empty_partitions(client, clf, rows, reference):
    frame = pd.DataFrame({"text": rows.iloc[:40], "other": np.arange(40)})
    ddf = dd.from_pandas(frame, npartitions=4)
    kept = ddf[ddf["other"] % 20 < 5]  # partitions 1 and 3 become empty
    got = client.compute(predict_proba(clf, kept, column="text")).result(timeout=TIMEOUT)
    mask = (frame["other"] % 20 < 5).to_numpy()
    pd.testing.assert_index_equal(got.index, frame.index[mask])
    np.testing.assert_allclose(got.to_numpy(), reference[:40][mask], rtol=0, atol=1e-4)

    one_column = client.compute(predict(clf, ddf[["text"]])).result(timeout=TIMEOUT)
    np.testing.assert_array_equal(one_column.to_numpy(), clf.classes_[reference[:40].argmax(axis=1)])


def test_resources_restrict_every_scoring_task(client, clf, rows, reference):
    # docs/dask.md: one GPU per worker process, and the job asks for one GPU per task.
    texts = dd.from_pandas(rows.iloc[:100], npartitions=4)
    persisted = client.persist(predict_proba(clf, texts), resources={"GPU": 1})
    futures = futures_of(persisted)
    wait(futures, timeout=TIMEOUT)  # the scheduler knows the tasks (and keeps them: we hold futures)
    keys = [f.key for f in futures]

    def restrictions(dask_scheduler, keys=keys):
        return [dask_scheduler.tasks[k].resource_restrictions for k in keys if k in dask_scheduler.tasks]

    assert client.run_on_scheduler(restrictions) == [{"GPU": 1}] * 4
    got = client.compute(persisted).result(timeout=TIMEOUT)
    np.testing.assert_allclose(got.to_numpy(), reference[:100], rtol=0, atol=1e-4)


def test_input_errors_are_raised_on_the_client(clf, tiny_model_dir):
    ddf = dd.from_pandas(pd.DataFrame({"a": ["x", "y"], "b": ["z", "w"]}), npartitions=1)
    with pytest.raises(ValueError, match="column="):
        predict_proba(clf, ddf)
    with pytest.raises(ValueError, match="already a Series"):
        predict_proba(clf, ddf["a"], column="a")
    with pytest.raises(TypeError, match="from_pandas"):
        predict_proba(clf, pd.Series(["x"]))
    with pytest.raises(NotFittedError):
        predict_proba(FewShotLLMClassifier(str(tiny_model_dir)), ddf["a"])


def test_relative_model_path_is_made_absolute_for_the_workers(clf, tiny_model_dir, monkeypatch):
    monkeypatch.chdir(tiny_model_dir.parent)
    local = FewShotLLMClassifier(tiny_model_dir.name, **PARAMS).fit(SENTIMENT_X, SENTIMENT_Y)
    shipped = for_workers(local)
    assert shipped.model == str(tiny_model_dir)
    assert local.model == tiny_model_dir.name  # the user's estimator is unchanged
    assert shipped.prompt_ == local.prompt_
    # An absolute path is shipped as it is, with the estimator itself.
    assert for_workers(clf) is clf


def test_a_loaded_model_object_warns(tiny_model, bpe_tokenizer):
    local = FewShotLLMClassifier(tiny_model, tokenizer=bpe_tokenizer, **PARAMS).fit(SENTIMENT_X, SENTIMENT_Y)
    texts = dd.from_pandas(pd.Series(["x", "y"]), npartitions=1)
    with pytest.warns(UserWarning, match="loaded model object"):
        predict_proba(local, texts)


def _grid_search(clf, X, y, n_jobs):
    search = GridSearchCV(
        clf,
        {"n_examples_per_class": [0, 1], "calibrate": [False, True]},
        cv=3,
        scoring="neg_log_loss",
        n_jobs=n_jobs,
    )
    return search.fit(X, y)


def test_grid_search_runs_on_the_workers(client, clf):
    import joblib

    X = make_texts(60, seed=1)
    y = np.array(["negative", "neutral", "positive"] * 20)
    local = _grid_search(clf, X, y, n_jobs=1)

    def on_cluster():
        # resources=: passed to every task, as docs/dask.md shows for GPU workers.
        with joblib.parallel_config(backend="dask", resources={"GPU": 1}), get_task_stream(client) as stream:
            return _grid_search(clf, X, y, n_jobs=-1), stream.data

    # In a thread, so that a stuck cluster fails the test instead of hanging it.
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        search, tasks = pool.submit(on_cluster).result(timeout=TIMEOUT)

    for key in ("mean_test_score", "split0_test_score", "split1_test_score", "split2_test_score"):
        np.testing.assert_allclose(search.cv_results_[key], local.cv_results_[key], rtol=0, atol=1e-6)
    assert search.best_params_ == local.best_params_
    assert_loaded_once(client, workers_that_ran(tasks, "fit_and_score"))


def test_killed_worker_loses_no_rows(client, clf, rows, reference):
    n_rows, n_partitions = 4_000, 40
    pids = client.run(os.getpid)
    texts = dd.from_pandas(rows.iloc[:n_rows], npartitions=n_partitions)
    persisted = client.persist(predict_proba(clf, texts))
    futures = futures_of(persisted)
    assert len(futures) == n_partitions

    # Kill a worker (SIGKILL, no goodbye) once it holds finished partitions, so
    # that both its finished and its running work are lost.
    deadline = time.monotonic() + TIMEOUT
    victim = None
    while victim is None:
        assert time.monotonic() < deadline, "no partition finished in time"
        done = [f for f in futures if f.done()]
        if done:
            holders = {w for ws in client.who_has(done).values() for w in ws}
            victim = next(iter(holders), None)
        if victim is None:
            time.sleep(0.01)
    done_at_kill = sum(f.done() for f in futures)
    os.kill(pids[victim], signal.SIGKILL)
    assert done_at_kill < n_partitions  # the job was still running

    got = client.compute(persisted).result(timeout=TIMEOUT)
    assert got.shape == (n_rows, 3)
    pd.testing.assert_index_equal(got.index, rows.index[:n_rows])
    np.testing.assert_allclose(got.to_numpy(), reference[:n_rows], rtol=0, atol=1e-4)
    np.testing.assert_array_equal(got.to_numpy().argmax(axis=1), reference[:n_rows].argmax(axis=1))

    # The Nanny restarted the killed process; the new one loads the model once at most.
    client.wait_for_workers(2, timeout=120)
    assert victim not in client.run(os.getpid)
    assert all(v["loads"] <= 1 for v in client.run(model_cache_info).values())


def test_missing_dask_names_the_extra(monkeypatch):
    for name in ("dask", "dask.dataframe"):
        monkeypatch.setitem(sys.modules, name, None)  # None in sys.modules: import fails
    monkeypatch.delitem(sys.modules, "skllm_fewshot.dask")
    with pytest.raises(ImportError, match=r'pip install "skllm-fewshot\[dask\]"'):
        importlib.import_module("skllm_fewshot.dask")


def test_package_import_does_not_import_dask():
    code = "import sys, skllm_fewshot; print('dask' in sys.modules, 'distributed' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.split() == ["False", "False"]

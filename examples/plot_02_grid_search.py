"""
=================================================
Choosing the number of examples with GridSearchCV
=================================================

How many labelled examples per class should go into the prompt, which scoring, and
whether to calibrate, are hyper-parameters like any other: pick them by
cross-validation. :class:`~sklearn.model_selection.GridSearchCV` clones the
classifier for every fold and candidate; the model itself is loaded once per
process and shared by all the clones.
"""

# %%
# The data: the package's example tweets
# --------------------------------------
#
# 91 Spanish marketing tweets of the seed notebook's 7 sectors
# (:func:`~skllm_fewshot.datasets.load_example_tweets`). The search runs on 4 tweets
# per sector and the chosen classifier is tested on the other 9 per sector. With the
# MAS corpus, use :func:`~skllm_fewshot.datasets.load_mas_tweets` instead (see
# :ref:`sphx_glr_auto_examples_plot_01_seed_notebook.py`).
from skllm_fewshot.datasets import load_example_tweets

tweets, instruction = load_example_tweets()
search_set = tweets.groupby("SECTOR").sample(4, random_state=0)
held_out = tweets.drop(search_set.index)
print(f"{len(search_set)} tweets to search on, {len(held_out)} held out")

# %%
# The grid
# --------
#
# ``n_examples_per_class`` from 0 (zero-shot) to 2; both scorings; with and without
# contextual calibration: 12 candidates. Mind the two meanings of *scoring*: inside
# the grid, ``"scoring"`` is the classifier's parameter (how label words are scored);
# ``GridSearchCV(scoring=...)`` is the metric the search ranks by. Three folds leave 2
# or 3 training tweets per class to pick examples from.
#
# Every candidate scores every tweet once, and every fit runs its prompt's shared
# part through the model once (7 classes x 2 examples is about 500 tokens), so a
# larger grid or more data costs proportionally more time.
from sklearn.model_selection import GridSearchCV, StratifiedKFold

from skllm_fewshot import FewShotLLMClassifier, model_cache_info

clf = FewShotLLMClassifier(
    model=None,  # the embedded SmolLM2-135M-Instruct
    instruction=instruction,
    text_name="Tweet",
    label_name="Categoría",
    random_state=0,
)
param_grid = {
    "n_examples_per_class": [0, 1, 2],
    "label_scoring": ["first_token", "full_label"],
    "calibrate": [False, True],
}
cv = StratifiedKFold(n_splits=3, shuffle=True, random_state=0)
search = GridSearchCV(clf, param_grid, scoring="accuracy", cv=cv)
search.fit(search_set["TEXTO"], search_set["SECTOR"])
print(f"best: {search.best_params_}, cross-validated accuracy {search.best_score_:.3f}")
n_fits = len(search.cv_results_["params"]) * search.n_splits_ + 1
print(f"{n_fits} fits, model loads so far: {model_cache_info()['loads']}")

# %%
# The cross-validated scores
# --------------------------
#
# ``cv_results_`` holds the mean and spread over the folds of every candidate.
import pandas as pd

results = pd.DataFrame(search.cv_results_)
params = ["param_n_examples_per_class", "param_label_scoring", "param_calibrate"]
table = results[params + ["mean_test_score", "std_test_score"]]
table.sort_values("mean_test_score", ascending=False).round(3)

# %%
# Accuracy against the number of examples per class, one line per scoring and
# calibration, with the spread over the folds. Each fold scores only about 9 tweets,
# so the spread is wide: a search on a real data set would score a few hundred.
import matplotlib.pyplot as plt

fig, ax = plt.subplots(figsize=(6.5, 4))
for (scoring, calibrate), group in results.groupby(["param_label_scoring", "param_calibrate"]):
    group = group.sort_values("param_n_examples_per_class")
    shots = group["param_n_examples_per_class"].astype(int)
    mean, std = group["mean_test_score"], group["std_test_score"]
    ax.errorbar(
        shots + (0.04 if calibrate else -0.04),  # side by side, not on top of each other
        mean,
        yerr=std,
        marker="o",
        capsize=3,
        linestyle="-" if scoring == "full_label" else "--",
        label=f"label_scoring={scoring!r}, calibrate={calibrate}",
    )
ax.axhline(1 / 7, color="grey", linewidth=1, linestyle=":", label="chance (1/7)")
ax.set(
    xlabel="n_examples_per_class",
    ylabel="accuracy (3-fold cross-validation)",
    xticks=param_grid["n_examples_per_class"],
    title="SmolLM2-135M on the example tweets",
)
ax.legend(fontsize="small")
fig.tight_layout()

# %%
# The chosen classifier on held-out tweets
# ----------------------------------------
#
# The search refits the best candidate on all 28 search tweets. Every candidate of
# this grid is a prompt without a head: its ``fit`` picks its examples afresh from
# those tweets (and, with ``calibrate=True``, scores the calibration queries) and
# trains no weights; a ``head`` would be trained on every labelled row, and
# ``head="lora"`` fine-tunes an adapter on them. The refitted classifier then
# predicts like any classifier. Expect its
# held-out accuracy to be lower than its cross-validated score: the best of 12
# candidates, each scored on 28 tweets, is the best partly by luck.
best = search.best_estimator_
print(f"held-out accuracy: {best.score(held_out['TEXTO'], held_out['SECTOR']):.3f} (chance: {1 / 7:.3f})")
best

"""Multi-label on the shipped customer messages: micro-F1 against the best constant predictor, and cost.

For each of ``--draws`` random 50/50 splits of the 120 messages
(``load_customer_messages``), every configuration is fitted on one half and scored
on the other: the prompt (two examples per topic, calibrated, thresholds tuned on
the training rows), the same with ``at_least_one``, one-vs-rest heads on the
model's features (the default layers; the final layer), what ``GridSearchCV`` picks
among heads on the training half, TF-IDF + one-vs-rest logistic regression, and the best constant
predictor (the one label set, of all 16, with the best micro-F1 on the test half).
Cost: tokens computed and seconds per text of the multi-label prompt against a
single-label prompt with the same four topics as classes, on the same texts.
Writes ``docs/multilabel.md``.

    python benchmarks/bench_multilabel.py --draws 5
"""

from __future__ import annotations

import argparse
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402


def main(argv=None) -> None:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import f1_score
    from sklearn.model_selection import GridSearchCV, KFold, train_test_split
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV
    from skllm_fewshot.datasets import load_customer_messages

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=5, help="splits; 0 measures the cost only")
    parser.add_argument("--out", default=str(ROOT / "docs" / "multilabel.md"))
    parser.add_argument("--only", default="", help="run only the configurations whose name contains this")
    args = parser.parse_args(argv)
    messages = load_customer_messages()
    X, Y = messages["text"].to_numpy(dtype=object), messages.drop(columns="text")
    configs = {
        "FewShotLLMClassifierCV(random_state=s), the defaults": lambda s: FewShotLLMClassifierCV(
            random_state=s
        ),
        "prompt (calibrate='domain', the default)": lambda s: FewShotLLMClassifier(
            n_examples_per_class=2, random_state=s
        ),
        "prompt, calibrate=True": lambda s: FewShotLLMClassifier(
            n_examples_per_class=2, calibrate=True, random_state=s
        ),
        "prompt, at_least_one": lambda s: FewShotLLMClassifier(
            n_examples_per_class=2, at_least_one=True, random_state=s
        ),
        "head, default layers, C=0.01": lambda s: FewShotLLMClassifier(
            n_examples_per_class=2,
            head=make_pipeline(StandardScaler(), LogisticRegression(C=0.01)),
            random_state=s,
        ),
        "head, final layer, C=0.1": lambda s: FewShotLLMClassifier(
            n_examples_per_class=2,
            head=make_pipeline(StandardScaler(), LogisticRegression(C=0.1)),
            head_layers=[-1],
            random_state=s,
        ),
        "GridSearchCV pick of the head (layers x C, f1_micro, 3 folds of the training half)": lambda s: (
            GridSearchCV(
                FewShotLLMClassifier(
                    n_examples_per_class=2,
                    head=make_pipeline(StandardScaler(), LogisticRegression()),
                    random_state=s,
                ),
                {"head_layers": ["auto", [-1]], "head__logisticregression__C": [0.01, 0.1, 1.0]},
                scoring="f1_micro",
                cv=KFold(3, shuffle=True, random_state=s),
            )
        ),
        "TF-IDF + one-vs-rest LR": lambda s: make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True),
            OneVsRestClassifier(LogisticRegression(C=10)),
        ),
    }
    configs = {name: make for name, make in configs.items() if args.only in name}
    scores = {name: [] for name in [*configs, "best constant predictor"]}
    picks, cv_seconds = [], []
    start = time.perf_counter()
    for draw in range(args.draws):
        X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.5, random_state=draw)
        for name, make in configs.items():
            t0 = time.perf_counter()
            model = make(draw).fit(X_train, Y_train)
            if hasattr(model, "best_name_"):
                picks.append(model.best_name_)
                cv_seconds.append(time.perf_counter() - t0)
            scores[name].append(f1_score(Y_test, model.predict(X_test), average="micro"))
        scores["best constant predictor"].append(
            max(
                f1_score(Y_test, np.tile(c, (len(Y_test), 1)), average="micro", zero_division=0)
                for c in product([0, 1], repeat=Y.shape[1])
            )
        )
        print({k: round(v[-1], 3) for k, v in scores.items()}, flush=True)

    # Cost: the same texts under a multi-label prompt and a single-label one with the topics as classes.
    names = list(Y.columns)
    multi = FewShotLLMClassifier(n_examples_per_class=0, multi_label=True).fit(None, names)
    single = FewShotLLMClassifier(n_examples_per_class=0).fit(None, names)
    cost = {}
    for label, clf in (("multi-label", multi), ("single-label", single)):
        clf.predict_proba(X[:4])  # warm up: prefix cache
        before, t0 = clf.engine_.stats, time.perf_counter()
        clf.predict_proba(X[4:])
        seconds = time.perf_counter() - t0
        cost[label] = ((clf.engine_.stats["tokens"] - before["tokens"]) / len(X[4:]), seconds / len(X[4:]))
    lines = [
        "# Multi-label classification",
        "",
        f"Command: `python benchmarks/bench_multilabel.py --draws {args.draws}`; the embedded SmolLM2-135M-Instruct"
        f" on the CPU; the 120 shipped customer messages (4 topics), {args.draws} random 50/50 splits;"
        f" {time.perf_counter() - start:.0f} s; {time.strftime('%Y-%m-%d')}.",
        "",
        "| configuration | micro-F1 (mean ± std over splits) |",
        "|---|---|",
    ]
    lines += [f"| {name} | {np.mean(v):.3f} ± {np.std(v):.3f} |" for name, v in scores.items() if v]
    if picks:
        lines += [
            "",
            f"FewShotLLMClassifierCV picked {', '.join(picks)}; its fit took "
            f"{np.median(cv_seconds):.0f} s (median over splits, 60 rows).",
        ]
    ratio_tokens = cost["multi-label"][0] / cost["single-label"][0]
    ratio_seconds = cost["multi-label"][1] / cost["single-label"][1]
    lines += [
        "",
        "Cost of scoring one text, multi-label against single-label with the same 4 topics as classes"
        " (zero-shot prompts, 116 texts):",
        "",
        "| prompt | tokens computed per text | ms per text |",
        "|---|---|---|",
        f"| multi-label | {cost['multi-label'][0]:.1f} | {1000 * cost['multi-label'][1]:.1f} |",
        f"| single-label | {cost['single-label'][0]:.1f} | {1000 * cost['single-label'][1]:.1f} |",
        f"| ratio | {ratio_tokens:.2f}x | {ratio_seconds:.2f}x |",
        "",
    ]
    text = "\n".join(lines)
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

"""Multi-label on the shipped customer messages: micro-F1 against the best constant predictor, and cost.

For each of ``--draws`` random 50/50 splits of the 120 messages
(``load_customer_messages``), every configuration is fitted on one half and scored
on the other: ``FewShotLLMClassifierCV`` with its defaults, the prompt (two examples
per topic, thresholds tuned on the training rows) with each calibration and with
``at_least_one``, one-vs-rest heads on the model's features (the default layers; the
final layer), what ``GridSearchCV`` picks among heads on the training half, TF-IDF +
one-vs-rest logistic regression, and the best constant predictor (the one label set,
of all 16, with the best micro-F1 on the test half). Cost: tokens computed and seconds
per text of the multi-label prompt against a single-label prompt with the same four
topics as classes, on the same texts.

Each measured cell is appended as one JSON line to ``docs/multilabel.jsonl`` (date,
command, model, the estimator's repr, the scores of every split); the table of the
newest record of each cell is written to ``docs/multilabel_latest.md``, which
``docs/multilabel.md`` includes.

    python benchmarks/bench_multilabel.py --draws 5
    python benchmarks/bench_multilabel.py --draws 0          # the cost only
    python benchmarks/bench_multilabel.py --report           # only the table, from the records
"""

from __future__ import annotations

import argparse
import re
import sys
import time
from collections import Counter
from itertools import product
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, measured_by, recorded_main, run_context  # noqa: E402

MODEL = "smollm2-135m"  # model=None, the embedded default
KEY = ("model", "configuration")
CONSTANT = "best constant predictor"
COST = {"multi-label": "cost: multi-label prompt", "single-label": "cost: single-label prompt"}


def make_configs() -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, KFold
    from sklearn.multiclass import OneVsRestClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV

    return {
        "FewShotLLMClassifierCV, the defaults": lambda s: FewShotLLMClassifierCV(random_state=s),
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


def describe(estimator) -> str:
    """The estimator's repr on one line (scikit-learn prints the parameters that differ from the defaults)."""
    text = re.sub(r"\s+", " ", repr(estimator))
    # FewShotLLMClassifier prints an estimator parameter as its class name: print it in full.
    for name, value in estimator.get_params(deep=False).items():
        if hasattr(value, "get_params") and f"{name}=<{type(value).__name__}>" in text:
            text = text.replace(f"{name}=<{type(value).__name__}>", f"{name}={describe(value)}")
    return text


def measure(args: argparse.Namespace, command: str, out: Path) -> None:
    from sklearn.metrics import f1_score
    from sklearn.model_selection import train_test_split

    from skllm_fewshot import FewShotLLMClassifier
    from skllm_fewshot.datasets import load_customer_messages

    messages = load_customer_messages()
    X, Y = messages["text"].to_numpy(dtype=object), messages.drop(columns="text")
    configs = {name: make for name, make in make_configs().items() if args.only in name}
    context = run_context()
    base = dict(
        date=time.strftime("%Y-%m-%d"),
        command=command,
        model=MODEL,
        data=f"load_customer_messages(): {len(X)} messages, {Y.shape[1]} topics",
    )
    if args.draws:
        scores = {name: [] for name in [*configs, CONSTANT]}
        fit_seconds = {name: [] for name in configs}
        picks = {name: [] for name in configs}
        for draw in range(args.draws):
            X_train, X_test, Y_train, Y_test = train_test_split(X, Y, test_size=0.5, random_state=draw)
            for name, make in configs.items():
                t0 = time.perf_counter()
                model = make(draw).fit(X_train, Y_train)
                fit_seconds[name].append(time.perf_counter() - t0)
                picks[name].append(
                    getattr(model, "best_name_", None) or str(getattr(model, "best_params_", "")) or None
                )
                scores[name].append(f1_score(Y_test, model.predict(X_test), average="micro"))
            scores[CONSTANT].append(
                max(
                    f1_score(Y_test, np.tile(c, (len(Y_test), 1)), average="micro", zero_division=0)
                    for c in product([0, 1], repeat=Y.shape[1])
                )
            )
            print(f"split {draw}:", {k: round(v[-1], 3) for k, v in scores.items()}, flush=True)
        cells = []
        for name, values in scores.items():
            cell = dict(
                base,
                configuration=name,
                estimator=(
                    describe(configs[name](0)).replace("random_state=0", "random_state=s")
                    if name in configs
                    else "the one label set of all 16 with the best micro-F1 on the test half (an oracle)"
                ),
                splits=args.draws,
                split="train_test_split(test_size=0.5, random_state=s), s = 0, 1, ...",
                micro_f1=float(np.mean(values)),
                micro_f1_std=float(np.std(values)),
                micro_f1_per_split=[float(v) for v in values],
                **context,
            )
            if name in configs:
                cell["fit_seconds"] = [round(t, 1) for t in fit_seconds[name]]
                if any(picks[name]):
                    cell["picked"] = picks[name]
            cells.append(cell)
        append_records(out, cells)

    # Cost: the same texts under a multi-label prompt and a single-label one with the topics as classes.
    names = list(Y.columns)
    context = run_context()
    for label, options in (("multi-label", dict(multi_label=True)), ("single-label", {})):
        clf = FewShotLLMClassifier(n_examples_per_class=0, **options).fit(None, names)
        clf.predict_proba(X[:4])  # warm up: prefix cache
        before, t0 = clf.engine_.stats, time.perf_counter()
        clf.predict_proba(X[4:])
        seconds = time.perf_counter() - t0
        append_records(
            out,
            [
                dict(
                    base,
                    configuration=COST[label],
                    estimator=describe(clf) + ".fit(None, topics)",
                    texts=len(X[4:]),
                    tokens_per_text=(clf.engine_.stats["tokens"] - before["tokens"]) / len(X[4:]),
                    ms_per_text=1000 * seconds / len(X[4:]),
                    **context,
                )
            ],
        )


def render(records: list[dict]) -> str:
    """The tables of the newest record of each cell, saying which estimator each row measured."""
    scored = [r for r in records if "micro_f1" in r]
    cost = {r["configuration"]: r for r in records if "ms_per_text" in r}
    if not records:
        return "No records yet: `python benchmarks/bench_multilabel.py --draws 5`.\n"
    models = sorted({r["model"] for r in records})
    lines = [
        f"`model=None` (the embedded {', '.join(models)}) on the CPU, on `{records[0]['data']}`.",
        "",
    ]
    if scored:
        lines += [
            "Micro-F1 on the test half of random 50/50 splits (`train_test_split(test_size=0.5, "
            "random_state=s)`, s = 0, 1, ...), mean ± std over the splits; each estimator is fitted on the "
            "indicator matrix of the training half with `random_state=s`. Fit: seconds to fit on the "
            "60 training rows, median (min-max) over the splits. On each split the rows run in the "
            "table's order in one process and share the engine's caches (the model's features and "
            "the prompt's scores of the same rows), so a fit counts only what the rows above it did "
            "not compute; the times also follow the load of the machine (in the records).",
            "",
            "| configuration | micro-F1 | splits | fit (s) | date |",
            "|---|---|---|---|---|",
        ]
        for r in scored:
            t = r.get("fit_seconds")
            fit = f"{np.median(t):.0f} ({min(t):.0f}-{max(t):.0f})" if t else "-"
            lines.append(
                f"| {r['configuration']} | {r['micro_f1']:.3f} ± {r['micro_f1_std']:.3f} | {r['splits']} | "
                f"{fit} | {r['date']} |"
            )
        picked = [r for r in scored if r.get("picked")]
        for r in picked:
            counts = Counter(r["picked"])
            lines += [
                "",
                f"{r['configuration']} picked "
                + ", ".join(f"`{p}` ({n} of {len(r['picked'])} splits)" for p, n in counts.most_common())
                + f"; micro-F1 per split: {', '.join(f'{v:.3f}' for v in r['micro_f1_per_split'])}.",
            ]
        lines += ["", "The estimators (`s`: the split's seed):", ""]
        lines += [f"- {r['configuration']}: `{r['estimator']}`" for r in scored]
    if cost:
        lines += [
            "",
            "Cost of scoring one text, a multi-label prompt against a single-label one with the same topics as "
            "classes (zero-shot prompts, after 4 texts that warm the prefix cache):",
            "",
            "| prompt | estimator | texts | tokens computed per text | ms per text | load average before | date |",
            "|---|---|---|---|---|---|---|",
        ]
        for r in cost.values():
            lines.append(
                f"| {r['configuration'].removeprefix('cost: ')} | `{r['estimator']}` | {r['texts']} | "
                f"{r['tokens_per_text']:.1f} | {r['ms_per_text']:.1f} | {r['load_before'][0]:.2f} | {r['date']} |"
            )
        multi, single = cost.get(COST["multi-label"]), cost.get(COST["single-label"])
        if multi and single and multi["command"] == single["command"] and multi["date"] == single["date"]:
            lines.append(
                f"| ratio | | | {multi['tokens_per_text'] / single['tokens_per_text']:.2f}x | "
                f"{multi['ms_per_text'] / single['ms_per_text']:.2f}x | | |"
            )
    lines += ["", "Measured by:", *measured_by(records)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    def add_arguments(parser):
        parser.add_argument("--draws", type=int, default=5, help="splits; 0 measures the cost only")
        parser.add_argument("--only", default="", help="run only the configurations whose name contains this")

    recorded_main(
        argv, script="bench_multilabel.py", description=__doc__, records=ROOT / "docs" / "multilabel.jsonl", key=KEY,
        measure=measure, render=render, add_arguments=add_arguments,
    )  # fmt: skip


if __name__ == "__main__":
    main()

"""Accuracy on the MAS tweets: the seed's method, each feature alone, what GridSearchCV picks,
and TF-IDF + logistic regression trained on the same k examples per class.

For each of ``--seeds`` random seeds: the seed notebook's 67/33 stratified split;
``--n-test`` tweets per class of the test part are scored (the whole test part
with ``--n-test 0``). ``GridSearchCV`` (3-fold) picks a configuration on
``--n-grid`` tweets per class of the training part; examples for the prompt come
from the training part only. Writes ``docs/accuracy.md``, two PNG plots and a
JSON line per run to ``docs/accuracy.jsonl``.

    python benchmarks/bench_accuracy.py --seeds 5 --jobs 2 --threads 1
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, load_mas, seed_split  # noqa: E402

from sklearn.feature_extraction.text import TfidfVectorizer  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.metrics import accuracy_score, f1_score, log_loss  # noqa: E402
from sklearn.model_selection import GridSearchCV  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402

from skllm_fewshot import FewShotLLMClassifier  # noqa: E402
from skllm_fewshot.datasets import seed_instruction  # noqa: E402

# English label words for the Spanish tweets (the verbalizer in another language).
ENGLISH = {
    "alimentos": "food", "automobiles": "cars", "bancos": "banks", "bebidas": "drinks",
    "deportes": "sports", "supermercados": "supermarkets", "telefonía": "phones",
}  # fmt: skip

# The seed's prompt: its instruction (the labels filled in from label_words), field names, one
# example per class, first-token scoring.
SEED = dict(
    instruction=seed_instruction(["{labels}"]), text_name="Tweet", label_name="Categoría",
    n_examples_per_class=1, scoring="first_token", calibrate=False, example_selection="stratified",
    example_order="shuffle", prompt_format="plain",
)  # fmt: skip

# Each feature alone, on top of the seed's setup.
FEATURES = {
    "seed (first_token, 1/class)": {},
    "calibrate=True": dict(calibrate=True),
    "scoring=full_label": dict(scoring="full_label"),
    "English label words": dict(label_words=ENGLISH),
    "example_order=interleave": dict(example_order="interleave"),
    "example_selection=similar": dict(example_selection="similar"),
    "prompt_format=chat": dict(prompt_format="chat"),
    # With one example per class, interleaving is a shuffle: compare at two per class.
    "n_examples_per_class=2": dict(n_examples_per_class=2),
    "n_examples_per_class=2, example_order=interleave": dict(n_examples_per_class=2, example_order="interleave"),
}

GRID = {
    "n_examples_per_class": [1, 4],
    "scoring": ["first_token", "full_label"],
    "calibrate": [False, True],
}
KS = [1, 2, 4, 8]
LLM_KS = [0, 1, 2, 4]


def stratified_sample(frame, per_class: int, seed: int):
    if per_class <= 0:
        return frame
    return frame.groupby("SECTOR").sample(per_class, random_state=seed)


def metrics(y, proba, classes) -> dict:
    pred = classes[proba.argmax(1)]
    return {
        "accuracy": accuracy_score(y, pred),
        "macro_f1": f1_score(y, pred, average="macro"),
        "log_loss": log_loss(y, proba, labels=classes),
    }


def llm(**params) -> FewShotLLMClassifier:
    return FewShotLLMClassifier(None, **{**SEED, "batch_size": 16, **params})


def tfidf_lr(seed: int):
    return make_pipeline(
        TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
        LogisticRegression(C=10, max_iter=2000, random_state=seed),
    )


def run_seed(tweets, seed: int, args) -> list[dict]:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    train, test = seed_split(tweets, random_state=seed)
    test = stratified_sample(test, args.n_test, seed)
    rows = []

    def record(method: str, k: int, clf, fit_x, fit_y, seconds: float | None = None):
        start = time.perf_counter()
        if fit_x is not None:
            clf.fit(fit_x, fit_y)
        proba = clf.predict_proba(test["TEXTO"])
        classes = clf.classes_ if hasattr(clf, "classes_") else clf[-1].classes_
        row = {"seed": seed, "method": method, "k": k, **metrics(test["SECTOR"], proba, classes)}
        row["confusion"] = (test["SECTOR"].tolist(), classes[proba.argmax(1)].tolist())
        row["seconds"] = seconds if seconds is not None else time.perf_counter() - start
        rows.append(row)
        print(f"  seed {seed}  {method:34s} k={k}  acc={row['accuracy']:.3f}  "
              f"f1={row['macro_f1']:.3f}  logloss={row['log_loss']:.3f}  {row['seconds']:.0f}s", flush=True)
        return clf

    for name, params in FEATURES.items():
        if name in args.skip or (args.only and name not in args.only):
            continue
        k = params.get("n_examples_per_class", 1)
        record(name, k, llm(random_state=seed, **params), train["TEXTO"], train["SECTOR"])

    if args.only:
        return _saved(rows, args)
    # The shot count curve of the calibrated whole-label setup, next to TF-IDF at the same k.
    for k in LLM_KS:
        clf = llm(random_state=seed, n_examples_per_class=k, scoring="full_label", calibrate=True)
        record("LLM full_label+calibrate", k, clf, train["TEXTO"], train["SECTOR"])
    for k in KS:
        few = stratified_sample(train, k, seed)
        record("TF-IDF + LogisticRegression", k, tfidf_lr(seed), few["TEXTO"], few["SECTOR"])

    start = time.perf_counter()
    pool = stratified_sample(train, args.n_grid, seed)
    search = GridSearchCV(llm(random_state=seed), GRID, cv=3, scoring="neg_log_loss", n_jobs=1)
    search.fit(pool["TEXTO"], pool["SECTOR"])
    picked = search.best_params_
    # The picked configuration, its examples drawn from the whole training part.
    best = llm(random_state=seed, **picked)
    best.fit(train["TEXTO"], train["SECTOR"])
    record("GridSearchCV pick", picked["n_examples_per_class"], best, None, None)
    rows[-1]["seconds"] = time.perf_counter() - start
    rows[-1]["picked"] = picked
    return _saved(rows, args)


def _saved(rows: list[dict], args) -> list[dict]:
    if args.partial:
        with open(args.partial, "a") as f:
            f.write("".join(json.dumps(r, default=str) + "\n" for r in rows))
    return rows


def summarize(rows: list[dict]):
    import pandas as pd

    frame = pd.DataFrame([{k: v for k, v in r.items() if k not in ("confusion", "picked")} for r in rows])
    return frame.groupby(["method", "k"], sort=False).agg(
        accuracy=("accuracy", "mean"), accuracy_sd=("accuracy", "std"),
        macro_f1=("macro_f1", "mean"), macro_f1_sd=("macro_f1", "std"),
        log_loss=("log_loss", "mean"), log_loss_sd=("log_loss", "std"),
        seconds=("seconds", "mean"), seeds=("seed", "nunique"),
    ).reset_index()  # fmt: skip


def plots(rows: list[dict], table, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = plt.subplots(figsize=(6, 4))
    for method in ["LLM full_label+calibrate", "TF-IDF + LogisticRegression"]:
        part = table[table["method"] == method]
        ax.errorbar(part["k"], part["accuracy"], yerr=part["accuracy_sd"], marker="o", capsize=3, label=method)
    seed_row = table[table["method"] == "seed (first_token, 1/class)"].iloc[0]
    ax.axhline(seed_row["accuracy"], color="gray", ls="--", label="seed's method (k=1)")
    ax.set_xscale("symlog", linthresh=1)
    ax.set_xticks(sorted({*LLM_KS, *KS}), labels=[str(k) for k in sorted({*LLM_KS, *KS})])
    ax.set_xlabel("examples per class (k)")
    ax.set_ylabel("test accuracy (mean ± sd over seeds)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out / "accuracy_vs_k.png", dpi=120)
    plt.close(fig)

    picks = [r for r in rows if r["method"] == "GridSearchCV pick"]
    y_true = sum((r["confusion"][0] for r in picks), [])
    y_pred = sum((r["confusion"][1] for r in picks), [])
    fig, ax = plt.subplots(figsize=(7, 6))
    ConfusionMatrixDisplay.from_predictions(y_true, y_pred, ax=ax, xticks_rotation=45, colorbar=False)
    ax.set_title("GridSearchCV pick, all seeds")
    fig.tight_layout()
    fig.savefig(out / "accuracy_confusion.png", dpi=120)
    plt.close(fig)


def write_doc(table, rows, args, seconds: float) -> str:
    fmt = lambda m, s: f"{m:.3f} ± {s:.3f}"  # noqa: E731
    lines = [
        "| method | k | seeds | accuracy | macro-F1 | log-loss | s per fit+predict |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in table.itertuples():
        lines.append(
            f"| {r.method} | {r.k} | {r.seeds} | {fmt(r.accuracy, r.accuracy_sd)} | {fmt(r.macro_f1, r.macro_f1_sd)} "
            f"| {fmt(r.log_loss, r.log_loss_sd)} | {r.seconds:.0f} |"
        )
    picks = sorted((r["seed"], r["picked"]) for r in rows if r["method"] == "GridSearchCV pick")
    lines.append("")
    lines.append("GridSearchCV picks, by seed: " + "; ".join(
        f"{seed}: " + ", ".join(f"{k}={v}" for k, v in p.items()) for seed, p in picks))
    shown = {k: v for k, v in vars(args).items() if k not in ("data", "out", "partial", "summarize")}
    command = "python benchmarks/bench_accuracy.py " + " ".join(
        f"--{k.replace('_', '-')} {v}" for k, v in shown.items())
    source = f"rows of {args.partial}" if args.summarize else f"`{command}`, {seconds / 60:.0f} min"
    meta = (f"{source} on {platform.machine()}, {platform.processor() or platform.system()}; "
            f"model: embedded SmolLM2-135M-Instruct, float32; {len(picks)} seeds.")
    return meta + "\n\n" + "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="tweets_marketing.csv of the MAS corpus")
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--skip", nargs="*", default=[], choices=list(FEATURES),
                        help="features left out (e.g. the slow 'example_selection=similar')")
    parser.add_argument("--only", nargs="*", default=[], choices=list(FEATURES),
                        help="run only these features (no curve, TF-IDF or grid search); for --partial")
    parser.add_argument("--n-test", type=int, default=15, help="test tweets per class (0: all)")
    parser.add_argument("--n-grid", type=int, default=15, help="training tweets per class for GridSearchCV")
    parser.add_argument("--threads", type=int, default=0,
                        help="torch threads (0: torch's default); 1 when other jobs share the cores, "
                             "where several threads per process wait on each other")
    parser.add_argument("--jobs", type=int, default=1, help="seeds run in parallel processes")
    parser.add_argument("--partial", default="", help="append each seed's rows to this JSONL file as it ends")
    parser.add_argument("--summarize", action="store_true", help="only write the docs from --partial's rows")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()
    tweets, _ = load_mas(args.data)
    start = time.perf_counter()
    from joblib import Parallel, delayed

    if args.summarize:
        with open(args.partial) as f:
            rows = [json.loads(line) for line in f]
    else:
        # Seeds in separate processes, each loading the model once.
        seeds = range(args.first_seed, args.first_seed + args.seeds)
        per_seed = Parallel(n_jobs=args.jobs)(delayed(run_seed)(tweets, s, args) for s in seeds)
        rows = [row for rows in per_seed for row in rows]
        if args.only:
            return  # a partial run: its rows are in --partial, summarized with the others
    seconds = time.perf_counter() - start
    table = summarize(rows)
    out = Path(args.out)
    plots(rows, table, out)
    body = write_doc(table, rows, args, seconds)
    (out / "accuracy_latest.md").write_text(body + "\n")
    with open(out / "accuracy.jsonl", "a") as f:
        f.write(json.dumps({"args": {k: v for k, v in vars(args).items() if k != "data"},
                            "rows": [{k: v for k, v in r.items() if k != "confusion"} for r in rows]},
                           default=str) + "\n")
    print(body)


if __name__ == "__main__":
    main()

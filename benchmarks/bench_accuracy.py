"""Accuracy against the number of labelled rows per class, on three tasks, against TF-IDF.

Tasks: SST-2 (train on ``sst2_train.txt``, measure on ``sst2_dev.txt``), TREC (a
held-out part of ``trec_train.txt``) and the MAS tweets (a stratified 70/30 split).
For each task, draw and k (labelled rows per class, nested across k within a draw),
every configuration is fitted on the same k rows and scored on the same test rows:

- ``seed``: the seed's method (one example per class, first token, no calibration);
- ``prompt``: the library's default: the prompt (one example per class) with
  ``calibrate="domain"`` (content-free queries and random bags of the training texts' words);
- ``prompt_cf``: the same with ``calibrate=True`` (content-free queries only);
- ``prompt_batch``: the same with batch calibration (the training texts' mean probabilities);
- ``head``: a StandardScaler + LogisticRegression(C=0.01) head on the mean hidden
  state of layers at 55/65/80% depth, read under the same prompt, fitted on all rows;
- ``knn``: kNN Prompting on the label distributions;
- ``tfidf_word``, ``tfidf_char``: TF-IDF (word 1-2 grams; char_wb 2-5 grams) + LR;
- ``union``: the head's features (standardised, of unit length, weighted 0.5) beside
  TF-IDF char, + LR(C=100);
- ``prompt_tfidf``: ``ProductOfExperts`` of the prompt and TF-IDF char (their
  probabilities multiplied);
- ``prompt_union``: ``ProductOfExperts`` of the prompt and the union;
- ``prompt_two_examples``: the prompt showing two examples per class;
- ``lora``: prompt-based LoRA fine-tuning (``head=LoRAFineTuning()``, uncalibrated) on
  all k rows per class, under the same one-example-per-class prompt;
- ``pick``: ``FewShotLLMClassifierCV``: what ``GridSearchCV`` (neg log-loss, stratified
  ``min(3, k)`` folds, repeated ``ceil(8 / k)`` times) picks among the head (C=0.01 or
  0.1), the union (C=30, 100, 300 or 1000), prompt and prompt_batch, and from k = 8
  lora, on the k rows alone; with one row per class nothing can be cross-validated and
  the pick is prompt_union.

Writes ``docs/accuracy.md``, ``docs/accuracy_vs_k.png`` and a JSON line to ``docs/accuracy.jsonl``.

    python benchmarks/bench_accuracy.py --draws 5 --jobs 2 --mas ../shared/data/mascorpus/tweets_marketing.csv
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT  # noqa: E402

BENCH_DATA = ROOT.parent / "shared" / "data" / "benchmarks"
KS = (1, 2, 4, 8, 16, 32)
CONFIGS = (
    "seed",
    "prompt",
    "prompt_cf",
    "prompt_batch",
    "head",
    "knn",
    "tfidf_word",
    "tfidf_char",
    "union",
    "prompt_tfidf",
    "prompt_union",
    "prompt_two_examples",
    "lora",
    "pick",
)

# Per task: instruction, text and label field names, label words.
TASKS = {
    "sst2": dict(instruction="Classify the sentiment of each movie review: {labels}.", text_name="Review",
                 label_name="Sentiment", label_words={0: "negative", 1: "positive"}),
    "trec": dict(instruction="Classify each question by the type of its answer: {labels}.", text_name="Question",
                 label_name="Answer type",
                 label_words={"ABBR": "abbreviation", "DESC": "description", "ENTY": "entity", "HUM": "person",
                              "LOC": "location", "NUM": "number"}),
    "mas": dict(text_name="Tweet", label_name="Categoría"),
}  # fmt: skip


def task_options(task: str) -> dict:
    """The classifier's options for a task: ``TASKS``' own, and for MAS the seed's instruction."""
    options = dict(TASKS[task])
    if task == "mas":
        from skllm_fewshot.datasets import SEED_SECTOR_NAMES, seed_instruction

        options["instruction"] = seed_instruction(sorted(SEED_SECTOR_NAMES.values()))
    return options


def load_task(name: str, args: argparse.Namespace, test_size: int):
    """(pool texts, pool labels, test texts, test labels) of a task, fixed by seed 0."""
    from sklearn.model_selection import train_test_split

    rng = np.random.RandomState(0)
    if name == "sst2":

        def read(path):
            rows = [line.rstrip("\n").split(" ", 1) for line in open(path, encoding="utf-8") if line.strip()]
            return np.array([t for _, t in rows], dtype=object), np.array([int(c) for c, _ in rows])

        X, y = read(Path(args.data_dir) / "sst2_train.txt")
        Xt, yt = read(Path(args.data_dir) / "sst2_dev.txt")
    elif name == "trec":
        rows = [
            line.rstrip("\n").split(" ", 1)
            for line in open(Path(args.data_dir) / "trec_train.txt", encoding="latin-1")
            if line.strip()
        ]
        texts = np.array([t for _, t in rows], dtype=object)
        labels = np.array([c.split(":")[0] for c, _ in rows], dtype=object)
        X, Xt, y, yt = train_test_split(texts, labels, test_size=800, stratify=labels, random_state=0)
    else:
        from skllm_fewshot.datasets import load_mas_tweets

        tweets, _ = load_mas_tweets(args.mas)
        texts, labels = tweets["TEXTO"].to_numpy(dtype=object), tweets["SECTOR"].to_numpy(dtype=object)
        X, Xt, y, yt = train_test_split(texts, labels, test_size=0.3, stratify=labels, random_state=0)
    keep = rng.choice(len(Xt), size=min(test_size, len(Xt)), replace=False)
    return X, y, Xt[keep], yt[keep]


def add_cell_arguments(parser: argparse.ArgumentParser, ks: list[int], draws: int) -> None:
    """The options that name the cells (tasks, k, draws) and where the data and threads come from,
    shared by the benchmarks that read ``load_task`` and ``draw_rows``."""
    parser.add_argument("--tasks", nargs="+", default=["sst2", "trec", "mas"], choices=sorted(TASKS))
    parser.add_argument("--ks", nargs="+", type=int, default=ks)
    parser.add_argument("--draws", type=int, default=draws)
    parser.add_argument("--first-draw", type=int, default=0, help="to add draws to an earlier run")
    parser.add_argument("--data-dir", default=str(BENCH_DATA))
    parser.add_argument("--mas", default=str(DEFAULT_DATA), help="path of tweets_marketing.csv")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per process")
    parser.add_argument(
        "--model", default=None, help="model name, id, folder or .gguf (default: the embedded default)"
    )


def draw_rows(y: np.ndarray, draw: int, k_max: int) -> list[np.ndarray]:
    """Per class, the pool rows in this draw's order: the first k are the k-row set."""
    rng = np.random.RandomState(100 + draw)
    return [rng.permutation(np.flatnonzero(y == c))[:k_max] for c in np.unique(y)]


def make_configs(task: str, draw: int, configs_run=CONFIGS, model=None):
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV
    from skllm_fewshot._ensemble import ProductOfExperts
    from skllm_fewshot._finetuning import LoRAFineTuning
    from skllm_fewshot._search import default_candidates, default_fallback

    options = task_options(task)

    def llm(**kw):
        return FewShotLLMClassifier(
            model=model, **{"n_examples_per_class": 1, "random_state": draw, **options, **kw}
        )

    def lr(c):
        return LogisticRegression(C=c, max_iter=3000)

    # The head and the union are FewShotLLMClassifierCV's candidates of the same names.
    candidates = dict(default_candidates(llm()))
    head, union = candidates["head_C0.01"], candidates["union_C100"]
    char_ngrams = TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True)
    tfidf_char = make_pipeline(char_ngrams, lr(10.0))
    # The head first: its pass reads the hidden states and the label scores, which the
    # prompt, kNN Prompting and the union then take from the feature cache.
    configs = {
        "head": head,
        "prompt": llm(),
        "prompt_cf": llm(calibrate=True),
        "prompt_batch": llm(calibrate="batch"),
        "knn": llm(head="knn"),
        "seed": llm(label_scoring="first_token", calibrate=False),
        "tfidf_word": make_pipeline(TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True), lr(10.0)),
        "tfidf_char": tfidf_char,
        "union": union,
        "prompt_tfidf": ProductOfExperts([("prompt", llm()), ("tfidf", tfidf_char)]),
        # The pick's fallback with one row per class.
        "prompt_union": default_fallback(llm()),
        # The pick's prompt with two rows in each of two classes.
        "prompt_two_examples": llm(n_examples_per_class=2),
        "lora": llm(head=LoRAFineTuning(), calibrate=False),
    }
    # The pick first: its refit reads the test rows' features under the prompt that the
    # prompt, the head and the union share, and they take them from the feature cache.
    configs = {"pick": FewShotLLMClassifierCV(llm(), random_state=draw), **configs}
    return {name: model for name, model in configs.items() if name in configs_run}


def run_task(task: str, args_dict: dict) -> list[dict]:
    import torch
    from sklearn.metrics import accuracy_score, log_loss

    torch.set_num_threads(args_dict["threads"])
    args = argparse.Namespace(**args_dict)
    X, y, Xt, yt = load_task(task, args, args.test)
    classes = np.unique(y)
    records = []
    for draw in range(args.first_draw, args.first_draw + args.draws):
        order = draw_rows(y, draw, max(args.ks))
        for k in args.ks:
            rows = np.concatenate([o[:k] for o in order])
            for name, model in make_configs(task, draw, args.configs, args.model).items():
                start = time.perf_counter()
                model.fit(X[rows], y[rows])
                fitted = time.perf_counter()
                proba = model.predict_proba(Xt)
                done = time.perf_counter()
                model_classes = getattr(model, "classes_", classes)
                pred = np.asarray(model_classes)[proba.argmax(1)]
                picked = getattr(model, "best_name_", "")
                records.append(
                    dict(
                        task=task,
                        draw=draw,
                        k=k,
                        config=name,
                        accuracy=accuracy_score(yt, pred),
                        log_loss=log_loss(yt, np.clip(proba, 1e-15, 1), labels=model_classes),
                        fit_s_per_row=(fitted - start) / len(rows),
                        predict_s_per_row=(done - fitted) / len(Xt),
                        picked=picked,
                    )
                )
                cv = getattr(model, "cv_results_", None)
                if cv is not None:  # each candidate's fold scores, to study the pick's rule offline
                    names = list(cv["name"])
                    splits = sorted(
                        key for key in cv if key.startswith("split") and key.endswith("_test_score")
                    )
                    records[-1]["cv_scores"] = {
                        n: [float(cv[s][i]) for s in splits] for i, n in enumerate(names)
                    }
                print(json.dumps({k_: v for k_, v in records[-1].items()}), flush=True)
    return records


def render(records: list[dict], meta: dict) -> str:
    import pandas as pd

    df = pd.DataFrame(records)
    lines = [
        f"Command: `{meta['command']}`; {meta['date']}, {meta['draws']} draws, {meta['test']} test rows "
        "per task, the embedded SmolLM2-135M-Instruct on the CPU.",
        "",
    ]
    for task, part in df.groupby("task", sort=False):
        acc = part.pivot_table(index="config", columns="k", values="accuracy", aggfunc="mean").reindex(
            CONFIGS
        )
        sd = part.pivot_table(
            index="config", columns="k", values="accuracy", aggfunc="std", dropna=False
        ).reindex(CONFIGS)
        ll = part.pivot_table(index="config", columns="k", values="log_loss", aggfunc="mean").reindex(CONFIGS)
        ks = list(acc.columns)
        lines += [
            f"### {task}: accuracy (± std over draws) and log-loss",
            "",
            "| config | " + " | ".join(f"k={k}" for k in ks) + " |",
            "|---" * (len(ks) + 1) + "|",
        ]
        for config in acc.index:
            cells = [
                f"{acc.loc[config, k]:.3f}"
                + ("" if np.isnan(sd.loc[config, k]) else f" ± {sd.loc[config, k]:.3f}")
                + f" ({ll.loc[config, k]:.2f})"
                if not np.isnan(acc.loc[config, k])
                else "-"
                for k in ks
            ]
            lines.append(f"| {config} | " + " | ".join(cells) + " |")
        picks = (
            part[part.config == "pick"].groupby("k")["picked"].apply(lambda s: ", ".join(p or "-" for p in s))
        )
        lines += [
            "",
            "FewShotLLMClassifierCV's picks by k (fallback: one row per class): "
            + "; ".join(f"k={k}: {p}" for k, p in picks.items()),
            "",
        ]
    speed = df[df.config == "head"].agg({"fit_s_per_row": "median", "predict_s_per_row": "median"})
    lines += [
        f"Head path speed (median over tasks, draws and k): fit {speed['fit_s_per_row']:.3f} s per "
        f"training row, predict {speed['predict_s_per_row']:.3f} s per predicted row.",
        "",
    ]
    return "\n".join(lines)


def plot(records: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    df = pd.DataFrame(records)
    tasks = list(dict.fromkeys(df.task))
    fig, axes = plt.subplots(1, len(tasks), figsize=(5 * len(tasks), 4), squeeze=False)
    for ax, task in zip(axes[0], tasks):
        part = df[df.task == task].groupby(["config", "k"]).accuracy.mean().unstack(0)
        # One colour per configuration: the default cycle has 10, fewer than CONFIGS.
        for config, colour in zip(CONFIGS, plt.cm.tab20.colors):
            if config in part:
                ax.plot(
                    part.index,
                    part[config],
                    marker="o",
                    label=config,
                    color="black" if config == "pick" else colour,
                    lw=2.5 if config == "pick" else 1.2,
                )
        ax.set_xscale("log", base=2)
        ax.set_title(task)
        ax.set_xlabel("labelled rows per class (k)")
        ax.set_ylabel("accuracy")
    axes[0][-1].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, list(KS), 3)
    parser.add_argument("--test", type=int, default=300, help="test rows per task")
    parser.add_argument("--jobs", type=int, default=1, help="tasks run in parallel processes")
    parser.add_argument(
        "--configs",
        nargs="+",
        default=list(CONFIGS),
        choices=CONFIGS,
        help="run only these (e.g. a changed one, with --merge)",
    )
    parser.add_argument(
        "--merge",
        type=int,
        default=0,
        metavar="N",
        help="report with the records of the last N runs in accuracy.jsonl; this run's replace "
        "theirs for the same task, draw, k and configuration",
    )
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_accuracy.py " + " ".join(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    start = time.perf_counter()
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        parts = list(pool.map(run_task, args.tasks, [vars(args)] * len(args.tasks)))
    records = [r for part in parts for r in part]
    meta = dict(
        command=command.strip(),
        date=time.strftime("%Y-%m-%d"),
        draws=args.draws,
        test=args.test,
        seconds=round(time.perf_counter() - start),
    )
    out = Path(args.out)
    with open(out / "accuracy.jsonl", "a+", encoding="utf-8") as f:
        f.seek(0)
        earlier = [json.loads(line) for line in f if line.strip()][-args.merge :] if args.merge else []
        if records:  # --draws 0 --merge N: only report
            f.write(json.dumps(dict(meta=meta, records=records)) + "\n")
    merged = {}
    for run in [*earlier, dict(meta=meta, records=records)]:
        merged.update({(r["task"], r["draw"], r["k"], r["config"]): r for r in run["records"]})
    if earlier:
        meta["command"] = "; ".join(run["meta"]["command"] for run in [*earlier, dict(meta=meta)])
        meta["draws"] = len({(r["task"], r["draw"]) for r in merged.values()}) // len(
            {r["task"] for r in merged.values()}
        )
    records = list(merged.values())
    table = render(records, meta)
    print(table)
    (out / "accuracy_latest.md").write_text(table, encoding="utf-8")
    plot(records, out / "accuracy_vs_k.png")


if __name__ == "__main__":
    main()

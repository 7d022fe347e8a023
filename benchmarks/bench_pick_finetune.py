"""When should ``FewShotLLMClassifierCV`` take the fine-tuned candidate? Out-of-fold probabilities to decide.

For each task, draw and k of ``bench_accuracy.py`` (the same rows, the same default
folds as the search), every default candidate, ``lora`` included, is fitted on each
fold's training rows and predicts its held-out rows; then each is fitted on all k rows
per class and predicts the test rows. The probabilities are kept, so that any
selection rule (the score, the bar, a margin for the costly candidate) is measured
offline, on 300 test rows per cell, without refitting anything:

    python benchmarks/bench_pick_finetune.py --tasks sst2 --ks 8 --draws 5
    python benchmarks/bench_pick_finetune.py --report      # the rules' table from docs/pick_finetune.jsonl

Appends one JSON line per cell to ``docs/pick_finetune.jsonl``; the table goes to stdout
(``docs/accuracy_log.md`` quotes it).
"""

from __future__ import annotations

import argparse
import functools
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs  # noqa: E402

OUT_FILE = ROOT / "docs" / "pick_finetune.jsonl"


def collect(args: argparse.Namespace) -> None:
    import torch
    from sklearn.base import clone
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skllm_fewshot._finetuning import LoRAFineTuning
    from skllm_fewshot._search import default_candidates, default_cv

    torch.set_num_threads(args.threads)
    for task in args.tasks:
        X, y, Xt, yt = load_task(task, args, 300)
        classes = np.unique(y)
        for draw in range(args.first_draw, args.first_draw + args.draws):
            order = draw_rows(y, draw, max(args.ks))
            for k in args.ks:
                rows = np.concatenate([o[:k] for o in order])
                Xk, yk = X[rows], y[rows]
                search = make_configs(task, draw, ["pick"])["pick"]
                candidates = default_candidates(search.classifier, fine_tune=True)
                lora = dict(candidates)["lora"]
                # Fine-tune, then probe: a frozen-style head on the adapted model's features.
                probe = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=3000))
                candidates.append(("lora_probe", clone(lora).set_params(head=LoRAFineTuning(probe=probe))))
                candidates = [(n, e) for n, e in candidates if not args.only or n in args.only]
                cv = default_cv(k, random_state=draw)  # the search's own folds
                folds, seconds = [], dict.fromkeys((n for n, _ in candidates), 0.0)
                for train, test in cv.split(Xk, yk):
                    fold = dict(y=yk[test].tolist(), proba={})
                    for name, estimator in candidates:
                        start = time.perf_counter()
                        model = clone(estimator).fit(Xk[train], yk[train])
                        fold["proba"][name] = model.predict_proba(Xk[test]).tolist()
                        seconds[name] += time.perf_counter() - start
                    folds.append(fold)
                test = {}
                for name, estimator in candidates:
                    model = clone(estimator).fit(Xk, yk)
                    proba = model.predict_proba(Xt)
                    test[name] = float(np.mean(classes[proba.argmax(1)] == yt))
                record = dict(
                    task=task,
                    draw=draw,
                    k=k,
                    classes=classes.tolist(),
                    folds=folds,
                    test_accuracy=test,
                    cv_seconds=seconds,
                )
                with open(args.out, "a", encoding="utf-8") as out:
                    out.write(json.dumps(record) + "\n")
                print(
                    task,
                    draw,
                    k,
                    {n: round(a, 3) for n, a in test.items()},
                    {n: round(s) for n, s in seconds.items()},
                    flush=True,
                )


def fold_scores(record: dict, name: str, metric: str) -> np.ndarray:
    """``name``'s score on each fold of ``record`` (higher is better)."""
    classes = record["classes"]
    scores = []
    for fold in record["folds"]:
        y = np.array([classes.index(c) for c in fold["y"]])
        if name == "constant":  # the training rows' prior: the rows are balanced
            proba = np.full((len(y), len(classes)), 1.0 / len(classes))
        else:
            proba = np.asarray(fold["proba"][name])
        if metric == "log_loss":
            scores.append(np.mean(np.log(np.clip(proba[np.arange(len(y)), y], 1e-15, 1))))
        elif metric == "accuracy":
            scores.append(np.mean(proba.argmax(1) == y))
        else:  # Brier
            onehot = np.eye(len(classes))[y]
            scores.append(-np.mean(((proba - onehot) ** 2).sum(1)))
    return np.array(scores)


def choose(record: dict, metric: str, margin_se: float) -> str:
    """The frozen pick, replaced by ``lora`` where ``lora`` beats it by ``metric`` by more than ``margin_se`` SE."""
    frozen = library_pick(record)
    diff = fold_scores(record, "lora", metric) - fold_scores(record, frozen, metric)
    se = diff.std(ddof=1) / math.sqrt(len(diff))
    return "lora" if diff.mean() > margin_se * se else frozen


def library_pick(record: dict, with_tuned: tuple[str, ...] = ()) -> str:
    """What ``FewShotLLMClassifierCV`` picks from these fold scores (``pick_within_noise``), with the
    frozen candidates and the fine-tuned ones named in ``with_tuned``."""
    from skllm_fewshot._search import CONSTANT, pick_within_noise

    missing = [n for n in with_tuned if n not in record["test_accuracy"]]
    if missing:
        raise KeyError(missing)
    names = [n for n in record["test_accuracy"] if not n.startswith("lora") or n in with_tuned] + [CONSTANT]
    folds = np.array([fold_scores(record, n, "log_loss") for n in names]).T
    cv_results = {
        "mean_test_score": folds.mean(0),
        **{f"split{i}_test_score": f for i, f in enumerate(folds)},
    }
    n_rows = record["k"] * len(record["classes"])
    ratio = float(np.mean([len(f["y"]) / (n_rows - len(f["y"])) for f in record["folds"]]))
    return names[pick_within_noise(cv_results, names, test_train_ratio=ratio, n_rows=n_rows)]


def report(path: Path) -> str:
    cells = {}
    for line in open(path, encoding="utf-8"):
        r = json.loads(line)
        cell = cells.setdefault((r["task"], r["draw"], r["k"]), r)
        if cell is not r:  # a later run of some candidates (--only) on the same cell
            for name in ("test_accuracy", "cv_seconds"):
                cell[name].update(r[name])
            for fold, more in zip(cell["folds"], r["folds"]):
                fold["proba"].update(more["proba"])
    rules = {
        "frozen pick": lambda r: library_pick(r),
        "the pick with lora": lambda r: library_pick(r, ("lora",)),
        "lora alone": lambda r: "lora",
        "the pick with lora_probe": lambda r: library_pick(r, ("lora_probe",)),
        "lora_probe alone": lambda r: "lora_probe",
    }
    for metric in ("log_loss", "accuracy", "brier"):
        for margin in (0.0, 1.0):
            rules[f"lora over the frozen pick by {metric}, {margin:g} SE"] = functools.partial(
                choose, metric=metric, margin_se=margin
            )
    lines = ["| task | k | draws | " + " | ".join(rules) + " |", "|---" * (len(rules) + 3) + "|"]
    for task, k in sorted(dict.fromkeys((t, k) for t, _, k in cells)):
        records = [cells[key] for key in sorted(cells) if key[0] == task and key[2] == k]
        row = [task, str(k), str(len(records))]
        for rule in rules.values():
            try:
                picks = [rule(r) for r in records]
                accuracy = np.mean([r["test_accuracy"][p] for r, p in zip(records, picks)])
            except KeyError:  # a candidate not run on every draw of this cell
                row.append("-")
                continue
            row.append(f"{accuracy:.3f} ({sum(p.startswith('lora') for p in picks)} tuned)")
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [8], 5)
    parser.add_argument("--out", default=str(OUT_FILE))
    parser.add_argument(
        "--only", nargs="+", default=[], help="only these candidates (the report merges runs)"
    )
    parser.add_argument(
        "--report", action="store_true", help="only the table, from the recorded probabilities"
    )
    args = parser.parse_args(argv)
    if not args.report:
        collect(args)
    print(report(Path(args.out)))


if __name__ == "__main__":
    main()

"""What ``FewShotLLMClassifierCV`` fits when a class has one row: the prompt, or its product with a union.

Rows of each task are drawn as ``bench_accuracy.py`` draws them (per class, the first
rows of the draw's order), in three shapes: one row per class (``balanced``); 1 to 3
rows per class with at least one class at 1 (``lopsided``); 2 to 6 with one class at 1
(``heavy``): the shapes that labelling by hand, or ``suggest_labels``, leaves behind.
Each shape is scored on 150 test rows with

- ``prompt``: the classifier without a head (one example per class);
- ``rows``: the prompt x the ``union_C100`` candidate fitted on the rows (the fallback
  before this benchmark);
- ``means``: the prompt x the same union fitted on one mean row per class
  (:class:`~skllm_fewshot._heads.ClassMeans`, ``default_fallback``);
- ``union_means``: that union alone;
- ``search``: ``FewShotLLMClassifierCV`` itself (``fine_tune=False``), which, when at
  least half the classes have several rows, cross-validates the candidates and the
  fallback on them, the classes with a single row in every training fold.

    python benchmarks/bench_fallback.py --shape lopsided --draws 4 --mas PATH

Appends one record per (task, shape, draw) to ``docs/fallback.jsonl`` and writes the mean
accuracies to ``docs/fallback_latest.md``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, recorded_main  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs  # noqa: E402

CONFIGS = ("prompt", "rows", "means", "union_means", "search")


def row_counts(n_classes: int, shape: str, draw: int) -> list[int]:
    """Rows per class of one draw: every shape has a class with a single row."""
    rng = np.random.RandomState(500 + draw)
    if shape == "balanced":
        return [1] * n_classes
    counts = list(
        rng.randint(2, 7, size=n_classes) if shape == "heavy" else rng.randint(1, 4, size=n_classes)
    )
    counts[rng.randint(n_classes)] = 1
    if max(counts) == 1:  # lopsided means at least one class with more rows
        counts[(counts.index(1) + 1) % n_classes] = 3
    return [int(c) for c in counts]


def measure(args, command: str, out: Path) -> None:
    import torch
    from sklearn.base import clone

    from skllm_fewshot._ensemble import ProductOfExperts
    from skllm_fewshot._search import FewShotLLMClassifierCV, _prompt, _union, default_fallback

    torch.set_num_threads(args.threads)
    for task in args.tasks:
        X, y, Xt, yt = load_task(task, args, args.test)
        for draw in range(args.first_draw, args.first_draw + args.draws):
            order = draw_rows(y, draw, 6)
            counts = row_counts(len(order), args.shape, draw)
            rows = np.concatenate([o[:c] for o, c in zip(order, counts)])
            prompt = _prompt(make_configs(task, draw, ["prompt"])["prompt"], "fallback")
            means = default_fallback(prompt)  # the library's own fallback
            configs = {
                "prompt": clone(prompt),
                "rows": ProductOfExperts([("prompt", clone(prompt)), ("union", _union(prompt, 100.0))]),
                "means": means,
                "union_means": clone(means.estimators[1][1]),
                "search": FewShotLLMClassifierCV(clone(prompt), fine_tune=False, random_state=draw),
            }
            accuracy = {}
            for name, estimator in configs.items():
                estimator.fit(X[rows], y[rows])
                accuracy[name] = float(np.mean(estimator.predict(Xt) == yt))
            record = dict(task=task, shape=args.shape, draw=draw, counts=counts, test=len(yt),
                          accuracy=accuracy, picked=configs["search"].best_name_,
                          date=time.strftime("%Y-%m-%d"), command=command)  # fmt: skip
            append_records(out, [record])
            print(task, args.shape, draw, counts, accuracy, flush=True)


def render(records: list[dict]) -> str:
    lines = [
        "Mean test accuracy over the draws when a class has one row, on 150 test rows per task: the "
        "prompt alone; its product with a union fitted on the rows, or on the class means (the fallback "
        "with three classes or more); that union alone; and what `FewShotLLMClassifierCV` fits (-: not "
        "measured). With two classes the fallback is the prompt alone.",
        "",
        "| task | rows | draws | " + " | ".join(CONFIGS) + " |",
        "|---|---|---|" + "---|" * len(CONFIGS),
    ]
    for task in sorted({r["task"] for r in records}):
        for shape in ("balanced", "lopsided", "heavy"):
            cell = [r for r in records if r["task"] == task and r["shape"] == shape]
            if cell:
                means = [
                    f"{np.mean([r['accuracy'][c] for r in cell]):.3f}"
                    if all(c in r["accuracy"] for r in cell) else "-"
                    for c in CONFIGS
                ]  # fmt: skip
                lines.append(f"| {task} | {shape} | {len(cell)} | " + " | ".join(means) + " |")
    commands = sorted({(r["date"], r["command"]) for r in records})
    lines += ["", "Measured by: " + "; ".join(f"`{c}` ({d})" for d, c in commands)]
    return "\n".join(lines) + "\n"


def add_arguments(parser) -> None:
    add_cell_arguments(parser, [1], 4)
    parser.add_argument("--shape", choices=["balanced", "lopsided", "heavy"], default="lopsided")
    parser.add_argument("--test", type=int, default=150, help="test rows per task")


if __name__ == "__main__":
    recorded_main(
        None, script="bench_fallback.py", description=__doc__, records=ROOT / "docs" / "fallback.jsonl",
        key=("task", "shape", "draw"), measure=measure, render=render, add_arguments=add_arguments,
    )  # fmt: skip

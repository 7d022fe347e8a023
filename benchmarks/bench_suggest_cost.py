"""What ``suggest_labels`` costs: its time against one ``predict_proba`` pass over the same pool.

On each task, the classifier's default (the prompt with one labelled row per class, fitted
on two rows per class drawn outside the pool) reads a pool of ``--pool`` texts. Side by
side in one process, each from an empty feature cache and ``--repeats`` times in turn:

- ``predict_proba``: one pass over the pool, the reference;
- ``suggest_labels`` with ``"typical"`` (the default) and with ``"margin_diversity"``
  (which also reads the probabilities), ``n`` = the number of classes;
- ``suggest_labels`` again on a pool already read (the feature cache).

Then the picks alone (``skllm_fewshot._active.select``) on ``--large`` rows of features
of the model's width (the pool's own features, repeated with noise), from the float32
rows the feature cache holds: their time and the peak memory they allocate, what a pool
of that size adds to its pass.

    python benchmarks/bench_suggest_cost.py --tasks sst2 --pool 400 --repeats 2

Appends one record per task to ``docs/active_cost.jsonl`` and writes the newest record of
each (task, pool, threads) to ``docs/active_cost_latest.md``.
"""

from __future__ import annotations

import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, measured_by, recorded_main, run_context  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, task_options  # noqa: E402

STRATEGIES = ("typical", "margin_diversity")


def measure(args, command: str, out: Path) -> None:
    import torch

    torch.set_num_threads(args.threads)
    for task in args.tasks:
        append_records(out, [measure_task(task, args, command)])


def measure_task(task: str, args, command: str) -> dict:
    from skllm_fewshot import FewShotLLMClassifier, clear_feature_cache, suggest_labels
    from skllm_fewshot._active import select, unit_rows

    X, y, _, _ = load_task(task, args, 1)
    rows = np.concatenate([order[:2] for order in draw_rows(y, 0, 2)])
    rest = np.setdiff1d(np.arange(len(X)), rows)
    pool = X[np.random.RandomState(0).choice(rest, size=min(args.pool, len(rest)), replace=False)]
    options = task_options(task)
    clf = FewShotLLMClassifier(model=args.model, random_state=0, **options).fit(X[rows], y[rows])
    n = len(clf.classes_)
    clf.predict_proba(pool[:8])  # the prefix and the threads warmed, outside the clocks
    context = run_context()

    def timed(call, *args, **kwargs) -> float:
        start = time.perf_counter()
        call(*args, **kwargs)
        return time.perf_counter() - start

    seconds: dict[str, list[float]] = {"predict_proba": [], **{s: [] for s in STRATEGIES}}
    for _ in range(args.repeats):  # in turn, so that a busy spell falls on every column
        for name in seconds:
            clear_feature_cache()
            if name == "predict_proba":
                seconds[name].append(timed(clf.predict_proba, pool))
            else:
                seconds[name].append(timed(suggest_labels, clf, pool, n, strategy=name, random_state=0))
    cached = timed(suggest_labels, clf, pool, n, random_state=1)

    # The picks alone on a large pool: the pool's features repeated with noise, so that
    # k-means and the neighbours see as many distinct rows as a real pool of that size,
    # from the float32 rows the feature cache holds to the picks.
    features = clf.features(pool)
    proba = clf.predict_proba(pool)
    rng = np.random.RandomState(0)
    take = rng.randint(len(pool), size=args.large)
    noise = 0.1 * features.std(axis=0) * rng.standard_normal((args.large, features.shape[1]))
    big = (features[take] + noise).astype(np.float32)
    done = np.zeros(args.large, dtype=bool)
    large = {}
    for name in STRATEGIES:
        tracemalloc.start()
        start = time.perf_counter()
        picks = np.random.RandomState(0)
        select(unit_rows(big), proba[take], done, n, name, picks, missing=np.zeros(n, dtype=bool))
        large[name] = dict(
            seconds=time.perf_counter() - start, peak_mib=tracemalloc.get_traced_memory()[1] / 2**20
        )
        tracemalloc.stop()
    return dict(
        task=task, pool=len(pool), classes=n, model=args.model or "smollm2-135m", threads=args.threads,
        repeats=args.repeats, seconds=seconds, cached_s=cached, features=int(features.shape[1]),
        large=args.large, large_picks=large, date=time.strftime("%Y-%m-%d"), command=command, **context,
    )  # fmt: skip


def render(records: list[dict]) -> str:
    lines = [
        "`suggest_labels` against one `predict_proba` pass over the same pool, side by side in one "
        "process, each from an empty feature cache (median of the repeats; the ratio to the pass in "
        "brackets); then the picks alone on a large pool of features of the model's width.",
        "",
        "| task | pool | threads | predict_proba (s) | ms/text | typical (s) | margin_diversity (s) "
        "| again, pool cached (s) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in records:
        s = {k: float(np.median(v)) for k, v in r["seconds"].items()}
        base = s["predict_proba"]
        cells = [f"{s[name]:.1f} ({s[name] / base:.2f}x)" for name in STRATEGIES]
        lines.append(
            f"| {r['task']} | {r['pool']} | {r['threads']} | {base:.1f} | {1e3 * base / r['pool']:.0f} | "
            + " | ".join(cells) + f" | {r['cached_s']:.2f} |"
        )  # fmt: skip
    lines += [
        "",
        "| task | pool of features | width | picks | seconds | peak MiB allocated |",
        "|---|---|---|---|---|---|",
    ]
    for r in records:
        for name, cell in r["large_picks"].items():
            lines.append(
                f"| {r['task']} | {r['large']} | {r['features']} | {name} | {cell['seconds']:.1f} | "
                f"{cell['peak_mib']:.0f} |"
            )
    lines += ["", "Measured by:", "", *measured_by(records)]
    return "\n".join(lines) + "\n"


def add_arguments(parser) -> None:
    add_cell_arguments(parser, [2], 1)
    parser.add_argument("--pool", type=int, default=400, help="texts in the pool the model reads")
    parser.add_argument("--repeats", type=int, default=2, help="timed passes of each column, in turn")
    parser.add_argument("--large", type=int, default=10_000, help="rows of the large pool the picks run on")


if __name__ == "__main__":
    recorded_main(
        None, script="bench_suggest_cost.py", description=__doc__, records=ROOT / "docs" / "active_cost.jsonl",
        key=("task", "pool", "threads"), measure=measure, render=render, add_arguments=add_arguments,
    )  # fmt: skip

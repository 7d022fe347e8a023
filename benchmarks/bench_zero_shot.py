"""Zero-shot from label names and descriptions against the few-shot prompt, on the shipped tweets.

On the 91 example tweets of ``skllm_fewshot.datasets.load_example_tweets`` (7 sectors)
with the embedded model, ``FewShotLLMClassifier`` with each ``label_scoring``: (a) the
prompt with one example per class, ``calibrate=True`` and ``"domain"``, over several
draws of the examples, scored on the tweets not in the prompt; (b) zero-shot from the
class names alone, ``fit(None, names)``; (c) zero-shot with ``label_descriptions``
(each class's description shown as a demonstration), both scored on all 91 tweets.

Each measured cell is appended as one JSON line to ``docs/zero_shot.jsonl`` (date,
command, model, estimator options, accuracies); the table of the newest record of each
cell is written to ``docs/zero_shot_latest.md``, which ``docs/zero_shot.md`` includes.

    python benchmarks/bench_zero_shot.py --draws 5
    python benchmarks/bench_zero_shot.py --report      # only the table, from the records
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, measured_by, recorded_main, run_context  # noqa: E402

INSTRUCTION = (
    "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
    "Las posibles categorías son: {labels}"
)
MODEL = "smollm2-135m"  # model=None, the embedded default
KEY = ("model", "configuration", "label_scoring")
ONE_SHOT = "one example per class"


def measure(args: argparse.Namespace, command: str, out: Path) -> None:
    from skllm_fewshot import FewShotLLMClassifier
    from skllm_fewshot.datasets import SECTOR_DESCRIPTIONS, load_example_tweets

    tweets, _ = load_example_tweets()
    X, y = tweets["TEXTO"].to_numpy(dtype=object), tweets["SECTOR"].to_numpy(dtype=object)
    names = sorted(set(y))
    common = dict(instruction=INSTRUCTION, text_name="Tweet", label_name="Categoría")
    context = run_context()

    def record(configuration: str, options: dict, accs: list[float], seconds: float, **fields) -> None:
        cell = dict(
            date=time.strftime("%Y-%m-%d"),
            command=command,
            model=MODEL,
            data="load_example_tweets(): 91 tweets, 7 sectors",
            estimator="FewShotLLMClassifier",
            configuration=configuration,
            label_scoring=options["label_scoring"],
            options=options,
            **fields,
            accuracy=float(np.mean(accs)),
            accuracy_std=float(np.std(accs)),
            accuracies=[float(a) for a in accs],
            seconds=round(seconds, 1),
            **context,
        )
        append_records(out, [cell])
        print(f"{configuration} ({options['label_scoring']}): {cell['accuracy']:.3f}", flush=True)

    for scoring in ("full_label", "first_token"):
        for calibrate in (True, "domain"):
            options = dict(n_examples_per_class=1, label_scoring=scoring, calibrate=calibrate, **common)
            accs, start = [], time.perf_counter()
            for seed in range(args.draws):
                clf = FewShotLLMClassifier(**options, random_state=seed).fit(X, y)
                shown = {t for t, _ in clf.examples_}
                rest = np.array([t not in shown for t in X])
                accs.append(clf.score(X[rest], y[rest]))
            record(
                f"{ONE_SHOT}, calibrate={calibrate!r}",
                {**options, "random_state": "the draw (0, 1, ...)"},
                accs,
                time.perf_counter() - start,
                draws=args.draws,
                scored_on="the tweets not in the prompt (fitted on all 91)",
            )
        for configuration, extra in (
            ("zero-shot, class names", {}),
            ("zero-shot, names + label_descriptions", dict(label_descriptions=SECTOR_DESCRIPTIONS)),
        ):
            options = dict(n_examples_per_class=0, label_scoring=scoring, **common)
            start = time.perf_counter()
            clf = FewShotLLMClassifier(**options, **extra).fit(None, names)
            acc = clf.score(X, y)
            if extra:
                options["label_descriptions"] = "skllm_fewshot.datasets.SECTOR_DESCRIPTIONS"
            record(
                configuration,
                options,
                [acc],
                time.perf_counter() - start,
                draws=1,
                scored_on="all 91 tweets (fit(None, names): no labelled tweet)",
            )


def _value(value) -> str:
    return value if isinstance(value, str) and value.startswith("the draw") else repr(value)


def render(records: list[dict]) -> str:
    """The table of the newest record of each cell, saying which estimator and options it measured."""
    if not records:
        return "No records yet: `python benchmarks/bench_zero_shot.py --draws 5`.\n"
    keys = list(dict.fromkeys(k for r in records for k in r["options"]))
    shared = {
        k: records[0]["options"][k]
        for k in keys
        if all(k in r["options"] and r["options"][k] == records[0]["options"][k] for r in records)
    }
    models = sorted({r["model"] for r in records})
    lines = [
        f"`{records[0]['estimator']}` with `model=None` (the embedded {', '.join(models)}) on the CPU, "
        f"on `{records[0]['data']}`; every row also has "
        + ", ".join(f"`{k}={_value(v)}`" for k, v in shared.items() if k != "instruction")
        + (f" and `instruction={shared['instruction']!r}`" if "instruction" in shared else "")
        + ". The one-example rows are the mean ± std over the draws of the examples, scored on the tweets "
        "not in the prompt (fitted on all 91, so `calibrate='domain'` draws its bags of words from all of "
        "them); the zero-shot rows are scored on all 91, with content-free calibration. The descriptions "
        "are `skllm_fewshot.datasets.SECTOR_DESCRIPTIONS`.",
        "",
        "| configuration | options | accuracy | draws | date |",
        "|---|---|---|---|---|",
    ]
    for r in records:
        options = ", ".join(f"{k}={_value(v)}" for k, v in r["options"].items() if k not in shared)
        acc = f"{r['accuracy']:.3f}" + (f" ± {r['accuracy_std']:.3f}" if r["draws"] > 1 else "")
        lines.append(f"| {r['configuration']} | `{options}` | {acc} | {r['draws']} | {r['date']} |")
    lines += ["", "Measured by:", *measured_by(records)]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    def add_arguments(parser):
        parser.add_argument("--draws", type=int, default=5, help="draws of the one-shot examples")

    recorded_main(
        argv, script="bench_zero_shot.py", description=__doc__, records=ROOT / "docs" / "zero_shot.jsonl", key=KEY,
        measure=measure, render=render, add_arguments=add_arguments,
    )  # fmt: skip


if __name__ == "__main__":
    main()

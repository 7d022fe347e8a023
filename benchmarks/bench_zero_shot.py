"""Zero-shot from label names and descriptions against the few-shot prompt, on the shipped tweets.

On the 91 example tweets of ``skllm_fewshot.datasets.load_example_tweets`` (7 sectors)
with the embedded model: (a) the calibrated prompt with one example per class, over
several draws of the examples, scored on the tweets not in the prompt; (b) zero-shot
from the class names alone, ``fit(None, names)``; (c) zero-shot with
``label_descriptions`` (each class's description shown as a demonstration). Prints the table and
writes ``docs/zero_shot.md``.

    python benchmarks/bench_zero_shot.py --draws 5
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402

from skllm_fewshot import FewShotLLMClassifier  # noqa: E402
from skllm_fewshot.datasets import SECTOR_DESCRIPTIONS, load_example_tweets  # noqa: E402

INSTRUCTION = (
    "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
    "Las posibles categorías son: {labels}"
)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--draws", type=int, default=5, help="draws of the one-shot examples")
    parser.add_argument("--out", default=str(ROOT / "docs" / "zero_shot.md"))
    args = parser.parse_args(argv)
    tweets, _ = load_example_tweets()
    X, y = tweets["TEXTO"].to_numpy(dtype=object), tweets["SECTOR"].to_numpy(dtype=object)
    names = sorted(set(y))
    common = dict(text_name="Tweet", label_name="Categoría")
    rows = []
    start = time.perf_counter()
    for scoring in ("full_label", "first_token"):
        for calibrate in (True, "domain"):
            accs = []
            for seed in range(args.draws):
                clf = FewShotLLMClassifier(
                    n_examples_per_class=1,
                    instruction=INSTRUCTION,
                    scoring=scoring,
                    calibrate=calibrate,
                    random_state=seed,
                    **common,
                ).fit(X, y)
                shown = {t for t, _ in clf.examples_}
                rest = np.array([t not in shown for t in X])
                accs.append(clf.score(X[rest], y[rest]))
            rows.append(
                (f"one example per class, calibrate={calibrate!r} ({scoring})", np.mean(accs), np.std(accs))
            )
        for label, extra in (
            ("zero-shot, class names", dict(instruction=INSTRUCTION)),
            (
                "zero-shot, names + label_descriptions",
                dict(instruction=INSTRUCTION, label_descriptions=SECTOR_DESCRIPTIONS),
            ),
        ):
            clf = FewShotLLMClassifier(n_examples_per_class=0, scoring=scoring, **common, **extra).fit(
                None, names
            )
            rows.append((f"{label} ({scoring})", clf.score(X, y), 0.0))
    lines = [
        "# Zero-shot from class names and descriptions",
        "",
        f"Command: `python benchmarks/bench_zero_shot.py --draws {args.draws}`; the embedded SmolLM2-135M-Instruct"
        " on the CPU, the 91 shipped example tweets (7 sectors, `load_example_tweets`);"
        f" {time.perf_counter() - start:.0f} s; {time.strftime('%Y-%m-%d')}.",
        "",
        f"The one-example rows are the mean (± std) over {args.draws} draws of the examples, scored on the tweets"
        " not in the prompt (fitted on all 91, so `calibrate='domain'` draws its bags of words from"
        " all of them); the zero-shot rows need no labelled tweet and are scored on all 91, with"
        " content-free calibration (the default's, without training texts)."
        " The descriptions are `skllm_fewshot.datasets.SECTOR_DESCRIPTIONS`.",
        "",
        "| configuration | accuracy |",
        "|---|---|",
    ]
    lines += [f"| {name} | {acc:.3f}" + (f" ± {sd:.3f} |" if sd else " |") for name, acc, sd in rows]
    text = "\n".join(lines) + "\n"
    print(text)
    Path(args.out).write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

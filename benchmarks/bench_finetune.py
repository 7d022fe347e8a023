"""Prompt-based LoRA fine-tuning alone: accuracy and fit time by learning rate and steps.

The rows and test rows of ``bench_accuracy.py`` (same tasks, draws and k), one
``FewShotLLMClassifier(head=LoRAFineTuning(learning_rate=lr, max_steps=steps),
calibrate=False)`` per setting, under the same one-example-per-class prompt. Each
result is a JSON line printed and appended to ``docs/finetune.jsonl``, with the
training loss at the start and the end (mean of 5 steps), and the time to predict the
test rows with the adapter against the same prompt without it, measured side by side.

    python benchmarks/bench_finetune.py --task sst2 --ks 8 --draws 1 2 --lrs 1e-3 --steps 20 40
    python benchmarks/bench_finetune.py --task trec --ks 8 --draws 0 1 2 --probe-C 0.1   # fine-tune, then probe
    python benchmarks/bench_finetune.py --ks 16 --minority-rows 4 --class-weights none balanced   # unbalanced rows
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT  # noqa: E402
from bench_accuracy import BENCH_DATA, TASKS, draw_rows, load_task, task_options  # noqa: E402


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--task", default="sst2", choices=sorted(TASKS))
    parser.add_argument("--ks", nargs="+", type=int, default=[8])
    parser.add_argument("--draws", nargs="+", type=int, default=[0])
    parser.add_argument("--lrs", nargs="+", type=float, default=[1e-3])
    parser.add_argument("--steps", nargs="+", default=["auto"], help="max_steps values ('auto' or ints)")
    parser.add_argument("--smoothing", nargs="+", type=float, default=[0.1], help="label_smoothing values")
    parser.add_argument(
        "--probe-C",
        nargs="+",
        type=float,
        default=[],
        help="fine-tune then probe: a StandardScaler + LogisticRegression(C) head on the adapted "
        "features (the frozen head's default C is 0.1)",
    )
    parser.add_argument(
        "--class-weights",
        nargs="+",
        default=["none"],
        choices=["none", "balanced"],
        help="LoRAFineTuning's class_weight values",
    )
    parser.add_argument(
        "--minority-rows",
        type=int,
        default=None,
        help="unbalanced rows: the first class gets this many rows, the others k",
    )
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--data-dir", default=str(BENCH_DATA))
    parser.add_argument("--mas", default=str(DEFAULT_DATA))
    parser.add_argument("--out", default=str(ROOT / "docs" / "finetune.jsonl"))
    args = parser.parse_args(argv)

    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import balanced_accuracy_score, log_loss
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skllm_fewshot import FewShotLLMClassifier
    from skllm_fewshot._engine import clear_feature_cache
    from skllm_fewshot._finetuning import LoRAFineTuning

    torch.set_num_threads(args.threads)
    X, y, Xt, yt = load_task(args.task, args, args.test)
    options = task_options(args.task)
    command = "python benchmarks/bench_finetune.py " + " ".join(argv if argv is not None else sys.argv[1:])
    for draw in args.draws:
        order = draw_rows(y, draw, max(args.ks))
        for k in args.ks:
            rows = np.concatenate(
                [
                    o[: (args.minority_rows if i == 0 and args.minority_rows else k)]
                    for i, o in enumerate(order)
                ]
            )
            for lr in args.lrs:
                settings = [
                    (st, sm, C, cw)
                    for st in args.steps
                    for sm in args.smoothing
                    for C in (args.probe_C or [None])
                    for cw in args.class_weights
                ]
                for steps, smoothing, C, weight in settings:
                    probe = (
                        None
                        if C is None
                        else make_pipeline(StandardScaler(), LogisticRegression(C=C, max_iter=3000))
                    )
                    tuning = LoRAFineTuning(
                        learning_rate=lr,
                        max_steps=steps if steps == "auto" else int(steps),
                        label_smoothing=smoothing,
                        probe=probe,
                        class_weight=None if weight == "none" else weight,
                    )
                    clf = FewShotLLMClassifier(
                        n_examples_per_class=1, random_state=draw, calibrate=False, head=tuning, **options
                    )
                    start = time.perf_counter()
                    clf.fit(X[rows], y[rows])
                    fitted = time.perf_counter()
                    proba = clf.predict_proba(Xt)
                    pred = clf.classes_[proba.argmax(1)]
                    accuracy = float((pred == yt).mean())
                    loss = float(log_loss(yt, np.clip(proba, 1e-15, 1), labels=clf.classes_))
                    predicted = time.perf_counter()
                    plain_s = None
                    if (
                        probe is None
                    ):  # the same prompt without the adapter, side by side: what predicting costs today
                        plain = FewShotLLMClassifier(
                            n_examples_per_class=1, random_state=draw, calibrate=False, **options
                        )
                        plain.fit(X[rows], y[rows])
                        clear_feature_cache()  # an earlier setting's prompt read the same rows
                        before = time.perf_counter()
                        plain.predict(Xt)
                        plain_s = round(time.perf_counter() - before, 1)
                    curve = clf.head_.loss_curve_
                    record = dict(
                        task=args.task,
                        draw=draw,
                        k=k,
                        lr=lr,
                        steps=clf.head_.n_steps_,
                        smoothing=smoothing,
                        probe_C=C,
                        class_weight=weight,
                        minority_rows=args.minority_rows,
                        macro_recall=round(float(balanced_accuracy_score(yt, pred)), 4),
                        accuracy=round(accuracy, 4),
                        log_loss=round(loss, 4),
                        fit_s=round(fitted - start, 1),
                        predict_s=round(predicted - fitted, 1),
                        prompt_predict_s=plain_s,
                        loss_first=round(float(np.mean(curve[:5])), 3),
                        loss_last=round(float(np.mean(curve[-5:])), 3),
                        threads=args.threads,
                        date=time.strftime("%Y-%m-%d"),
                        command=command,
                    )
                    print(json.dumps(record), flush=True)
                    with open(args.out, "a", encoding="utf-8") as f:
                        f.write(json.dumps(record) + "\n")


if __name__ == "__main__":
    main()

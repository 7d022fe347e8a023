"""The default search as rows grow: its cost, what it picks, and how close that is to the best.

For each task and k (rows per class; one draw of ``bench_accuracy.py``'s rows and its
300 test rows), ``FewShotLLMClassifierCV`` with the defaults (``fine_tune="auto"``: with
``peft`` and up to 4 classes, LoRA fine-tuning is a candidate) is fitted and timed, and
its pick scored on the test rows. The search runs with ``verbose=True``: the expected
time of the plan it prints first is recorded beside the measured time. Then every
default candidate is fitted once on all k rows per class and scored the same way,
which gives the best candidate's test accuracy and the cost of the most expensive
candidate fitted once (the adapter's fit reuses the search's refit where the adapter
was the pick). The ratio of the two costs is the search's overhead.

    python benchmarks/bench_pick_scale.py --tasks sst2 --ks 8 32 128 512 --draws 1 --threads 2

Appends one record per cell to ``docs/pick_scale.jsonl`` and writes the table of the
newest records to ``docs/pick_scale_latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import re
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, newest_records  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs  # noqa: E402

RECORDS = ROOT / "docs" / "pick_scale.jsonl"
TABLE = ROOT / "docs" / "pick_scale_latest.md"


class _Tee(io.StringIO):
    """Standard output kept and still shown."""

    def write(self, text: str) -> int:
        sys.__stdout__.write(text)
        return super().write(text)


def expected_seconds(plan: str, adapter_picked: bool) -> float | None:
    """The expected time in the verbose plan (with the adapter's refit if it was picked), and
    the seconds of the plan's own measurement before it."""
    measured = re.search(r"measured here \(in (\d+) s\)", plan)
    found = re.search(
        r"expected: about (\d+) (s|min)(?: \((\d+) (s|min) if the adapter is not picked\))?", plan
    )
    if found is None:
        return None
    value, unit = found.group(1, 2) if adapter_picked or found.group(3) is None else found.group(3, 4)
    return float(value) * (60 if unit == "min" else 1) + (float(measured.group(1)) if measured else 0.0)


def measure(task: str, draw: int, k: int, args: argparse.Namespace) -> dict:
    from sklearn.base import clone
    from sklearn.metrics import accuracy_score

    from skllm_fewshot import clear_feature_cache
    from skllm_fewshot._search import ADAPTER_TRIAL_ROWS

    X, y, Xt, yt = load_task(task, args, args.test)
    rows = np.concatenate([o[:k] for o in draw_rows(y, draw, k)])
    search = make_configs(task, draw, ["pick"], args.model)["pick"]
    search.set_params(fine_tune=args.fine_tune, verbose=True)
    clear_feature_cache()
    out = _Tee()
    start = time.perf_counter()
    with contextlib.redirect_stdout(out):
        search.fit(X[rows], y[rows])
    search_s = time.perf_counter() - start
    search.set_params(verbose=False)
    expected_s = expected_seconds(out.getvalue(), search.best_name_ == "lora")
    accuracy = {"pick": accuracy_score(yt, search.predict(Xt))}
    fit_s = {}
    for name, candidate in zip(search.cv_results_["name"], search.cv_results_["params"]):
        if name == "constant":
            continue
        if name == search.best_name_:
            fitted, fit_s[name] = search.best_estimator_, search.refit_time_
        else:
            start = time.perf_counter()
            fitted = clone(candidate["model"]).fit(X[rows], y[rows])
            fit_s[name] = time.perf_counter() - start
        accuracy[name] = accuracy_score(yt, fitted.predict(Xt))
        print(task, k, name, f"{accuracy[name]:.3f}", f"{fit_s[name]:.0f} s", flush=True)
    best = max((n for n in accuracy if n != "pick"), key=accuracy.get)
    costliest = max(fit_s, key=fit_s.get)
    return dict(
        task=task, draw=draw, k=k, rows=len(rows), fine_tune=args.fine_tune, threads=args.threads,
        picked=search.best_name_, search_s=search_s, pick_accuracy=accuracy["pick"],
        best_candidate=best, best_accuracy=accuracy[best], costliest=costliest,
        costliest_fit_s=fit_s[costliest], overhead=search_s / fit_s[costliest],
        accuracy=accuracy, fit_s=fit_s, folds=sum(key.startswith("split") for key in search.cv_results_),
        trial_rows=ADAPTER_TRIAL_ROWS, expected_s=expected_s,
        date=time.strftime("%Y-%m-%d"), command=args.command,
    )  # fmt: skip


def render(records: list[dict]) -> str:
    lines = [
        '`FewShotLLMClassifierCV` with its defaults (`fine_tune="auto"`, `peft` installed), the embedded '
        "SmolLM2-135M-Instruct on the CPU; one draw of the rows, 300 test rows. *Search* is the whole "
        "default fit; *costliest fit* is its most expensive candidate fitted once on every row; "
        "*overhead* their ratio; *planned* the time the verbose plan expected before the search began.",
        "",
        "| task | rows per class | search | planned | costliest fit | overhead | folds | adapter trial rows | picked "
        "| pick's accuracy | best candidate | its accuracy | threads | date |",
        "|---" * 14 + "|",
    ]
    for r in sorted(records, key=lambda r: (r["task"], r["k"], r["draw"])):
        lines.append(
            f"| {r['task']} | {r['k']} | {r['search_s'] / 60:.1f} min | {_planned(r)} | {r['costliest']}: "
            f"{r['costliest_fit_s'] / 60:.1f} min | {r['overhead']:.2f}x | {r['folds']} | {r.get('trial_rows', '-')} "
            f"| {r['picked']} "
            f"| {r['pick_accuracy']:.3f} | {r['best_candidate']} | {r['best_accuracy']:.3f} "
            f"| {r['threads']} | {r['date']} |"
        )
    return "\n".join(lines) + "\n"


def _planned(record: dict) -> str:
    if record.get("expected_s") is None:
        return "-"
    return f"{record['expected_s'] / 60:.1f} min ({record['expected_s'] / record['search_s'] - 1:+.0%})"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [8, 32, 128, 512], 1)
    parser.add_argument("--test", type=int, default=300, help="test rows per task")
    parser.add_argument(
        "--fine-tune", default="auto", type=lambda v: {"true": True, "false": False}.get(v, v)
    )
    parser.add_argument("--report", action="store_true", help="only the table, from the records")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_pick_scale.py " + " ".join(
        argv if argv is not None else sys.argv[1:]
    )
    if not args.report:
        import torch

        from skllm_fewshot import load_model

        torch.set_num_threads(args.threads)
        load_model(args.model)  # loaded before any timing, as in a notebook that has used it
        for task in args.tasks:
            for draw in range(args.first_draw, args.first_draw + args.draws):
                for k in args.ks:
                    append_records(RECORDS, [measure(task, draw, k, args)])
    table = render(newest_records(RECORDS, ("task", "k", "draw", "fine_tune")))
    print(table)
    TABLE.write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()

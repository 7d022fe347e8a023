"""The embedded models side by side: accuracy on the development tasks, and cost.

Accuracy (the ``bench_accuracy.py`` protocol: the same rows per draw and k, the same
300 test rows per task), for each model:

- ``zero``: zero-shot, ``fit(None, label words)`` (k = 0);
- ``prompt``: the calibrated prompt, one example per class;
- ``head``: ``FewShotLLMClassifierCV``'s ``head_C0.01`` candidate, fitted on all k rows;
- ``pick``: ``FewShotLLMClassifierCV`` with its defaults (fine-tuning among the
  candidates where ``peft`` is installed and the task allows it).

Cost (``--cost``), each model in fresh processes run one after the other: a warm start
(a new process, the converted model on disk: import, load, fit a prompt on the shipped
tweets and answer one), the predict time per text and the peak memory of one pass over
``--n`` MAS tweets, and the size of its files on disk.

Records go to ``docs/models.jsonl`` (one JSON line per run) and the table to
``docs/models_latest.md``.

    python benchmarks/bench_models.py --jobs 2 --ks 0 2 8 --draws 5
    python benchmarks/bench_models.py --cost --draws 0
    python benchmarks/bench_models.py --draws 0 --merge 4      # the table from earlier runs
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs, task_options  # noqa: E402

MODELS = ("smollm2-135m", "gemma-3-270m")
CONFIGS = ("zero", "prompt", "head", "pick")


def zero_shot(task: str, model: str):
    """The zero-shot classifier of a task, and the map from its label words back to the task's labels."""
    from skllm_fewshot import FewShotLLMClassifier

    options = task_options(task)
    words = options.pop("label_words", None)
    if task == "mas":
        from skllm_fewshot.datasets import SEED_SECTOR_NAMES

        words = {name: name for name in SEED_SECTOR_NAMES.values()}
    clf = FewShotLLMClassifier(model=model, n_examples_per_class=0, **options).fit(None, list(words.values()))
    back = {word: label for label, word in words.items()}
    return clf, np.array([back[c] for c in clf.classes_], dtype=object)


def run_cells(model: str, task: str, args_dict: dict) -> list[dict]:
    import torch
    from sklearn.metrics import accuracy_score

    torch.set_num_threads(args_dict["threads"])
    args = argparse.Namespace(**args_dict)
    X, y, Xt, yt = load_task(task, args, args.test)
    records = []

    def record(**fields) -> None:
        records.append(dict(model=model, task=task, **fields))
        print(json.dumps(records[-1]), flush=True)

    if 0 in args.ks and "zero" in args.configs:
        start = time.perf_counter()
        clf, labels = zero_shot(task, model)
        pred = labels[clf.predict_proba(Xt).argmax(1)]
        record(
            draw=0,
            k=0,
            config="zero",
            accuracy=accuracy_score(yt.astype(str), pred.astype(str)),
            seconds=time.perf_counter() - start,
        )
    ks = [k for k in args.ks if k > 0]
    for draw in range(args.first_draw, args.first_draw + args.draws) if ks else ():
        order = draw_rows(y, draw, max(ks))
        for k in ks:
            rows = np.concatenate([o[:k] for o in order])
            configs = make_configs(task, draw, [c for c in args.configs if c != "zero"], model)
            for name, estimator in configs.items():
                if name == "pick" and k < 2:
                    continue
                start = time.perf_counter()
                estimator.fit(X[rows], y[rows])
                pred = estimator.predict(Xt)
                record(
                    draw=draw,
                    k=k,
                    config=name,
                    accuracy=accuracy_score(yt, pred),
                    seconds=time.perf_counter() - start,
                    picked=getattr(estimator, "best_name_", ""),
                )
    return records


_COST = r"""
import json, resource, sys, time
start = time.perf_counter()
sys.path.insert(0, {bench!r})
from _common import load_mas, peak_memory
from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot.datasets import load_example_tweets
import transformers.modeling_utils  # what any model needs, as the demo imports it before its clock
imported = time.perf_counter()
shipped, _ = load_example_tweets()
clf = FewShotLLMClassifier(model={model!r}, random_state=0).fit(shipped["TEXTO"], shipped["SECTOR"])
clf.predict_proba(shipped["TEXTO"][:1])
first = time.perf_counter()
tweets, instruction = load_mas({mas!r})
train = tweets.groupby("SECTOR").head(40)
texts = tweets.drop(train.index).sample({n} + 16, random_state=0)["TEXTO"].to_numpy(dtype=object)
mas = FewShotLLMClassifier(model={model!r}, instruction=instruction, random_state=0)
mas.fit(train["TEXTO"], train["SECTOR"])
mas.predict_proba(texts[:16])  # the prefix and the threads warmed
result = {{}}
with peak_memory(result):
    t = time.perf_counter()
    mas.predict_proba(texts[-{n}:])
    per_text = (time.perf_counter() - t) / {n}
print(json.dumps(dict(import_s=imported - start, first_answer_s=first - start, predict_ms_per_text=1e3 * per_text,
                      predict_peak_mib=result["peak_mib"],
                      max_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)))
"""


def measure_cost(model: str, args: argparse.Namespace) -> dict:
    """A warm start and a predict pass of ``model`` in a fresh process, and its files on disk."""
    from skllm_fewshot._loading import embedded_model_path, load_model, model_cache_info

    load_model(model)  # converted on disk, so that the timed process starts warm
    gguf = embedded_model_path(model)
    import transformers

    entries = [
        e
        for e in model_cache_info()["disk_entries"]
        if Path(e["gguf"] or "").name == gguf.name and e["transformers"] == transformers.__version__
    ]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    code = _COST.format(bench=str(Path(__file__).parent), model=model, mas=args.mas, n=args.n)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return dict(
        model=model,
        **json.loads(out.stdout.strip().splitlines()[-1]),
        gguf_mib=gguf.stat().st_size / 2**20,
        converted_mib=sum(e["bytes"] for e in entries) / 2**20,
    )


def render(records: list[dict], costs: list[dict], meta: dict) -> str:
    import pandas as pd

    lines = [
        f"Command: `{meta['command']}`; {meta['date']}. Accuracy on {meta['test']} test rows per task (mean ± std over "
        f"draws), rows drawn as in `bench_accuracy.py`; one torch thread per process.",
        "",
    ]
    if records:
        df = pd.DataFrame(records)
        cells = (
            df.groupby(["task", "config", "k", "model"]).accuracy.agg(["mean", "std", "count"]).reset_index()
        )
        models = [m for m in MODELS if m in set(df.model)] + sorted(set(df.model) - set(MODELS))
        lines += [
            "| task | estimator | k | " + " | ".join(models) + " | draws |",
            "|---" * (len(models) + 4) + "|",
        ]
        for (task, config, k), part in cells.groupby(["task", "config", "k"], sort=False):
            by = part.set_index("model")
            row = [
                f"{by.loc[m, 'mean']:.3f}"
                + ("" if np.isnan(by.loc[m, "std"]) else f" ± {by.loc[m, 'std']:.3f}")
                if m in by.index
                else "-"
                for m in models
            ]
            lines.append(
                f"| {task} | {config} | {k} | " + " | ".join(row) + f" | {int(part['count'].min())} |"
            )
        mean = cells.groupby(["config", "k", "model"])["mean"].agg(["mean", "count"]).reset_index()
        lines += [
            "",
            "Mean over the tasks measured in every model:",
            "",
            "| estimator | k | " + " | ".join(models) + " |",
            "|---" * (len(models) + 2) + "|",
        ]
        for (config, k), part in mean.groupby(["config", "k"]):
            by = part.set_index("model")
            lines.append(
                f"| {config} | {k} | "
                + " | ".join(
                    f"{by.loc[m, 'mean']:.3f} ({int(by.loc[m, 'count'])} tasks)" if m in by.index else "-"
                    for m in models
                )
                + " |"
            )
    if costs:
        lines += [
            "",
            "Cost, each model in a fresh process with its converted copy on disk (warm), one torch thread: the "
            "imports; then loading the model, fitting a prompt on the shipped tweets and answering one (the "
            "start-up a user waits for after the imports); the predict time per MAS tweet and the memory "
            "of that pass; the files on disk.",
            "",
            "| model | imports (s) | load, fit and first answer (s) | predict ms/text | predict peak MiB | "
            "process max RSS MiB | GGUF MiB | converted copy MiB |",
            "|---" * 8 + "|",
        ]
        for c in costs:
            lines.append(
                f"| {c['model']} | {c['import_s']:.1f} | {c['first_answer_s'] - c['import_s']:.1f} | "
                f"{c['predict_ms_per_text']:.1f} | {c['predict_peak_mib']:.0f} | {c['max_rss_mib']:.0f} | "
                f"{c['gguf_mib']:.0f} | {c['converted_mib']:.0f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [0, 2, 8], 5)
    parser.add_argument("--models", nargs="+", default=list(MODELS))
    parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    parser.add_argument("--test", type=int, default=300, help="test rows per task")
    parser.add_argument("--jobs", type=int, default=1, help="(model, task) cells run in parallel processes")
    parser.add_argument(
        "--cost", action="store_true", help="also measure each model's start-up, speed and memory"
    )
    parser.add_argument("--n", type=int, default=128, help="tweets in the timed predict pass (--cost)")
    parser.add_argument(
        "--merge",
        type=int,
        default=0,
        metavar="N",
        help="report with the records of the last N runs in models.jsonl (this run's replace theirs)",
    )
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_models.py " + " ".join(argv if argv is not None else sys.argv[1:])
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    start = time.perf_counter()
    pairs = [(m, t) for m in args.models for t in args.tasks] if args.draws or 0 in args.ks else []
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        parts = list(pool.map(run_cells, *zip(*pairs), [vars(args)] * len(pairs))) if pairs else []
    records = [r for part in parts for r in part]
    costs = [measure_cost(m, args) for m in args.models] if args.cost else []
    meta = dict(
        command=command.strip(),
        date=time.strftime("%Y-%m-%d"),
        test=args.test,
        seconds=round(time.perf_counter() - start),
    )
    path = Path(args.out) / "models.jsonl"
    earlier = (
        [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    )
    if records or costs:
        with open(path, "a", encoding="utf-8") as f:
            f.write(json.dumps(dict(meta=meta, records=records, costs=costs)) + "\n")
    runs = earlier[max(0, len(earlier) - args.merge) :] if args.merge else []
    merged, merged_costs = {}, {}
    for run in [*runs, dict(meta=meta, records=records, costs=costs)]:
        merged.update({(r["model"], r["task"], r["draw"], r["k"], r["config"]): r for r in run["records"]})
        merged_costs.update({c["model"]: c for c in run.get("costs", [])})
    if runs:
        meta["command"] = "; ".join(run["meta"]["command"] for run in [*runs, dict(meta=meta)] if run["meta"])
    table = render(list(merged.values()), list(merged_costs.values()), meta)
    print(table)
    (Path(args.out) / "models_latest.md").write_text(table, encoding="utf-8")


if __name__ == "__main__":
    main()

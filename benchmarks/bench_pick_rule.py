"""How ``FewShotLLMClassifierCV`` picks with few rows: its rule against the plain best, by k.

For each task, draw and k of ``bench_accuracy.py`` (the same rows, the same folds), the
search is cross-validated on the k rows and each candidate's fold scores are kept
(no test rows are predicted here). Each pick is then read against the test accuracies
that ``bench_accuracy.py`` recorded in ``docs/accuracy.jsonl`` for the same cells: the
plain best by mean log-loss is its ``pick`` (the rule before this one), and where a
rule keeps the prompt, the pick scores what ``prompt`` scored. A rule is thus measured
on 300 test rows per cell without a second pass over them.

    python benchmarks/bench_pick_rule.py --ks 2 4 8 --draws 5 --mas PATH
    python benchmarks/bench_pick_rule.py --report        # only the table, from docs/pick_rule.jsonl

Appends to ``docs/pick_rule.jsonl``; the table goes to stdout and ``docs/pick_rule_latest.md``
(``docs/accuracy.md`` quotes its "library rule" column). Where the library keeps the prompt
with three classes or more, it fits the prompt times the union on the class means, and
with two rows in each of two classes the prompt showing all four: that column
scores ``bench_accuracy.py``'s ``prompt_union`` and ``prompt_two_examples`` there.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs  # noqa: E402

from skllm_fewshot._search import PROMPT_TWO, PROMPT_UNION, UNION_MIN_CLASSES  # noqa: E402

CV_FILE = ROOT / "docs" / "pick_rule.jsonl"


def collect(args: argparse.Namespace) -> None:
    import torch

    torch.set_num_threads(args.threads)
    with open(CV_FILE, "a", encoding="utf-8") as out:
        for task in args.tasks:
            X, y, _, _ = load_task(task, args, 300)
            for draw in range(args.first_draw, args.first_draw + args.draws):
                order = draw_rows(y, draw, max(args.ks))
                for k in args.ks:
                    if k < 2:
                        continue
                    rows = np.concatenate([o[:k] for o in order])
                    # The frozen candidates, whose test accuracies bench_accuracy.py records.
                    search = make_configs(task, draw, ["pick"])["pick"].set_params(fine_tune=False)
                    start = time.perf_counter()
                    search.fit(X[rows], y[rows])
                    cv = search.cv_results_
                    splits = sorted(
                        (key for key in cv if key.startswith("split") and key.endswith("_test_score")),
                        key=lambda key: int(key[5:].split("_")[0]),
                    )
                    names = list(cv["name"])
                    record = dict(
                        task=task,
                        draw=draw,
                        k=k,
                        picked=search.best_name_,
                        fit_s=time.perf_counter() - start,
                        cv_scores={n: [float(cv[s][i]) for s in splits] for i, n in enumerate(names)},
                    )
                    out.write(json.dumps(record) + "\n")
                    out.flush()
                    print(task, draw, k, search.best_name_, f"{record['fit_s']:.0f} s", flush=True)


def accuracies() -> dict:
    """The latest recorded test accuracy of each (task, draw, k, config) in docs/accuracy.jsonl."""
    merged = {}
    for line in open(ROOT / "docs" / "accuracy.jsonl", encoding="utf-8"):
        if line.strip():
            for r in json.loads(line).get("records", []):  # the first lines are of an older format
                if r["config"] == "pick" and r.get("picked") in (PROMPT_TWO, PROMPT_UNION):
                    # What the library fits for a kept prompt: read from its own configuration,
                    # while "pick" stays the plain best's candidate.
                    continue
                merged[(r["task"], r["draw"], r["k"], r["config"])] = r
    return merged


CLASSES = {"sst2": 2, "trec": 6, "mas": 7}


def rule(cv_scores: dict, n_se: float | None, bars: tuple[str, ...]) -> str:
    """The name a rule picks: the best, unless it fails to beat each of ``bars`` by n_se SE (then the prompt)."""
    names = [n for n in cv_scores if n != "constant"]
    best = max(names, key=lambda n: np.mean(cv_scores[n]))
    if best == "prompt" or n_se is None:
        return best
    for other in bars:
        diff = np.array(cv_scores[best]) - np.array(cv_scores[other])
        se = diff.std(ddof=1) / math.sqrt(len(diff))
        if not diff.mean() > n_se * se:
            return "prompt"
    return best


def library_rule(cv_scores: dict, task: str, k: int) -> str:
    """The name the library's own rule (``pick_within_noise``) picks, on the default folds' fold scores."""
    from skllm_fewshot.model_selection import default_cv, pick_within_noise

    names = list(cv_scores)
    folds = np.array([cv_scores[n] for n in names]).T  # (splits, candidates)
    results = {
        "mean_test_score": folds.mean(axis=0),
        **{f"split{i}_test_score": f for i, f in enumerate(folds)},
    }
    n_splits = default_cv(k).cvargs["n_splits"]
    index = pick_within_noise(results, names, test_train_ratio=1 / (n_splits - 1), n_rows=k * CLASSES[task])
    return names[index]


def kept_prompt(task: str, k: int) -> str:
    """The bench_accuracy.py configuration the library fits where its rule keeps the prompt."""
    if CLASSES[task] >= UNION_MIN_CLASSES:
        return PROMPT_UNION  # the prompt times the union on the class means
    # With two rows in each of two classes, the prompt showing both rows of each.
    return PROMPT_TWO if k == 2 else "prompt"


def report() -> str:
    acc = accuracies()
    cells = {}
    for line in open(CV_FILE, encoding="utf-8"):
        r = json.loads(line)
        cells[(r["task"], r["draw"], r["k"])] = r
    rules = {
        "plain best": lambda cv, task, k: rule(cv, None, ()),
        "2 SE over constant (0.1)": lambda cv, task, k: rule(cv, 2.0, ("constant",)),
        "library rule": library_rule,
    }
    lines = ["| task | k | prompt | " + " | ".join(rules) + " |", "|---" * (len(rules) + 3) + "|"]
    for task in dict.fromkeys(t for t, _, _ in cells):
        for k in sorted({k for t, _, k in cells if t == task}):
            draws = sorted(d for t, d, kk in cells if t == task and kk == k)
            prompt = [acc[(task, d, k, "prompt")]["accuracy"] for d in draws]
            row = [task, str(k), f"{np.mean(prompt):.3f}"]
            for name, pick in rules.items():
                reference = kept_prompt(task, k) if name == "library rule" else "prompt"
                scores, kept, worst = [], 0, 0.0
                for d, p in zip(draws, prompt):
                    cv_scores = cells[(task, d, k)]["cv_scores"]
                    plain, chosen = rule(cv_scores, None, ()), pick(cv_scores, task, k)
                    if chosen == "prompt":
                        scores.append(acc[(task, d, k, reference)]["accuracy"])
                    else:  # the rules differ only in keeping the prompt
                        assert chosen == plain, chosen
                        scores.append(acc[(task, d, k, "pick")]["accuracy"])
                    kept += chosen == "prompt"
                    worst = min(worst, scores[-1] - p)
                row.append(f"{np.mean(scores):.3f} ({kept} prompt, worst {worst:+.3f})")
            lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [2, 4, 8], 5)
    parser.add_argument("--report", action="store_true", help="only the table, from the recorded fold scores")
    args = parser.parse_args(argv)
    if not args.report:
        collect(args)
    table = report()
    print(table)
    (ROOT / "docs" / "pick_rule_latest.md").write_text(table + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()

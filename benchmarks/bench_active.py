"""Which texts to label: suggest_labels' strategies against random labels, by budget.

A simulated labeller on each development task. Each draw takes a pool of ``--pool``
texts in the task's natural class proportions and starts from the label names alone
(the zero-shot prompt). Each round labels as many texts as the task has classes,
chosen by one strategy, and refits the classifier; at each budget (labels per class, on
average) it is scored on the task's 300 test rows, and the classes found so far are
counted.

The classifier of the loop is the search's frozen head (``head_C0.1``: standardised
features + ``LogisticRegression(C=0.1)``) on the model's features under the zero-shot
prompt, with a class that has no labelled row yet kept predictable from its name: it
gets the zero-shot prompt's probability, and the head shares out the rest (the
library's ``share_out``, as with the classifier's ``classes=``); the strategies are told
which classes have no labelled row yet, as ``suggest_labels`` reads it from the
estimator's ``class_count_``. The model
reads the pool and the test rows once per task (the features do not change between
rounds), so every strategy, round and draw is measured on the same features; the
strategies are the library's own (``skllm_fewshot._active.select``).

    python benchmarks/bench_active.py --tasks sst2 trec mas --draws 5 --mas PATH
    python benchmarks/bench_active.py --loop search --examples 1 --budgets 2 3 4 \
        --strategies random typical --tasks sst2 trec mas --draws 5 --mas PATH

``--loop search`` refits ``FewShotLLMClassifierCV`` each round instead of the head on
saved features, and ``--examples 1`` gives its prompt one labelled row per class, as the
classifier's default does (each round then reads the pool again).

Appends one record per (task, draw, strategy, budget) to ``docs/active.jsonl`` and writes
``docs/active_latest.md`` and ``docs/active_curve.png`` from the newest records.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT, append_records, newest_records  # noqa: E402
from bench_accuracy import add_cell_arguments, load_task, task_options  # noqa: E402

RECORDS = ROOT / "docs" / "active.jsonl"
TABLE = ROOT / "docs" / "active_latest.md"
PLOT = ROOT / "docs" / "active_curve.png"
STRATEGIES = ("random", "margin", "entropy", "diversity", "margin_diversity", "typical")


def read_task(task: str, args: argparse.Namespace) -> dict:
    """The model's features and zero-shot probabilities of a pool superset and the test rows."""
    from skllm_fewshot import FewShotLLMClassifier

    X, y, Xt, yt = load_task(task, args, 300)
    rng = np.random.RandomState(0)
    superset = rng.choice(len(X), size=min(len(X), args.superset), replace=False)
    options = task_options(task)
    classes = np.unique(y)
    zero = FewShotLLMClassifier(model=args.model, n_examples_per_class=0, **options).fit(None, list(classes))
    start = time.perf_counter()
    texts = np.concatenate([X[superset], Xt])
    features = zero.features(texts)
    proba = zero.predict_proba(texts)
    print(task, f"{len(texts)} texts read in {time.perf_counter() - start:.0f} s", flush=True)
    m = len(superset)
    return dict(
        classes=classes, y=y[superset], yt=yt, F=features[:m], Ft=features[m:], P=proba[:m], Pt=proba[m:],
        X=X[superset], Xt=Xt, zero=zero,
    )  # fmt: skip


def classifier_proba(data: dict, rows: np.ndarray, F: np.ndarray, P0: np.ndarray) -> np.ndarray:
    """The loop's classifier fitted on ``rows``: the head for the classes labelled, the zero-shot
    prompt for the others (its probability; the head shares out the rest)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from skllm_fewshot._heads import share_out

    classes, labels = data["classes"], data["y"][rows]
    seen = np.isin(classes, labels)
    if seen.sum() < 2:
        return share_out(P0, np.ones((len(P0), 1)), seen) if seen.any() else P0
    head = make_pipeline(StandardScaler(), LogisticRegression(C=0.1, max_iter=2000))
    head.fit(data["F"][rows], labels)
    return share_out(P0, head.predict_proba(F), seen)


def run(task: str, data: dict, draw: int, args: argparse.Namespace) -> list[dict]:
    from skllm_fewshot._active import select, unit_rows

    rng = np.random.RandomState(1000 + draw)
    pool = rng.choice(len(data["y"]), size=min(args.pool, len(data["y"])), replace=False)
    sub = dict(data, F=data["F"][pool], P=data["P"][pool], y=data["y"][pool])
    unit = unit_rows(sub["F"])
    n_classes = len(data["classes"])
    records = []
    for strategy in args.strategies:
        picker = np.random.RandomState(draw)
        done = np.zeros(len(pool), dtype=bool)
        for budget in range(1, max(args.budgets) + 1):
            rows = np.flatnonzero(done)
            proba = classifier_proba(sub, rows, sub["F"], sub["P"]) if len(rows) else sub["P"]
            missing = ~np.isin(data["classes"], sub["y"][rows])
            new = select(unit, proba, done, n_classes, strategy, picker, missing=missing)
            done[new] = True
            if budget in args.budgets:
                rows = np.flatnonzero(done)
                test = classifier_proba(sub, rows, data["Ft"], data["Pt"])
                accuracy = float(np.mean(data["classes"][test.argmax(axis=1)] == data["yt"]))
                found = len(np.unique(sub["y"][rows]))
                present = len(np.unique(sub["y"]))
                records.append(
                    dict(task=task, draw=draw, strategy=strategy, budget=budget, labels=int(done.sum()),
                         accuracy=accuracy, classes_found=found, classes_in_pool=present, pool=len(pool),
                         date=time.strftime("%Y-%m-%d"), command=args.command)
                )  # fmt: skip
    return records


def run_search(task: str, data: dict, draw: int, args: argparse.Namespace) -> list[dict]:
    """The loop with the library itself: ``suggest_labels`` on ``FewShotLLMClassifierCV``, refitted
    on the labelled rows each round (``classes=`` every class). With ``--examples 0`` the prompt
    shows no examples, so that the model reads the pool once and every round is the search's
    heads and unions; with ``--examples 1`` (the classifier's default) the prompt shows one
    labelled row per class, as a user's loop would, and each round reads the pool again."""
    from sklearn.base import clone

    from skllm_fewshot import FewShotLLMClassifierCV, suggest_labels

    rng = np.random.RandomState(1000 + draw)
    pool = rng.choice(len(data["y"]), size=min(args.pool, len(data["y"])), replace=False)
    texts, labels, classes = data["X"][pool], data["y"][pool], data["classes"]
    classifier = clone(data["zero"]).set_params(classes=classes, n_examples_per_class=args.examples)
    records = []
    for strategy in [s for s in args.strategies if s in ("random", "margin_diversity", "typical")]:
        picker = np.random.RandomState(draw)
        done = np.zeros(len(pool), dtype=bool)
        estimator = data["zero"]
        for budget in range(1, max(args.budgets) + 1):
            start = time.perf_counter()
            if strategy == "random":
                new = picker.choice(np.flatnonzero(~done), size=len(classes), replace=False)
            else:
                new = suggest_labels(
                    estimator, texts, len(classes), labelled=np.flatnonzero(done), strategy=strategy,
                    random_state=draw,
                )  # fmt: skip
            done[new] = True
            rows = np.flatnonzero(done)
            if strategy != "random" or budget in args.budgets:
                search = FewShotLLMClassifierCV(classifier, fine_tune=False, random_state=draw)
                estimator = search.fit(texts[rows], labels[rows])
            if budget in args.budgets:
                accuracy = float(estimator.score(data["Xt"], data["yt"]))
                records.append(
                    dict(task=task, draw=draw, strategy=strategy, budget=budget, labels=int(done.sum()),
                         accuracy=accuracy, classes_found=len(np.unique(labels[rows])),
                         classes_in_pool=len(np.unique(labels)), pool=len(pool), loop="search",
                         examples=args.examples,
                         picked=estimator.best_name_, round_s=time.perf_counter() - start,
                         date=time.strftime("%Y-%m-%d"), command=args.command)
                )  # fmt: skip
                print(task, draw, strategy, budget, f"{accuracy:.3f}", estimator.best_name_, flush=True)
    return records


def render(records: list[dict], loop: str = "head", examples: int = 0) -> str:
    import pandas as pd

    df = pd.DataFrame(records)
    # A strategy is shown for a task only on the draws random labels had there, all of them.
    baseline = df[df["strategy"] == "random"].groupby("task")["draw"].agg(frozenset)
    measured = df.groupby(["task", "strategy"])["draw"].agg(frozenset)
    paired = {key for key, seen in measured.items() if seen >= baseline.get(key[0], frozenset())}
    df = df[
        [
            (t, s) in paired and d in baseline.get(t, ())
            for t, s, d in zip(df["task"], df["strategy"], df["draw"])
        ]
    ]
    acc = df.pivot_table(index=["task", "budget"], columns="strategy", values="accuracy", aggfunc="mean")
    found = df.pivot_table(
        index=["task", "budget"], columns="strategy", values="classes_found", aggfunc="mean"
    )
    draws = df.groupby("task")["draw"].nunique()
    strategies = [s for s in STRATEGIES if s in acc.columns]
    classifier = (
        "the frozen head on the embedded SmolLM2's features, the zero-shot prompt for classes without a "
        "labelled row"
        if loop == "head"
        else "`FewShotLLMClassifierCV` refitted on the labelled rows each round, `fine_tune=False`, its "
        f"prompt {'with one labelled row per class' if examples else 'without examples'} and `classes=` "
        "every class, on the embedded SmolLM2"
    )
    lines = [
        f"`suggest_labels` strategies against random labels: a simulated labeller, pools of "
        f"{df['pool'].iloc[0]} texts in their natural class proportions, from the label names alone; "
        f"test accuracy of the loop's classifier ({classifier}) after each budget, in labels per class, "
        f"mean over the same draws for each strategy ({', '.join(f'{t}: {n}' for t, n in draws.items())}; "
        "-: not measured on all of them); in brackets, the classes found.",
        "",
        "| task | labels per class | " + " | ".join(strategies) + " |",
        "|---" * (len(strategies) + 2) + "|",
    ]
    for (task, budget), row in acc.iterrows():
        cells = [
            f"{row[s]:.3f} ({found.loc[(task, budget), s]:.1f})" if row.notna()[s] else "-"
            for s in strategies
        ]
        lines.append(f"| {task} | {budget} | " + " | ".join(cells) + " |")
    # Each task weighs the same, whatever its draws; a strategy measured on some tasks only
    # is left out of the mean, and so is a budget measured on some tasks only.
    everywhere = [s for s in strategies if acc[s].notna().all()]
    n_tasks = acc.index.get_level_values("task").nunique()
    by_budget = acc[everywhere].groupby(level="budget")
    mean = by_budget.mean()[by_budget.size() == n_tasks]
    lines += ["", "Mean over the tasks:", "", "| labels per class | " + " | ".join(everywhere) + " |"]
    lines.append("|---" * (len(everywhere) + 1) + "|")
    for budget, row in mean.iterrows():
        lines.append(f"| {budget} | " + " | ".join(f"{row[s]:.3f}" for s in everywhere) + " |")
    return "\n".join(lines) + "\n"


def plot(loops: list[tuple[str, list[dict]]]) -> None:
    """One row of panels (a panel per task) for each ``(title, records)`` loop."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import pandas as pd

    loops = [(title, pd.DataFrame(records)) for title, records in loops if records]
    tasks = list(dict.fromkeys(t for _, df in loops for t in df["task"]))
    fig, axes = plt.subplots(
        len(loops), len(tasks), figsize=(4 * len(tasks), 3.2 * len(loops)), squeeze=False
    )
    for row, (title, df) in zip(axes, loops):
        for ax, task in zip(row, tasks):
            part = df[df["task"] == task].groupby(["strategy", "budget"])["accuracy"].mean()
            for strategy in [s for s in STRATEGIES if s in part.index.get_level_values(0)]:
                curve = part[strategy]
                # One colour per strategy in every panel.
                ax.plot(curve.index, curve.values, marker="o", label=strategy,
                        color=f"C{STRATEGIES.index(strategy)}",
                        linestyle="--" if strategy == "random" else "-")  # fmt: skip
            budgets = sorted(df["budget"].unique())
            ax.set(title=f"{task}: {title}", xlabel="labels per class", ylabel="test accuracy", xscale="log")
            ax.set_xticks(budgets, labels=[str(b) for b in budgets])
            ax.xaxis.set_minor_formatter(plt.NullFormatter())
        row[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(PLOT, dpi=90)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [1], 5)
    parser.add_argument("--pool", type=int, default=400, help="texts in each draw's pool")
    parser.add_argument("--superset", type=int, default=1000, help="texts read, of which each pool is drawn")
    parser.add_argument("--budgets", nargs="+", type=int, default=[1, 2, 4, 8])
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES)
    parser.add_argument(
        "--loop", choices=["head", "search"], default="head",
        help="the loop's classifier: the frozen head on saved features, or FewShotLLMClassifierCV refitted",
    )  # fmt: skip
    parser.add_argument(
        "--examples", type=int, default=0, choices=[0, 1],
        help="--loop search: labelled rows per class shown in the prompt (0: the pool is read once)",
    )  # fmt: skip
    parser.add_argument("--report", action="store_true", help="only the table and plot, from the records")
    args = parser.parse_args(argv)
    args.command = "python benchmarks/bench_active.py " + " ".join(argv if argv is not None else sys.argv[1:])
    if not args.report:
        import torch

        torch.set_num_threads(args.threads)
        for task in args.tasks:
            data = read_task(task, args)
            loop = run_search if args.loop == "search" else run
            for draw in range(args.first_draw, args.first_draw + args.draws):
                append_records(RECORDS, loop(task, data, draw, args))
    records = newest_records(
        RECORDS, ("task", "draw", "strategy", "budget", "loop", "examples"), defaults={"examples": 0}
    )
    head = [r for r in records if r.get("loop", "head") == "head"]
    table = render(head)
    search = {
        examples: [r for r in records if r.get("loop") == "search" and r["examples"] == examples]
        for examples in (0, 1)
    }
    for examples, rows in search.items():
        if rows:
            table += "\n" + render(rows, "search", examples)
    print(table)
    TABLE.write_text(table, encoding="utf-8")
    plot([("frozen head", head), ("search, prompt with examples", search[1])])


if __name__ == "__main__":
    main()

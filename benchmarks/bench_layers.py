"""Which hidden layers a frozen head should read, per model: every layer, on the development tasks.

For each task and draw (the ``bench_accuracy.py`` rows and test rows), the prompt with
one example per class is fitted on the k rows, and the hidden states of every layer
are read in one pass for the k rows and the test rows. A ``StandardScaler`` +
``LogisticRegression(C)`` head is fitted on the k rows of each single layer, and of
the mean of the layers at a few depth triples (``heads.DEFAULT_DEPTHS`` among them),
and scored on the test rows.

Records go to ``docs/layers.jsonl``; the table to ``docs/layers_latest.md``.

    python benchmarks/bench_layers.py --model gemma-3-270m --ks 8 --draws 5
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import ROOT  # noqa: E402
from bench_accuracy import add_cell_arguments, draw_rows, load_task, make_configs  # noqa: E402

DEPTHS = {
    "default (0.55, 0.65, 0.8)": (0.55, 0.65, 0.8),
    "(0.3, 0.4, 0.5)": (0.3, 0.4, 0.5),
    "(0.4, 0.5, 0.6)": (0.4, 0.5, 0.6),
    "(0.7, 0.85, 1.0)": (0.7, 0.85, 1.0),
}


def layers_of(depths, n_layers: int) -> list[int]:
    return sorted({max(1, min(n_layers, round(d * n_layers))) for d in depths})


def main(argv=None) -> None:
    import torch
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_cell_arguments(parser, [8], 5)
    parser.add_argument("--C", nargs="+", type=float, default=[0.01, 0.1])
    parser.add_argument("--test", type=int, default=300)
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    records = []
    for task in args.tasks:
        X, y, Xt, yt = load_task(task, args, args.test)
        for draw in range(args.first_draw, args.first_draw + args.draws):
            order = draw_rows(y, draw, max(args.ks))
            for k in args.ks:
                rows = np.concatenate([o[:k] for o in order])
                clf = make_configs(task, draw, ["prompt"], args.model)["prompt"].fit(X[rows], y[rows])
                n_layers = clf.engine_.loaded.model.config.get_text_config().num_hidden_layers
                every = list(range(1, n_layers + 1))
                _, train = clf.engine_.features(list(X[rows]), every)
                _, test = clf.engine_.features(list(Xt), every)
                sets = {f"layer {i}": [i] for i in every}
                sets.update({name: layers_of(d, n_layers) for name, d in DEPTHS.items()})
                for name, chosen in sets.items():
                    idx = [every.index(i) for i in chosen]
                    for c in args.C:
                        head = make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))
                        head.fit(train[:, idx].mean(1), y[rows])
                        acc = float((head.predict(test[:, idx].mean(1)) == yt).mean())
                        records.append(
                            dict(
                                model=args.model,
                                task=task,
                                draw=draw,
                                k=k,
                                layers=name,
                                C=c,
                                depth=chosen[-1] / n_layers,
                                accuracy=acc,
                            )
                        )
                print(task, draw, k, f"{time.perf_counter() - start:.0f} s", flush=True)
    meta = dict(
        command="python benchmarks/bench_layers.py " + " ".join(argv if argv is not None else sys.argv[1:]),
        date=time.strftime("%Y-%m-%d"),
        seconds=round(time.perf_counter() - start),
    )
    with open(Path(args.out) / "layers.jsonl", "a", encoding="utf-8") as f:
        f.write(json.dumps(dict(meta=meta, records=records)) + "\n")
    import pandas as pd

    df = pd.DataFrame(records)
    table = df.pivot_table(index=["layers"], columns=["task", "C"], values="accuracy", aggfunc="mean")
    table["mean"] = table.mean(axis=1)
    order = sorted(
        table.index,
        key=lambda n: (not n.startswith("layer"), int(n.split()[1]) if n.startswith("layer") else 0, n),
    )
    table = table.reindex(order)
    lines = [
        f"Command: `{meta['command']}`; {meta['date']}; mean test accuracy over draws.",
        "",
        "| layers | " + " | ".join(f"{t} C={c}" if c else t for t, c in table.columns) + " |",
        "|---" * (len(table.columns) + 1) + "|",
    ]
    lines += [f"| {name} | " + " | ".join(f"{v:.3f}" for v in row) + " |" for name, row in table.iterrows()]
    text = "\n".join(lines) + "\n"
    print(text)
    (Path(args.out) / "layers_latest.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()

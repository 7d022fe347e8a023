"""Rows per second on a Dask LocalCluster of 1 and 2 worker processes, against one process.

All in one run, on the same MAS test tweets and the same fitted estimator
(``label_scoring="first_token"``, one example per class, the embedded SmolLM2 unless
``--model``): (a) ``clf.predict_proba`` in this process with torch's default
threads, (b) the same with one torch thread (what one worker gets), then
``skllm_fewshot.dask.predict_proba`` on LocalClusters of 1 and 2 worker
processes (one thread each). Each cluster runs the job twice: the first (cold)
includes each worker's imports and its one model load, the second (warm) is the
steady state that the rows per second are taken from. Also reported: the scaling
from 1 to 2 workers, the memory of each worker process, the model loads per
worker, and the agreement with (a).

Prints a table (Markdown, for the record in ``docs/performance.md``) and appends the
run as a JSON line to ``docs/performance_dask.jsonl`` (not a page of the docs site:
a new ``.md`` file under docs/ would be one outside its table of contents).

    python benchmarks/bench_dask.py                 # every test tweet (1,464)
    python benchmarks/bench_dask.py --n 200         # fewer rows
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, agreement, load_mas, save_record, seed_split  # noqa: E402

from skllm_fewshot import FewShotLLMClassifier  # noqa: E402


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _worker_state() -> dict:
    """Run on each worker: its memory, threads and model loads."""
    import torch

    from skllm_fewshot._loading import model_cache_info

    return dict(
        rss_mib=_rss_mib(),
        peak_rss_mib=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # KiB on Linux
        threads=torch.get_num_threads(),
        **model_cache_info(),
    )


def single_process(clf, texts: list[str], threads: int | None) -> dict:
    before = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        clf.predict_proba(texts[:4])  # warm up: prefix cache, first-call allocations
        start = time.perf_counter()
        proba = clf.predict_proba(texts)
        seconds = time.perf_counter() - start
        used = torch.get_num_threads()
    finally:
        torch.set_num_threads(before)
    return dict(
        run=f"(a{'' if threads is None else ', 1 thread'}) single process",
        processes=1,
        threads=used,
        seconds=seconds,
        rows_per_s=len(texts) / seconds,
        cold_s=None,
        rss_mib=_rss_mib(),
        peak_rss_mib=None,
        loads=None,
        proba=proba,
    )


def on_cluster(clf, texts: list[str], n_workers: int, partitions: int, worker_threads: int) -> dict:
    import dask
    import dask.dataframe as dd
    import pandas as pd
    from distributed import Client, LocalCluster

    from skllm_fewshot.dask import predict_proba

    # Two collections with their own names, so the warm job's keys differ from the cold
    # job's and nothing computed by the first is reused by the second.
    cold_series, series = (
        dd.from_pandas(pd.Series(texts, name=n), npartitions=partitions) for n in ("cold", "warm")
    )
    # The Nanny sets OMP_NUM_THREADS before it starts a worker; torch reads it at import.
    with dask.config.set({"distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": str(worker_threads)}):
        start = time.perf_counter()
        with (
            LocalCluster(
                n_workers=n_workers,
                threads_per_worker=1,
                processes=True,
                host="127.0.0.1",
                dashboard_address=None,
            ) as cluster,
            Client(cluster) as client,
        ):
            client.wait_for_workers(n_workers, timeout=300)
            started = time.perf_counter() - start
            start = time.perf_counter()
            predict_proba(clf, cold_series).compute()  # cold: imports, one model load per worker
            cold = time.perf_counter() - start
            start = time.perf_counter()
            proba = predict_proba(clf, series).compute()
            seconds = time.perf_counter() - start
            state = client.run(_worker_state)
    workers = list(state.values())
    return dict(
        run=f"LocalCluster, {n_workers} worker{'s' if n_workers > 1 else ''}",
        processes=n_workers,
        threads=workers[0]["threads"],
        seconds=seconds,
        rows_per_s=len(texts) / seconds,
        cold_s=cold,
        start_s=started,
        rss_mib=max(w["rss_mib"] for w in workers),
        peak_rss_mib=max(w["peak_rss_mib"] for w in workers),
        loads=[w["loads"] for w in workers],
        proba=proba.to_numpy(),
    )


def run(args: argparse.Namespace) -> tuple[dict, list[dict]]:
    tweets, instruction = load_mas(args.data)
    train, test = seed_split(tweets)
    texts = test["TEXTO"].tolist()
    texts = texts[: args.n] if args.n else texts
    clf = FewShotLLMClassifier(
        model=args.model,
        instruction=instruction,
        text_name="Tweet",
        label_name="Categoría",
        n_examples_per_class=1,
        scoring=args.scoring,
        random_state=0,
    ).fit(train["TEXTO"], train["SECTOR"])
    load = [os.getloadavg()]
    rows = [single_process(clf, texts, None), single_process(clf, texts, 1)]
    for row in rows:
        print(f"  {row['run']}: {row['rows_per_s']:.2f} rows/s", flush=True)
    for n_workers in args.workers:
        row = on_cluster(clf, texts, n_workers, args.partitions, args.worker_threads)
        print(f"  {row['run']}: {row['rows_per_s']:.2f} rows/s", flush=True)
        rows.append(row)
    load.append(os.getloadavg())
    ref = rows[0]
    by_workers = {r["processes"]: r for r in rows if r["loads"] is not None}
    for r in rows:
        r["vs_single"] = r["rows_per_s"] / ref["rows_per_s"]
        r["vs_single_1_thread"] = r["rows_per_s"] / rows[1]["rows_per_s"]
        r["max_abs_diff"] = float(np.abs(r["proba"] - ref["proba"]).max())
        r["agreement"] = agreement(ref["proba"], r["proba"])
    scaling = by_workers[2]["rows_per_s"] / by_workers[1]["rows_per_s"] if {1, 2} <= set(by_workers) else None
    meta = dict(
        model=args.model or "SmolLM2-135M-Instruct",
        scoring=args.scoring,
        n=len(texts),
        partitions=args.partitions,
        worker_threads=args.worker_threads,
        scaling_2_vs_1=scaling,
        cores=os.cpu_count(),
        load_before=load[0],
        load_after=load[1],
        torch=torch.__version__,
        machine=platform.processor() or platform.machine(),
        date=time.strftime("%Y-%m-%d"),
    )
    return meta, rows


def render(meta: dict, rows: list[dict], command: str) -> str:
    def load(values) -> str:
        return "/".join(f"{v:.1f}" for v in values)

    lines = [
        f"Command: `{command}`",
        "",
        f"Model: {meta['model']}, scoring={meta['scoring']}, on CPU ({meta['cores']} cores, torch "
        f"{meta['torch']}); {meta['n']} MAS test tweets in {meta['partitions']} partitions; one torch "
        f"thread per worker process; {meta['date']}. Load average (1/5/15 min) before: "
        f"{load(meta['load_before'])}, after: {load(meta['load_after'])}.",
        "",
        "| run | processes x torch threads | rows/s | vs (a) | vs (a, 1 thread) | job s (warm) "
        "| cold first job s | RSS MiB per process | peak RSS MiB per worker | model loads per worker "
        "| max abs diff vs (a) | agreement with (a) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        cold = f"{r['cold_s']:.1f}" if r["cold_s"] is not None else "n/a"
        peak = f"{r['peak_rss_mib']:.0f}" if r["peak_rss_mib"] is not None else "n/a"
        loads = ", ".join(map(str, r["loads"])) if r["loads"] is not None else "n/a"
        lines.append(
            f"| {r['run']} | {r['processes']} x {r['threads']} | {r['rows_per_s']:.2f} "
            f"| {r['vs_single']:.2f}x "
            f"| {r['vs_single_1_thread']:.2f}x | {r['seconds']:.1f} | {cold} | {r['rss_mib']:.0f} | {peak} "
            f"| {loads} | {r['max_abs_diff']:.1e} | {100 * r['agreement']:.1f}% |"
        )
    if meta["scaling_2_vs_1"] is not None:
        lines += ["", f"Scaling, 2 workers vs 1 (warm jobs): {meta['scaling_2_vs_1']:.2f}x."]
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="path of tweets_marketing.csv")
    parser.add_argument("--n", type=int, default=0, help="test tweets scored (default: all)")
    parser.add_argument("--model", default=None, help="model id, folder or .gguf (default: embedded SmolLM2)")
    parser.add_argument("--label-scoring", default="first_token", choices=["first_token", "full_label"])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="cluster sizes to measure")
    parser.add_argument("--partitions", type=int, default=8, help="partitions of the texts")
    parser.add_argument("--worker-threads", type=int, default=1, help="torch threads per worker process")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for performance_dask.jsonl")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_dask.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta, rows = run(args)
    command = command.strip()
    save_record(args.out, "performance_dask.jsonl", command, meta, rows, render(meta, rows, command))


if __name__ == "__main__":
    main()

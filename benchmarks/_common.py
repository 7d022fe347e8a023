"""Shared set-up of the benchmarks: the MAS corpus as the seed notebook prepares it."""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATA = ROOT.parent / "shared" / "data" / "mascorpus" / "tweets_marketing.csv"


def load_mas(path: str | os.PathLike = DEFAULT_DATA):
    """The MAS tweets with the seed's class names, and the seed's instruction."""
    from skllm_fewshot.datasets import load_mas_tweets

    try:
        return load_mas_tweets(path)
    except FileNotFoundError as exc:
        raise SystemExit(f"{exc} (--data PATH)") from exc


def seed_split(tweets, random_state: int = 0):
    """The seed's 67/33 split, stratified by sector."""
    from sklearn.model_selection import train_test_split

    return train_test_split(tweets, test_size=0.33, stratify=tweets["SECTOR"], random_state=random_state)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@contextmanager
def peak_memory(result: dict, device: str = "cpu"):
    """Record the peak memory above the start of the block, in MiB, into result['peak_mib']."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
        yield
        torch.cuda.synchronize()
        result["peak_mib"] = (torch.cuda.max_memory_allocated() - base) / 2**20
        return
    base = _rss_bytes()
    peak = [base]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.005):
            peak[0] = max(peak[0], _rss_bytes())

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], _rss_bytes())
        result["peak_mib"] = (peak[0] - base) / 2**20


def matmul_gflops(device: str = "cpu", n: int = 1024, seconds: float = 2.0, dtype=None) -> float:
    """Measured fp32 matmul throughput of this machine, in GFLOP/s."""
    import torch

    dtype = dtype or torch.float32
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        a @ b
    reps = 0
    start = time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        reps += 1
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return 2 * n**3 * reps / (time.perf_counter() - start) / 1e9


def agreement(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.mean(a.argmax(1) == b.argmax(1)))


def save_record(
    out: str | os.PathLike,
    name: str,
    command: str,
    meta: dict,
    rows: list[dict],
    table: str,
    latest: str | None = None,
) -> None:
    """Print the table; append the run to ``out/name`` (JSON line), and write ``out/latest`` if given."""
    print()
    print(table)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    with open(out / name, "a") as f:
        f.write(
            json.dumps(
                {
                    **meta,
                    "command": command,
                    "rows": [{k: v for k, v in r.items() if k != "proba"} for r in rows],
                }
            )
            + "\n"
        )
    if latest:
        (out / latest).write_text(table)


def append_records(path: str | os.PathLike, records: list[dict]) -> None:
    """Append ``records`` to the JSON-lines file ``path``, one line per measured cell."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")


def newest_records(path: str | os.PathLike, key: tuple[str, ...], defaults: dict | None = None) -> list[dict]:
    """The newest record of each cell (the fields ``key``) in the JSON-lines file ``path``.

    Cells are in the order they first appear in the file, so a table keeps its rows in
    place when one of them is measured again. ``defaults`` fills in the fields that older
    records were written without, so that they fall in the same cell as newer ones and
    read the same.
    """
    defaults = defaults or {}
    path = Path(path)
    newest: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = {**defaults, **json.loads(line)}
                newest[tuple(json.dumps(record.get(k), sort_keys=True) for k in key)] = record
    return list(newest.values())


def run_context() -> dict:
    """What a record says about where it was measured: torch, its threads, the machine's load."""
    import platform

    import torch

    return dict(
        torch=torch.__version__,
        torch_threads=torch.get_num_threads(),
        cores=os.cpu_count(),
        machine=platform.machine(),
        load_before=[round(x, 2) for x in os.getloadavg()],
    )


def measured_by(records: list[dict]) -> list[str]:
    """One Markdown line per run that wrote ``records``: its command, date, threads and load at its start."""
    runs: dict[tuple, dict] = {}
    for r in records:
        runs.setdefault((r["date"], r["command"]), r)
    return [
        f"- `{r['command']}` ({r['date']}; torch {r['torch']}, {r['torch_threads']} thread(s) on "
        f"{r['cores']} cores, load average {r['load_before'][0]:.1f} at the start)"
        for r in runs.values()
    ]


def recorded_main(
    argv: list[str] | None,
    *,
    script: str,
    description: str,
    records: Path,
    key: tuple[str, ...],
    measure: Any,
    render: Any,
    add_arguments: Any = None,
) -> None:
    """The command line of a benchmark that appends records and writes their newest table.

    ``measure(args, command, out)`` appends to ``out``; ``render(records)`` is the table of
    the newest record of each cell (``key``); ``--report`` only writes the table.
    """
    import argparse
    import sys
    import time

    parser = argparse.ArgumentParser(
        description=description, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    if add_arguments is not None:
        add_arguments(parser)
    parser.add_argument("--out", default=str(records), help="the records (JSON lines, appended)")
    parser.add_argument(
        "--latest", default=None, help="the table (default: the records' name with _latest.md)"
    )
    parser.add_argument("--report", action="store_true", help="only write the table from the records")
    args = parser.parse_args(argv)
    out = Path(args.out)
    latest = Path(args.latest) if args.latest else out.with_name(out.stem + "_latest.md")
    command = f"python benchmarks/{script} " + " ".join(argv if argv is not None else sys.argv[1:])
    start = time.perf_counter()
    if not args.report:
        measure(args, command.strip(), out)
        print(f"{time.perf_counter() - start:.0f} s", flush=True)
    table = render(newest_records(out, key))
    print(table)
    latest.write_text(table, encoding="utf-8")

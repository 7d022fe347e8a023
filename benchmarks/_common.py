"""Shared set-up of the benchmarks: the MAS corpus as the seed notebook prepares it."""

from __future__ import annotations

import json
import os
import threading
import time
from contextlib import contextmanager
from pathlib import Path

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


def newest_records(path: str | os.PathLike, key: tuple[str, ...]) -> list[dict]:
    """The newest record of each cell (the fields ``key``) in the JSON-lines file ``path``.

    Cells are in the order they first appear in the file, so a table keeps its rows in
    place when one of them is measured again.
    """
    path = Path(path)
    newest: dict[tuple, dict] = {}
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                record = json.loads(line)
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

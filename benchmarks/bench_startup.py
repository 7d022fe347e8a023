"""Time to the first answer in a new process, cold (no converted model on disk) and warm.

Every scenario runs in a fresh Python process, as a notebook kernel, a script or a
worker would, and is measured beside its bound in the same run:

- ``demo``: ``python -m skllm_fewshot demo``, the whole command (imports included) and
  the phases it prints; bound: a process that imports torch, scikit-learn and
  transformers' model code, reads the converted files with ``from_pretrained`` and runs
  one forward pass of the demo's prompt.
- ``joblib``: ``joblib.load`` of a fitted classifier and its first ``predict_proba`` of
  one text, timed from the load call (imports before it); bound: ``from_pretrained``
  of the converted files and one forward pass of the prompt.
- ``cv_fit``: ``FewShotLLMClassifierCV.fit`` on SST-2 train rows, k per class (warm); beside it,
  one ``FewShotLLMClassifier`` (no search) fitted and predicting the same rows, which
  is one pass of the model over them.
- ``equal``: predictions of the demo's reviews and of MAS tweets, both scorings, loaded
  from the GGUF file (cache off) and from the converted copy: the largest difference.

Results go to ``docs/startup.jsonl`` (one JSON line per run) and ``docs/startup_latest_<model>.md``.

    python benchmarks/bench_startup.py --mas ../shared/data/mascorpus/tweets_marketing.csv \\
        --sst2 ../shared/data/benchmarks
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"

_BOUND = r"""
import sys, time
t0 = time.perf_counter()
import torch, sklearn.base, transformers.modeling_utils
from transformers import AutoModelForCausalLM, AutoTokenizer
t1 = time.perf_counter()
model = AutoModelForCausalLM.from_pretrained(sys.argv[1], dtype=torch.float32).eval()
tok = AutoTokenizer.from_pretrained(sys.argv[1])
with torch.inference_mode():
    model(**tok(sys.argv[2], return_tensors="pt"))
t2 = time.perf_counter()
print({"import_s": t1 - t0, "load_and_pass_s": t2 - t1})
"""

_JOBLIB_LOAD = r"""
import sys, time
import joblib, skllm_fewshot, transformers.modeling_utils
t0 = time.perf_counter()
clf = joblib.load(sys.argv[1])
t1 = time.perf_counter()
clf.predict_proba(["Absolutely fantastic, it works perfectly!"])
t2 = time.perf_counter()
print({"load_s": t1 - t0, "first_predict_s": t2 - t1, "load_to_answer_s": t2 - t0})
"""

_FIT_AND_DUMP = r"""
import os, sys, joblib
from skllm_fewshot.__main__ import SEED_EXAMPLES, SEED_INSTRUCTION
from skllm_fewshot import FewShotLLMClassifier
X, y = zip(*SEED_EXAMPLES)
clf = FewShotLLMClassifier(os.environ.get("BENCH_MODEL") or None, instruction=SEED_INSTRUCTION,
                           text_name="Product review", label_name="Sentiment", random_state=0).fit(list(X), list(y))
joblib.dump(clf, sys.argv[1])
print({"prompt": clf.prompt_})
"""

_PROBAS = r"""
import os, sys, json, numpy as np
from skllm_fewshot.__main__ import SEED_EXAMPLES, SEED_INSTRUCTION, DEMO_REVIEWS
MODEL = os.environ.get("BENCH_MODEL") or None
from skllm_fewshot import FewShotLLMClassifier
from skllm_fewshot.datasets import load_mas_tweets
out = {}
X, y = zip(*SEED_EXAMPLES)
mas = None
if sys.argv[2]:
    tweets, instruction = load_mas_tweets(sys.argv[2])
    train = tweets.groupby("SECTOR").head(1)
    test = tweets.drop(train.index).sample(50, random_state=0)
for scoring in ("full_label", "first_token"):
    clf = FewShotLLMClassifier(MODEL, instruction=SEED_INSTRUCTION, text_name="Product review",
                               label_name="Sentiment", label_scoring=scoring, random_state=0).fit(list(X), list(y))
    out[f"demo_{scoring}"] = clf.predict_proba(DEMO_REVIEWS).tolist()
    if sys.argv[2]:
        clf = FewShotLLMClassifier(MODEL, instruction=instruction, text_name="Tweet", label_name="Categoría",
                                   label_scoring=scoring, random_state=0).fit(train["TEXTO"], train["SECTOR"])
        out[f"mas_{scoring}"] = clf.predict_proba(test["TEXTO"]).tolist()
json.dump(out, open(sys.argv[1], "w"))
"""

_CV_FIT = r"""
import os, sys, time
import pandas as pd, transformers.modeling_utils
from skllm_fewshot import FewShotLLMClassifier, FewShotLLMClassifierCV
from skllm_fewshot._engine import clear_feature_cache
from skllm_fewshot._loading import load_model
lines = [line.rstrip("\n").split(" ", 1) for line in open(sys.argv[1], encoding="utf-8") if line.strip()]
rows = pd.DataFrame(lines, columns=["label", "sentence"])
k = int(sys.argv[2])
train = pd.concat([g.sample(k, random_state=0) for _, g in rows.groupby("label")])
X, y = train["sentence"].tolist(), train["label"].map({"0": "negative", "1": "positive"}).tolist()
# bench_accuracy.py's SST-2 prompt.
MODEL = os.environ.get("BENCH_MODEL") or None
base = FewShotLLMClassifier(MODEL, instruction="Classify the sentiment of each movie review: {labels}.",
                            text_name="Review", label_name="Sentiment", random_state=0)
t0 = time.perf_counter(); load_model(MODEL); t1 = time.perf_counter()
clf = FewShotLLMClassifierCV(base, random_state=0, fine_tune=False).fit(X, y)  # the frozen candidates' cost
t2 = time.perf_counter()
clear_feature_cache()
base.fit(X, y).predict_proba(X)
t3 = time.perf_counter()
print({"load_s": t1 - t0, "cv_fit_s": t2 - t1, "one_pass_s": t3 - t2, "best": clf.best_name_,
       "rows": len(X), "cv_results_fit_s": float(clf.cv_results_["mean_fit_time"].sum())})
"""


def run(args: list[str], env: dict) -> tuple[float, str]:
    """Run a fresh Python process; return its wall time and standard output."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, *args], capture_output=True, text=True, env=env, cwd=ROOT)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"{args[:2]} failed:\n{done.stderr[-3000:]}")
    return wall, done.stdout


def last_dict(stdout: str) -> dict:
    import ast

    return ast.literal_eval(stdout.strip().splitlines()[-1])


def demo_phases(stdout: str) -> dict:
    import re

    line = next(line for line in stdout.splitlines() if line.startswith("import:"))
    values = [float(v) for v in re.findall(r"([\d.]+) s", line)]
    return dict(zip(["import_s", "fit_s", "predict_s"], values))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mas", default=str(SHARED / "mascorpus" / "tweets_marketing.csv"))
    parser.add_argument("--sst2", default=str(SHARED / "benchmarks"), help="folder with SST-2's train file")
    parser.add_argument("--k", type=int, default=8, help="rows per class for the CV fit")
    parser.add_argument("--model", default="", help="an embedded model's name (default: the default model)")
    parser.add_argument("--out", default=str(ROOT / "docs"))
    args = parser.parse_args()

    cache = tempfile.mkdtemp(prefix="skllm-bench-cache-")
    env = {
        **os.environ, "SKLLM_FEWSHOT_CACHE": cache, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "BENCH_MODEL": args.model,
    }  # fmt: skip
    demo = ["-m", "skllm_fewshot", "demo", *(["--model", args.model] if args.model else [])]
    off = {**env, "SKLLM_FEWSHOT_CACHE": "off"}
    rows: dict[str, dict] = {}

    wall, out = run(demo, env)
    rows["demo cold"] = {"wall_s": wall, **demo_phases(out)}
    wall, out = run(demo, env)
    rows["demo warm"] = {"wall_s": wall, **demo_phases(out)}
    from skllm_fewshot._loading import DEFAULT_MODEL, model_cache_info

    (entry,) = model_cache_info(disk_cache=cache)["disk_entries"]
    with tempfile.TemporaryDirectory() as tmp:
        pkl = str(Path(tmp) / "clf.joblib")
        _, out = run(["-c", _FIT_AND_DUMP, pkl], env)
        prompt = last_dict(out)["prompt"].replace("{}", "Absolutely fantastic, it works perfectly!")
        wall, out = run(["-c", _BOUND, entry["path"], prompt], env)
        rows["bound"] = {"wall_s": wall, **last_dict(out)}
        rows["joblib warm"] = last_dict(run(["-c", _JOBLIB_LOAD, pkl], env)[1])
        rows["joblib cold"] = last_dict(run(["-c", _JOBLIB_LOAD, pkl], off)[1])

        mas = args.mas if Path(args.mas).is_file() else ""
        run(["-c", _PROBAS, str(Path(tmp) / "off.json"), mas], off)
        run(["-c", _PROBAS, str(Path(tmp) / "warm.json"), mas], env)
        import numpy as np

        a, b = (json.loads((Path(tmp) / f"{n}.json").read_text()) for n in ("off", "warm"))
        rows["equal"] = {key: float(np.max(np.abs(np.array(a[key]) - np.array(b[key])))) for key in a}
    sst2 = Path(args.sst2) / "sst2_train.txt"
    if sst2.is_file():
        rows["cv_fit"] = last_dict(run(["-c", _CV_FIT, str(sst2), str(args.k)], env)[1])
    record = {
        "date": datetime.date.today().isoformat(),
        "command": "python benchmarks/bench_startup.py " + " ".join(sys.argv[1:]),
        "model": args.model or DEFAULT_MODEL,
        "converted_mib": entry["bytes"] / 2**20,
        "rows": rows,
    }
    out_dir = Path(args.out)
    with open(out_dir / "startup.jsonl", "a") as f:
        f.write(json.dumps(record) + "\n")
    (out_dir / f"startup_latest_{record['model']}.md").write_text(render(record))
    print(render(record))


def render(record: dict) -> str:
    r = record["rows"]
    demo_c, demo_w, bound = r["demo cold"], r["demo warm"], r["bound"]
    lines = [
        f"# Startup: latest run ({record['date']}, {record.get('model', 'smollm2-135m')})",
        "",
        f"Command: `{record['command']}`; every row is a fresh process (converted copy: "
        f"{record['converted_mib']:.0f} MiB).",
        "",
        "| scenario | whole process, s | import, s | fit (load + prompt), s | predict, s |",
        "|---|---|---|---|---|",
        f"| demo, cold (converts) | {demo_c['wall_s']:.1f} | {demo_c['import_s']:.1f} | {demo_c['fit_s']:.1f} "
        f"| {demo_c['predict_s']:.2f} |",
        f"| demo, warm | {demo_w['wall_s']:.1f} | {demo_w['import_s']:.1f} | {demo_w['fit_s']:.1f} "
        f"| {demo_w['predict_s']:.2f} |",
        f"| bound: imports, from_pretrained, one pass | {bound['wall_s']:.1f} | {bound['import_s']:.1f} "
        f"| {bound['load_and_pass_s']:.1f} | |",
        "",
        f"Warm demo against cold: {demo_c['wall_s'] / demo_w['wall_s']:.1f}x faster; against its bound: "
        f"{demo_w['wall_s'] / bound['wall_s']:.2f}x the bound's time.",
        "",
        "| joblib.load + first predict_proba | load, s | first predict, s | from the load call, s |",
        "|---|---|---|---|",
    ]
    for name in ("joblib warm", "joblib cold"):
        j = r[name]
        lines.append(
            f"| {name.split()[1]} | {j['load_s']:.2f} | {j['first_predict_s']:.2f} | {j['load_to_answer_s']:.2f} |"
        )
    lines += [
        "",
        f"Bound for it (from_pretrained of the converted files + one pass): {bound['load_and_pass_s']:.2f} s.",
        "",
    ]
    if "cv_fit" in r:
        c = r["cv_fit"]
        lines += [
            f"FewShotLLMClassifierCV.fit on {c['rows']} SST-2 rows: {c['cv_fit_s']:.1f} s (picked {c['best']}); "
            f"one FewShotLLMClassifier fit + predict over the same rows: {c['one_pass_s']:.1f} s "
            f"({c['cv_fit_s'] / c['one_pass_s']:.1f}x).",
            "",
        ]
    eq = r["equal"]
    lines += [
        "Largest difference between predictions loaded from the GGUF file and from the converted copy: "
        + ", ".join(f"{k} {v:.1e}" for k, v in eq.items()),
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    main()

"""Speed of predict_proba against the seed notebook's loop, measured side by side.

(a) the seed's method as a plain loop (one prompt at a time, whole prompt through
the model, logits at every position), (b) the library with ``label_scoring="first_token"``,
(c) with ``label_scoring="full_label"``, and opt-in faster paths, all on the same tweets
of the MAS corpus in one run. Prints a table, appends a JSON line to
``docs/performance.jsonl`` and rewrites ``docs/performance.md``.

    python benchmarks/bench_predict.py --n 200
    python benchmarks/bench_predict.py --random-init gemma-2b --device cuda --n 2000
"""

from __future__ import annotations

import argparse
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import (  # noqa: E402
    DEFAULT_DATA,
    ROOT,
    agreement,
    load_mas,
    matmul_gflops,
    peak_memory,
    save_record,
    seed_split,
)

from skllm_fewshot import FewShotLLMClassifier  # noqa: E402
from skllm_fewshot._loading import load_model  # noqa: E402
from skllm_fewshot.reference import seed_first_token_proba  # noqa: E402

# Real architectures' shapes, randomly initialised (no weights can be downloaded).
RANDOM_CONFIGS = {
    "smollm2-135m": (
        "LlamaConfig",
        dict(
            hidden_size=576,
            intermediate_size=1536,
            num_hidden_layers=30,
            num_attention_heads=9,
            num_key_value_heads=3,
            vocab_size=49152,
            tie_word_embeddings=True,
        ),
    ),
    "gemma-2b": (
        "GemmaConfig",
        dict(
            hidden_size=2048,
            intermediate_size=16384,
            num_hidden_layers=18,
            num_attention_heads=8,
            num_key_value_heads=1,
            head_dim=256,
            vocab_size=256000,
        ),
    ),
    "llama-3.2-1b": (
        "LlamaConfig",
        dict(
            hidden_size=2048,
            intermediate_size=8192,
            num_hidden_layers=16,
            num_attention_heads=32,
            num_key_value_heads=8,
            vocab_size=128256,
            tie_word_embeddings=True,
        ),
    ),
}


def random_model(name: str, device: str, dtype: torch.dtype):
    import transformers

    cls_name, kwargs = RANDOM_CONFIGS[name]
    config = getattr(transformers, cls_name)(max_position_embeddings=4096, **kwargs)
    torch.manual_seed(0)
    with torch.device(device):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def flops_per_token(model) -> tuple[float, float]:
    """2 x non-embedding parameters per token; 2 x hidden x vocab per LM-head row."""
    emb = model.get_input_embeddings().weight
    head = model.get_output_embeddings().weight
    total = sum(p.numel() for p in model.parameters())
    body = total - emb.numel() - (0 if head is emb else head.numel())
    return 2.0 * body, 2.0 * head.numel()


def run(args: argparse.Namespace) -> list[dict]:
    tweets, instruction = load_mas(args.data)
    train, test = seed_split(tweets)
    texts = test["TEXTO"].tolist()[: args.n]
    device = args.device if args.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    exact_dtype = torch.float32 if device == "cpu" else torch.bfloat16

    if args.random_init:
        tokenizer = load_model(None).tokenizer
        model = random_model(args.random_init, device, exact_dtype)
        source = f"random {args.random_init}"
    else:
        loaded = load_model(args.model, device=device, dtype=exact_dtype)
        model, tokenizer, source = loaded.model, loaded.tokenizer, args.model or "SmolLM2-135M-Instruct"
    body_flops, head_flops = flops_per_token(model)

    def make(**kw):
        return FewShotLLMClassifier(
            model=model,
            tokenizer=tokenizer,
            instruction=instruction,
            text_name="Tweet",
            label_name="Categoría",
            n_examples_per_class=1,
            random_state=0,
            batch_size=args.batch_size,
            **kw,
        ).fit(train["TEXTO"], train["SECTOR"])

    peak_gflops = matmul_gflops(device)
    rows = []

    def timed(name, fn, count):
        mem: dict = {}
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        with peak_memory(mem, device):
            start = time.perf_counter()
            proba, tokens, head_rows = fn()
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            seconds = time.perf_counter() - start
        flops = tokens * body_flops + head_rows * head_flops
        rows.append(
            dict(
                method=name,
                seconds=seconds,
                proba=proba,
                tweets_per_s=count / seconds,
                ms_per_tweet=1000 * seconds / count,
                peak_mib=mem["peak_mib"],
                gflops=flops / seconds / 1e9,
                tokens_per_tweet=tokens / count,
            )
        )
        print(f"  {name}: {1000 * seconds / count:.1f} ms/tweet", flush=True)

    seed_clf = make(label_scoring="first_token", calibrate=False)  # the seed's method
    prompts = [seed_clf.prompt_.replace("{}", t) for t in texts]
    n_seed = min(len(texts), args.n_seed or len(texts))

    def seed_loop():
        proba = seed_first_token_proba(model, tokenizer, prompts[:n_seed], seed_clf.label_words_)
        n_tok = sum(len(ids) for ids in tokenizer(prompts[:n_seed]).input_ids)
        return proba, n_tok, n_tok

    def library(clf):
        def fn():
            before = clf.engine_.stats
            proba = clf.predict_proba(texts)
            after = clf.engine_.stats
            return proba, after["tokens"] - before["tokens"], after["head_rows"] - before["head_rows"]

        return fn

    for clf in (seed_clf,):  # warm up: prefix cache, first-call allocations
        clf.predict_proba(texts[:4])
    timed("(a) seed loop", seed_loop, n_seed)
    timed("(b) first_token", library(seed_clf), len(texts))
    full = make(label_scoring="full_label", calibrate=False)
    full.predict_proba(texts[:4])
    timed("(c) full_label", library(full), len(texts))
    if device == "cpu" and not args.random_init and not args.skip_fast:
        for dtype in ("bfloat16", "qint8"):
            fast_model = load_model(args.model, device=device, dtype=dtype)
            for scoring in ("first_token", "full_label"):
                fast = FewShotLLMClassifier(
                    model=fast_model.model,
                    tokenizer=fast_model.tokenizer,
                    instruction=instruction,
                    text_name="Tweet",
                    label_name="Categoría",
                    n_examples_per_class=1,
                    random_state=0,
                    batch_size=args.batch_size,
                    label_scoring=scoring,
                    calibrate=False,
                ).fit(train["TEXTO"], train["SECTOR"])
                fast.predict_proba(texts[:4])
                timed(f"opt-in {scoring} dtype={dtype}", library(fast), len(texts))

    ref = rows[0]["proba"]
    for row in rows:
        m = min(len(ref), len(row["proba"]))
        row["speedup"] = row["tweets_per_s"] / rows[0]["tweets_per_s"]
        row["agreement"] = agreement(ref[:m], row["proba"][:m])
        row["max_abs_diff"] = float(np.abs(ref[:m] - row["proba"][:m]).max())
        row["pct_of_matmul_peak"] = 100 * row["gflops"] / peak_gflops
        # The exact float32 library row with the same scoring, for the opt-in paths.
        exact = rows[2] if "full_label" in row["method"] else rows[1] if len(rows) > 1 else row
        row["agreement_with_exact"] = agreement(exact["proba"], row["proba"])
    meta = dict(
        model=source,
        device=device,
        n=len(texts),
        n_seed=n_seed,
        batch_size=args.batch_size,
        matmul_gflops=peak_gflops,
        torch=torch.__version__,
        threads=torch.get_num_threads(),
        machine=platform.processor() or platform.machine(),
        date=time.strftime("%Y-%m-%d"),
    )
    return meta, rows


def render(meta: dict, rows: list[dict], command: str) -> str:
    lines = [
        f"Command: `{command}`",
        "",
        f"Model: {meta['model']} on {meta['device']} ({meta['threads']} threads, torch {meta['torch']}); "
        f"{meta['n']} MAS test tweets ({meta['n_seed']} for the seed loop), one example per class, "
        f"batch_size={meta['batch_size']}; {meta['date']}. Measured matmul throughput in the same run: "
        f"{meta['matmul_gflops']:.0f} GFLOP/s.",
        "",
        "| method | tweets/s | ms/tweet | speed-up vs (a) | agreement with (a) | max abs diff vs (a) "
        "| agreement with exact float32, same scoring | tokens computed/tweet | peak MiB | GFLOP/s "
        "| % of matmul |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        diff = f"{r['max_abs_diff']:.1e}" if "first_token" in r["method"] or "seed" in r["method"] else "n/a"
        lines.append(
            f"| {r['method']} | {r['tweets_per_s']:.2f} | {r['ms_per_tweet']:.1f} | {r['speedup']:.2f}x "
            f"| {100 * r['agreement']:.1f}% | {diff} | {100 * r['agreement_with_exact']:.1f}% "
            f"| {r['tokens_per_tweet']:.0f} | {r['peak_mib']:.0f} "
            f"| {r['gflops']:.1f} | {r['pct_of_matmul_peak']:.0f}% |"
        )
    return "\n".join(lines) + "\n"


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="path of tweets_marketing.csv")
    parser.add_argument("--n", type=int, default=200, help="test tweets scored")
    parser.add_argument("--n-seed", type=int, default=0, help="tweets for the slow seed loop (default: --n)")
    parser.add_argument("--model", default=None, help="model id, folder or .gguf (default: embedded SmolLM2)")
    parser.add_argument("--random-init", choices=sorted(RANDOM_CONFIGS), help="random model of a real shape")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=lambda s: s if s == "auto" else int(s), default=16)
    parser.add_argument("--skip-fast", action="store_true", help="skip the opt-in bfloat16 path")
    parser.add_argument("--out", default=str(ROOT / "docs"), help="folder for performance.md/.jsonl")
    args = parser.parse_args(argv)
    command = "python benchmarks/bench_predict.py " + " ".join(argv if argv is not None else sys.argv[1:])
    meta, rows = run(args)
    command = command.strip()
    save_record(
        args.out,
        "performance.jsonl",
        command,
        meta,
        rows,
        render(meta, rows, command),
        latest="performance_latest.md",
    )


if __name__ == "__main__":
    main()

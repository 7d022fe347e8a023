"""Command line: ``python -m skllm_fewshot demo``, ``python -m skllm_fewshot cache info|clear``."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence

# The seed notebook's few-shot sentiment task.
SEED_INSTRUCTION = (
    "Decide whether the following product reviews' sentiment is positive, neutral, or negative."
)
SEED_EXAMPLES = [
    ("I love my new chess board!", "positive"),
    ("Not what I expected but I guess it'll do", "neutral"),
    ("I'm so disappointed. The product seemed much better on the website", "negative"),
]
DEMO_REVIEWS = [
    "The reactivity of your team has been good...ish. However, the overal experience is questionable.",
    "Absolutely fantastic, it works perfectly and arrived early!",
    "Broke after two days and support never answered.",
    "It's fine. Does the job, nothing special.",
]


def demo(args: argparse.Namespace) -> int:
    start = time.perf_counter()
    # What any model needs, imported before the clock of fit starts so that "fit" is
    # the model load and the prompt: torch, scikit-learn and transformers' model code.
    import transformers.modeling_utils  # noqa: F401

    from skllm_fewshot import FewShotLLMClassifier
    from skllm_fewshot._loading import DEFAULT_MODEL

    imported = time.perf_counter()

    X, y = zip(*SEED_EXAMPLES)
    clf = FewShotLLMClassifier(
        model=args.model,
        instruction=SEED_INSTRUCTION,
        text_name="Product review",
        label_name="Sentiment",
        label_scoring=args.label_scoring,
        device=args.device,
        random_state=0,
    )
    clf.fit(list(X), list(y))
    loaded = time.perf_counter()
    proba = clf.predict_proba(DEMO_REVIEWS)
    done = time.perf_counter()
    print(
        f"model: {args.model or DEFAULT_MODEL + ' (the embedded default)'}, label_scoring={args.label_scoring}"
    )
    print(
        f"import: {imported - start:.1f} s, fit (model load + prompt): {loaded - imported:.1f} s, "
        f"predict_proba: {done - loaded:.2f} s\n"
    )
    header = "  ".join(f"{c:>8}" for c in clf.classes_)
    print(f"{'predicted':>9}  {header}  review")
    for review, row in zip(DEMO_REVIEWS, proba):
        label = clf.classes_[row.argmax()]
        cells = "  ".join(f"{p:8.3f}" for p in row)
        print(f"{label:>9}  {cells}  {review[:60]}")
    return 0


def cache(args: argparse.Namespace) -> int:
    from skllm_fewshot._loading import clear_model_cache, model_cache_info

    where = args.dir or None
    info = model_cache_info(disk_cache=where)
    if info["disk_dir"] is None:
        print("The converted-model cache is off (SKLLM_FEWSHOT_CACHE).")
        return 0
    if args.action == "clear":
        clear_model_cache(disk=True, disk_cache=where)
        print(f"removed {len(info['disk_entries'])} converted model(s) from {info['disk_dir']}")
        return 0
    print(f"converted models in {info['disk_dir']}:")
    for entry in info["disk_entries"]:
        state = "" if entry["complete"] else "  (incomplete: rebuilt on next load)"
        print(f"  {entry['name']}  {entry['bytes'] / 2**20:.0f} MiB  from {entry['gguf']}{state}")
    if not info["disk_entries"]:
        print("  (none)")
    for path in info["joined_files"]:
        print(f"joined from its package's chunks: {path}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="skllm_fewshot", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("demo", help="the seed's few-shot sentiment example on the embedded model")
    p.add_argument(
        "--model",
        default=None,
        help="an embedded model's name (smollm2-135m, gemma-3-270m), a Hugging Face id, a folder or a .gguf file",
    )
    p.add_argument("--label-scoring", default="full_label", choices=["full_label", "first_token"])
    p.add_argument("--device", default="auto")
    p.set_defaults(func=demo)
    c = sub.add_parser("cache", help="list or remove the GGUF models converted once and kept on disk")
    c.add_argument("action", choices=["info", "clear"])
    c.add_argument(
        "--dir", default=None, help="the cache folder (default: SKLLM_FEWSHOT_CACHE, else the user's)"
    )
    c.set_defaults(func=cache)
    args = parser.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

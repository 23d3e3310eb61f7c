"""``course bench gpt-shakespeare``: the course's GPT recipe against nanoGPT's published CPU
recipe on tiny Shakespeare, characters as tokens, both trained by the same code
(``gpt.train_gpt``) in one run on one thread: validation loss in nats per character on
the whole validation split (``gpt.split_loss``), CPU seconds of training, parameters and
characters seen. The shipped results: ``course_utils/weights/gpt_bench.json``.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch

from course_utils.bench import load_json, machine, save_json
from course_utils.language_models.gpt import Gpt, GptConfig, TrainConfig, split_loss, train_gpt
from course_utils.language_models.shakespeare import shakespeare_ids
from course_utils.registry import benchmark

# nanoGPT's README, "I only have a macbook": train.py config/train_shakespeare_char.py
# --device=cpu --compile=False --block_size=64 --batch_size=12 --n_layer=4 --n_head=4
# --n_embd=128 --max_iters=2000 --lr_decay_iters=2000 --dropout=0.0 (the config's
# lr 1e-3, min_lr 1e-4, warmup 100, beta2 0.99; train.py's weight decay 0.1, clip 1.0).
NANOGPT_CPU = (
    GptConfig(vocab_size=65, block_size=64, n_layer=4, n_head=4, n_embd=128),
    TrainConfig(steps=2000, batch_size=12, lr=1e-3, min_lr=1e-4, warmup=100),
)
# The course's: half the depth, 1.75x the steps at 6x the learning rate. At this budget a
# smaller model that sees more characters wins (README, Benchmarks: the runs that chose it).
COURSE = (
    GptConfig(vocab_size=65, block_size=64, n_layer=2, n_head=4, n_embd=128),
    TrainConfig(steps=3500, batch_size=12, lr=6e-3, min_lr=6e-4, warmup=100),
)
RECIPES = {"nanogpt-cpu": NANOGPT_CPU, "course": COURSE}


def run_recipe(name: str, seed: int = 0) -> dict[str, float | str]:
    """Train recipe ``name`` of ``RECIPES`` from ``seed`` on the training split; its row."""
    model_config, train_config = RECIPES[name]
    torch.manual_seed(seed)
    model = Gpt.from_config(model_config)
    info = train_gpt(model, shakespeare_ids("train"), train_config, seed=seed)
    wall = time.perf_counter()
    val = split_loss(model, shakespeare_ids("val"))
    return {
        "recipe": name,
        "val_loss": val,
        "cpu_seconds": info["cpu_seconds"],
        "train_seconds": info["train_seconds"],
        "eval_seconds": time.perf_counter() - wall,
        "parameters": float(model.parameter_count()),
        "characters": info["tokens"],
    }


def format_gpt_bench(rows: list[dict]) -> list[str]:
    """The table of ``course bench gpt-shakespeare``'s rows."""
    lines = [f"{'recipe':<13}{'val nats/char':>14}{'CPU s':>8}{'parameters':>12}{'characters':>12}"]
    for r in rows:
        lines.append(
            f"{r['recipe']:<13}{r['val_loss']:>14.3f}{r['cpu_seconds']:>8.0f}"
            f"{int(r['parameters']):>12,}{int(r['characters']):>12,}"
        )
    return lines


def load_gpt_bench(path: str | None = None) -> dict:
    """The shipped ``course bench gpt-shakespeare`` results: ``{"rows", "machine"}``."""
    return load_json("gpt_bench.json", path)


@benchmark(
    "gpt-shakespeare",
    summary="GPT on tiny Shakespeare: the course's recipe against nanoGPT's CPU recipe",
    options=("save", "methods"),
    table=lambda: format_gpt_bench(load_gpt_bench()["rows"]),
)
def bench_gpt_shakespeare(save: str | None = None, methods: str | None = None) -> list[dict]:
    """Train each recipe (``methods``: comma-separated names of ``RECIPES``, default all) on
    one thread, one after the other; print and return their rows."""
    names = list(RECIPES) if methods is None else methods.split(",")
    unknown = sorted(set(names) - set(RECIPES))
    if unknown:
        raise ValueError(f"methods: expected some of {sorted(RECIPES)}, got {unknown}")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rows = [run_recipe(name) for name in names]
    finally:
        torch.set_num_threads(threads)
    print(f"GPT on tiny Shakespeare (characters); {machine()}")
    print("\n".join(format_gpt_bench(rows)))
    if save is not None:
        kept = []
        if methods is not None and Path(save).is_file():  # the other recipes' rows stay
            kept = [r for r in load_gpt_bench(save)["rows"] if r["recipe"] not in names]
        save_json({"rows": kept + rows, "machine": machine()}, save)
    return rows

"""Lecture 07's shipped models of tiny Shakespeare: the data as character ids, the
character GPT (``course pretrain gpt_shakespeare``) and a character masked LM
(``course pretrain bert_shakespeare``).

The GPT's recipe trains on random windows of the training split (``gpt.train_gpt``), measures
the loss on the first ``PROBE`` validation characters every ``EVAL_EVERY`` steps, keeps
the weights of the best such probe (as nanoGPT keeps its best checkpoint), and reports the
loss of those weights on the whole validation split (``gpt.split_loss``).
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict
from functools import lru_cache
from pathlib import Path

import torch
import torch.nn.functional as F

from course_utils import checkpoints, data
from course_utils.language_models.functions import mask_tokens
from course_utils.language_models.gpt import (
    Gpt,
    GptConfig,
    TrainConfig,
    random_windows,
    split_loss,
    train_gpt,
)
from course_utils.language_models.tokenizers import CharTokenizer
from course_utils.registry import recipe

# 4 blocks of 6 heads of 32, context 128: 1.8M parameters; 16.4M characters seen.
GPT_SHAKESPEARE = (
    GptConfig(vocab_size=65, block_size=128, n_layer=4, n_head=6, n_embd=192),
    TrainConfig(steps=4000, batch_size=32, lr=3e-3, min_lr=3e-4, warmup=200),
)
EVAL_EVERY = 500
PROBE = 32_768


@lru_cache(maxsize=1)
def tokenizer() -> CharTokenizer:
    """The 65 characters of the whole text, in sorted order (nanoGPT's ``shakespeare_char``)."""
    return CharTokenizer.from_text(data.shakespeare("all"))


@lru_cache(maxsize=3)
def shakespeare_ids(split: str) -> torch.Tensor:
    """``data.shakespeare(split)`` as character ids ``[N]`` (``tokenizer()``)."""
    return torch.tensor(tokenizer().encode(data.shakespeare(split)), dtype=torch.long)


def train_gpt_shakespeare(seed: int = 0) -> tuple[Gpt, dict[str, float]]:
    """Train ``GPT_SHAKESPEARE`` from ``seed``; every ``EVAL_EVERY`` steps the loss on the
    first ``PROBE`` validation characters. Returns the weights of the best probe and their
    metrics: ``val_loss`` on the whole validation split, ``best_step``, ``probe_loss``,
    ``train_seconds`` and ``cpu_seconds`` (training only, probes excluded), ``characters``
    seen by the kept weights, ``parameters``."""
    model_config, train_config = GPT_SHAKESPEARE
    torch.manual_seed(seed)
    model = Gpt.from_config(model_config)
    probe = shakespeare_ids("val")[:PROBE]
    best = {"loss": float("inf"), "step": 0, "state": None}
    probing = {"wall": 0.0, "cpu": 0.0}

    def log(step: int, loss: float) -> None:
        if (step + 1) % EVAL_EVERY and step + 1 != train_config.steps:
            return
        wall, cpu = time.perf_counter(), time.process_time()
        val = split_loss(model, probe)
        print(f"step {step + 1:5d}  train {loss:.3f}  probe {val:.4f}", flush=True)
        if val < best["loss"]:
            best.update(loss=val, step=step + 1, state=copy.deepcopy(model.state_dict()))
        probing["wall"] += time.perf_counter() - wall
        probing["cpu"] += time.process_time() - cpu

    info = train_gpt(model, shakespeare_ids("train"), train_config, seed=seed, log=log)
    model.load_state_dict(best["state"])
    return model, {
        "val_loss": split_loss(model, shakespeare_ids("val")),
        "best_step": float(best["step"]),
        "probe_loss": best["loss"],
        "train_seconds": info["train_seconds"] - probing["wall"],
        "cpu_seconds": info["cpu_seconds"] - probing["cpu"],
        "characters": float(best["step"] * train_config.batch_size * model_config.block_size),
        "parameters": float(model.parameter_count()),
        "threads": float(torch.get_num_threads()),
    }


@recipe(
    "gpt_shakespeare",
    model="course_utils.language_models.gpt:Gpt",
    summary="character GPT on tiny Shakespeare (4 blocks, 6 heads, width 192; lecture 07)",
    numbers=(
        "validation {val_loss:.3f} nats/char (whole split) after {characters:,.0f} "
        "characters; {train_seconds:.0f} s of training (torch threads: {threads:.0f})"
    ),
)
def pretrain_gpt_shakespeare(out: Path, seed: int = 0) -> dict[str, float]:
    """``train_gpt_shakespeare``, saved (``pixel_range``: the range of the token ids)."""
    model, results = train_gpt_shakespeare(seed=seed)
    checkpoints.save(model, out, name="gpt_shakespeare", config=asdict(model.config),
                     pixel_range=(0.0, model.config.vocab_size - 1.0), metrics=results)  # fmt: skip
    return results


# A masked LM over the same characters plus one [MASK] id (65): 2 blocks of 4 heads, width
# 128, context 64, no causal mask. BERT's 80/10/10 corruption (``mask_tokens``) at a rate
# drawn per batch from [0.15, 1] (MaskGIT's training; BERT's own rate is 0.15), so that
# one model fills blanks and also generates from a fully masked sequence.
BERT_SHAKESPEARE = (
    GptConfig(vocab_size=66, block_size=64, n_layer=2, n_head=4, n_embd=128, causal=False),
    TrainConfig(steps=4000, batch_size=24, lr=2e-3, min_lr=2e-4, warmup=100, weight_decay=0.01),
)
MIN_MASK_RATE = 0.15


def masked_lm_accuracy(model: Gpt, rate: float = 0.15, windows: int = 512) -> dict[str, float]:
    """Accuracy and loss (nats per character) at the chosen positions of ``windows``
    validation windows corrupted by ``mask_tokens`` at ``rate`` (fixed seeds)."""
    mask = model.config.vocab_size - 1
    x, _ = random_windows(shakespeare_ids("val"), model.config.block_size, windows,
                          torch.Generator().manual_seed(1))  # fmt: skip
    inputs, labels = mask_tokens(x, mask, mask, p=rate, generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        logits = model(inputs)
    chosen = labels != -100
    return {
        "mlm_accuracy": (logits.argmax(-1)[chosen] == labels[chosen]).float().mean().item(),
        "mlm_loss": F.cross_entropy(logits[chosen], labels[chosen]).item(),
    }


def train_bert_shakespeare(seed: int = 0) -> tuple[Gpt, dict[str, float]]:
    """Train ``BERT_SHAKESPEARE`` from ``seed`` with ``train_gpt``, each batch corrupted by
    ``mask_tokens`` at a rate drawn from [``MIN_MASK_RATE``, 1]; returns the model and
    ``masked_lm_accuracy`` at BERT's 15% with ``train_seconds``, ``cpu_seconds``,
    ``parameters``, ``threads``."""
    model_config, train_config = BERT_SHAKESPEARE
    torch.manual_seed(seed)
    model = Gpt.from_config(model_config)
    mask = model_config.vocab_size - 1

    def corrupt(x: torch.Tensor, _: torch.Tensor, generator: torch.Generator) -> tuple:
        rate = MIN_MASK_RATE + (1 - MIN_MASK_RATE) * torch.rand((), generator=generator).item()
        return mask_tokens(x, mask, mask, p=rate, generator=generator)

    def log(step: int, loss: float) -> None:
        if (step + 1) % EVAL_EVERY == 0:
            print(f"step {step + 1:5d}  loss {loss:.3f}", flush=True)

    info = train_gpt(model, shakespeare_ids("train"), train_config, seed=seed, log=log,
                     corrupt=corrupt)  # fmt: skip
    return model, {
        **masked_lm_accuracy(model),
        "train_seconds": info["train_seconds"],
        "cpu_seconds": info["cpu_seconds"],
        "parameters": float(model.parameter_count()),
        "threads": float(torch.get_num_threads()),
    }


@recipe(
    "bert_shakespeare",
    model="course_utils.language_models.gpt:Gpt",
    summary="character masked LM on tiny Shakespeare (BERT's loss, MaskGIT's rates; lecture 07)",
    numbers=(
        "{mlm_accuracy:.1%} of BERT's 15% masked characters right ({mlm_loss:.2f} nats/char); "
        "{train_seconds:.0f} s of training (torch threads: {threads:.0f})"
    ),
)
def pretrain_bert_shakespeare(out: Path, seed: int = 0) -> dict[str, float]:
    """``train_bert_shakespeare``, saved."""
    model, results = train_bert_shakespeare(seed=seed)
    checkpoints.save(model, out, name="bert_shakespeare", config=asdict(model.config),
                     pixel_range=(0.0, model.config.vocab_size - 1.0), metrics=results)  # fmt: skip
    return results

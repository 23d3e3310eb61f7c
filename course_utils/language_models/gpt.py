"""A GPT (Radford et al. 2018, 2019; as nanoGPT writes it): token and position
embeddings, pre-norm blocks of multi-head causal self-attention and an MLP, the output
layer tied to the token embedding; generation with a key/value cache; training on random
windows of a token sequence; the loss on a whole split.

Shapes: token ids ``[B, n]`` (LongTensor), activations ``[B, n, d]``, logits ``[B, n, V]``
where position ``i`` predicts token ``i + 1``. A cache is one ``(k, v)`` pair per block,
each ``[B, heads, m, d / heads]`` for the ``m`` positions already seen.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)
from course_utils.language_models.functions import top_p_filter

Cache = list[tuple[torch.Tensor, torch.Tensor]]


@dataclass(frozen=True)
class GptConfig:
    """The architecture: ``vocab_size`` tokens, a context of ``block_size``, ``n_layer``
    blocks of ``n_head`` heads, width ``n_embd``; ``dropout`` on attention and residuals;
    ``bias`` in the linear layers and layer norms; ``causal`` False lets every position
    attend to every other (BERT's encoder: the same block, another mask)."""

    vocab_size: int = 65
    block_size: int = 64
    n_layer: int = 4
    n_head: int = 4
    n_embd: int = 128
    dropout: float = 0.0
    bias: bool = False
    causal: bool = True

    def __post_init__(self) -> None:
        if self.n_embd % self.n_head:
            raise ValueError(
                f"n_head: expected a divisor of n_embd={self.n_embd}, got {self.n_head}"
            )


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention: ``qkv`` projects to queries, keys and values
    (``x @ w_qkv`` with ``w_qkv = qkv.weight.T``, as the exercise's
    ``multi_head_attention``), each head attends with ``softmax(q kᵀ / sqrt(d / heads))``
    over the positions up to its own, and ``proj`` mixes the concatenated heads."""

    def __init__(self, config: GptConfig) -> None:
        super().__init__()
        self.n_head, self.dropout, self.causal = config.n_head, config.dropout, config.causal
        self.qkv = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.resid_drop = nn.Dropout(config.dropout)

    def heads(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``x [B, n, d]`` -> queries, keys and values, each ``[B, heads, n, d / heads]``."""
        b, n, d = x.shape
        return tuple(
            t.view(b, n, self.n_head, d // self.n_head).transpose(1, 2)
            for t in self.qkv(x).split(d, dim=-1)
        )

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        """``x [B, n, d]`` (positions after the ``m`` in ``cache``) -> ``(y [B, n, d], the
        cache of all m + n positions)``."""
        b, n, d = x.shape
        q, k, v = self.heads(x)
        if cache is not None:
            k, v = torch.cat([cache[0], k], dim=2), torch.cat([cache[1], v], dim=2)
        m = k.shape[2] - n  # positions before x's
        mask = None
        if n > 1 and self.causal:  # query i (position m + i) sees keys 0 … m + i
            mask = torch.ones(n, m + n, dtype=torch.bool, device=x.device).tril(diagonal=m)
        y = F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, dropout_p=self.dropout if self.training else 0.0
        )
        y = y.transpose(1, 2).reshape(b, n, d)  # heads concatenated in order
        return self.resid_drop(self.proj(y)), (k, v)


class Block(nn.Module):
    """Pre-norm transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``."""

    def __init__(self, config: GptConfig) -> None:
        super().__init__()
        d = config.n_embd
        self.ln_1 = nn.LayerNorm(d, bias=config.bias)
        self.attn = CausalSelfAttention(config)
        self.ln_2 = nn.LayerNorm(d, bias=config.bias)
        self.mlp = nn.Sequential(
            nn.Linear(d, 4 * d, bias=config.bias),
            nn.GELU(),
            nn.Linear(4 * d, d, bias=config.bias),
            nn.Dropout(config.dropout),
        )

    def forward(
        self, x: torch.Tensor, cache: tuple[torch.Tensor, torch.Tensor] | None = None
    ) -> tuple[torch.Tensor, tuple[torch.Tensor, torch.Tensor]]:
        h, cache = self.attn(self.ln_1(x), cache)
        x = x + h
        return x + self.mlp(self.ln_2(x)), cache


class Gpt(nn.Module):
    """A decoder-only transformer language model; ``Gpt(**asdict(config))`` or
    ``Gpt.from_config(config)``. ``forward(idx)`` gives logits ``[B, n, V]``;
    ``forward_cached(idx, cache)`` continues from a cache (generation)."""

    def __init__(self, **config: object) -> None:
        super().__init__()
        self.config = c = GptConfig(**config)  # type: ignore[arg-type]
        self.wte = nn.Embedding(c.vocab_size, c.n_embd)
        self.wpe = nn.Embedding(c.block_size, c.n_embd)
        self.drop = nn.Dropout(c.dropout)
        self.blocks = nn.ModuleList(Block(c) for _ in range(c.n_layer))
        self.ln_f = nn.LayerNorm(c.n_embd, bias=c.bias)
        self.lm_head = nn.Linear(c.n_embd, c.vocab_size, bias=False)
        self.lm_head.weight = self.wte.weight  # weight tying (Press & Wolf 2017)
        self.apply(self._init)
        for name, p in self.named_parameters():  # GPT-2's scaled init of residual outputs
            if name.endswith("attn.proj.weight") or name.endswith("mlp.2.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * c.n_layer))

    @classmethod
    def from_config(cls, config: GptConfig) -> Gpt:
        return cls(**asdict(config))

    @staticmethod
    def _init(module: nn.Module) -> None:
        if isinstance(module, (nn.Linear, nn.Embedding)):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if isinstance(module, nn.Linear) and module.bias is not None:
            nn.init.zeros_(module.bias)

    def parameter_count(self) -> int:
        """Parameters, the tied output layer counted once (position embeddings included)."""
        return sum(p.numel() for p in self.parameters())

    def forward_cached(
        self, idx: torch.Tensor, cache: Cache | None = None
    ) -> tuple[torch.Tensor, Cache]:
        """``idx [B, n]``, the tokens after the ``m`` positions in ``cache`` -> ``(logits
        [B, n, V], the cache of all m + n positions)``.

        Raises:
            ValueError: ``m + n`` exceeds the context ``block_size``.
        """
        m = 0 if cache is None else cache[0][0].shape[2]
        n = idx.shape[1]
        if m + n > self.config.block_size:
            raise ValueError(
                f"idx: expected at most block_size={self.config.block_size} positions with "
                f"the cache, got {m} + {n}"
            )
        positions = torch.arange(m, m + n, device=idx.device)
        x = self.drop(self.wte(idx) + self.wpe(positions))
        new_cache: Cache = []
        for i, block in enumerate(self.blocks):
            x, layer_cache = block(x, None if cache is None else cache[i])
            new_cache.append(layer_cache)
        return self.lm_head(self.ln_f(x)), new_cache

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx [B, n]`` (n ≤ block_size) -> logits ``[B, n, V]``."""
        return self.forward_cached(idx)[0]


@torch.no_grad()
def attention_maps(model: Gpt, idx: torch.Tensor) -> torch.Tensor:
    """The attention probabilities of every head on ``idx [B, n]``: ``[B, layers, heads, n,
    n]``, row ``i`` the weights query ``i`` gives keys ``0 … n - 1`` (zero after ``i``
    when causal). Recomputed from each block's input with its ``CausalSelfAttention.heads``."""
    c = model.config
    n = idx.shape[1]
    x = model.wte(idx) + model.wpe(torch.arange(n, device=idx.device))
    maps = []
    for block in model.blocks:
        q, k, _ = block.attn.heads(block.ln_1(x))
        scores = q @ k.transpose(-2, -1) / math.sqrt(c.n_embd // c.n_head)
        if c.causal:
            future = torch.ones(n, n, dtype=torch.bool, device=idx.device).triu(diagonal=1)
            scores = scores.masked_fill(future, float("-inf"))
        maps.append(scores.softmax(-1))
        x, _ = block(x)
    return torch.stack(maps, dim=1)


def filter_logits(
    logits: torch.Tensor,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """``logits [..., V]`` divided by ``temperature``, then only the ``top_k`` largest kept,
    then the nucleus of mass ``top_p`` (``top_p_filter``); the rest ``-inf``."""
    if not temperature > 0:
        raise ValueError(f"temperature: expected a positive float, got {temperature!r}")
    logits = logits / temperature
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        logits = top_p_filter(logits, top_p)
    return logits


@torch.no_grad()
def generate(
    model: Gpt,
    idx: torch.Tensor,
    new_tokens: int,
    *,
    temperature: float = 1.0,
    top_k: int | None = None,
    top_p: float | None = None,
    greedy: bool = False,
    use_cache: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """``idx [B, n]`` followed by ``new_tokens`` tokens, each drawn from the filtered
    next-token distribution (``filter_logits``; the most probable one when ``greedy``).

    With ``use_cache`` each step feeds only the newest token and reuses the keys and values
    of the earlier ones; without, it recomputes the whole context (the same logits up to
    rounding). Past ``block_size`` tokens the context is the last ``block_size``: the cache
    is rebuilt from them.
    """
    block = model.config.block_size
    cache: Cache | None = None
    for _ in range(new_tokens):
        if cache is None:
            logits, cache = model.forward_cached(idx[:, -block:])
        else:
            logits, cache = model.forward_cached(idx[:, -1:], cache)
        logits = logits[:, -1, :]
        if greedy:
            nxt = logits.argmax(dim=-1, keepdim=True)
        else:
            probs = F.softmax(filter_logits(logits, temperature, top_k, top_p), dim=-1)
            nxt = torch.multinomial(probs, 1, generator=generator)
        idx = torch.cat([idx, nxt], dim=1)
        if not use_cache or cache[0][0].shape[2] >= block:  # full: recompute the last block
            cache = None
    return idx


def random_windows(
    ids: torch.Tensor, block_size: int, batch_size: int, generator: torch.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    """``batch_size`` windows of ``ids [N]`` at random offsets: inputs and their next
    tokens, each ``[batch_size, block_size]`` (nanoGPT's ``get_batch``)."""
    start = torch.randint(len(ids) - block_size, (batch_size,), generator=generator)
    offsets = start[:, None] + torch.arange(block_size)
    return ids[offsets], ids[offsets + 1]


@torch.no_grad()
def split_loss(model: Gpt, ids: torch.Tensor, batch_size: int = 64) -> float:
    """The mean next-token loss (nats per token) over a whole split ``ids [N]``: consecutive
    windows of ``block_size + 1`` tokens overlapping by one, so that every token but the
    first is predicted once, from up to ``block_size`` tokens before it in its window."""
    was_training = model.training
    model.eval()
    block = model.config.block_size
    starts = torch.arange(0, len(ids) - 1, block)
    total, count = 0.0, 0
    for chunk in starts.split(batch_size):
        windows = [ids[s : s + block + 1] for s in chunk.tolist()]
        for width in sorted({len(w) for w in windows}):  # the last window may be shorter
            same = torch.stack([w for w in windows if len(w) == width])
            logits = model(same[:, :-1])
            total += F.cross_entropy(
                logits.reshape(-1, logits.shape[-1]), same[:, 1:].reshape(-1), reduction="sum"
            ).item()
            count += same[:, 1:].numel()
    model.train(was_training)
    return total / count


@dataclass(frozen=True)
class TrainConfig:
    """nanoGPT's optimisation: AdamW (``betas``, ``weight_decay`` on matrices only),
    ``lr`` warmed up linearly over ``warmup`` steps then cosine-decayed to ``min_lr`` at
    ``steps``, gradients clipped to ``grad_clip``; ``batch_size`` random windows a step."""

    steps: int = 2000
    batch_size: int = 12
    lr: float = 1e-3
    min_lr: float = 1e-4
    warmup: int = 100
    weight_decay: float = 0.1
    betas: tuple[float, float] = (0.9, 0.99)
    grad_clip: float = 1.0


def learning_rate(step: int, config: TrainConfig) -> float:
    """The learning rate at ``step`` (0-based): linear warmup, then cosine to ``min_lr``."""
    if step < config.warmup:
        return config.lr * (step + 1) / (config.warmup + 1)
    progress = min(1.0, (step - config.warmup) / max(1, config.steps - config.warmup))
    return config.min_lr + 0.5 * (1 + math.cos(math.pi * progress)) * (config.lr - config.min_lr)


def train_gpt(
    model: Gpt,
    ids: torch.Tensor,
    config: TrainConfig,
    *,
    seed: int = 0,
    log: Callable[[int, float], None] | None = None,
    corrupt: Callable[
        [torch.Tensor, torch.Tensor, torch.Generator], tuple[torch.Tensor, torch.Tensor]
    ]
    | None = None,
) -> dict[str, float]:
    """Train ``model`` on random windows of ``ids [N]`` for ``config.steps`` steps (AdamW,
    weight decay on matrices only, ``learning_rate``'s schedule, gradients clipped); call
    ``log(step, loss)`` every step when given. ``corrupt(x, y, generator) -> (inputs,
    targets)``, each ``[B, n]``, replaces the next-token pair of windows ``x`` and ``y``
    (a masked LM's corruption; targets of -100 are ignored). Returns ``{"train_seconds",
    "cpu_seconds", "tokens"}`` (wall and process CPU time, tokens seen)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": config.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}],
        lr=config.lr, betas=config.betas,
    )  # fmt: skip
    generator = torch.Generator().manual_seed(seed)
    model.train()
    wall, cpu = time.perf_counter(), time.process_time()
    for step in range(config.steps):
        for group in optimizer.param_groups:
            group["lr"] = learning_rate(step, config)
        x, y = random_windows(ids, model.config.block_size, config.batch_size, generator)
        if corrupt is not None:
            x, y = corrupt(x, y, generator)
        x, y = x.to(model.wte.weight.device), y.to(model.wte.weight.device)
        logits = model(x)
        loss = F.cross_entropy(logits.reshape(-1, logits.shape[-1]), y.reshape(-1))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), config.grad_clip)
        optimizer.step()
        if log is not None:
            log(step, loss.item())
    model.eval()
    return {
        "train_seconds": time.perf_counter() - wall,
        "cpu_seconds": time.process_time() - cpu,
        "tokens": float(config.steps * config.batch_size * model.config.block_size),
    }

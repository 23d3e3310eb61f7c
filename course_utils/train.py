"""One small training loop (``fit`` / ``run``): on-device batching, a progress bar,
step/epoch/time budgets, a history, a live plot; ``train_keeping_best`` (weight
averaging, model selection).

Two entry points:

* ``fit(loss_fn, optimizer, data, ...)``: the usual case. ``loss_fn(*batch)`` returns a
  scalar loss (or a dict with a ``"loss"`` key plus anything else worth logging); the
  loop does ``zero_grad``, ``backward``, ``step``.
* ``run(step_fn, data, ...)``: for training that is not one loss and one optimizer (a GAN
  alternates two). ``step_fn(*batch)`` does its own updates and returns a dict of floats.

Both stop at the first budget reached (steps, epochs or seconds) and return a
``History``: per logged step, each value the step function returned.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Mapping, Sequence

import torch

import course_utils.device  # noqa: F401  (importing it sets the CPU thread count)

History = dict[str, list[float]]
StepFn = Callable[..., Mapping[str, float | torch.Tensor]]


def batches(
    *tensors: torch.Tensor,
    batch_size: int,
    shuffle: bool = True,
    generator: torch.Generator | None = None,
    drop_last: bool = False,
) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of mini-batches of ``tensors`` (all ``[N, ...]``), sliced on their device.

    Indexing a tensor that is already on the device costs one gather per batch, where a
    ``DataLoader(TensorDataset)`` collates ``batch_size`` Python tuples (`course bench loop`).

    Raises:
        ValueError: no tensors, tensors of different lengths, or ``batch_size < 1``.
    """
    if not tensors:
        raise ValueError("tensors: expected at least one tensor, got none")
    for i, t in enumerate(tensors):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"tensors[{i}]: expected a torch.Tensor, got {type(t).__name__}")
    n = len(tensors[0])
    if any(len(t) != n for t in tensors):
        lengths = [len(t) for t in tensors]
        raise ValueError(f"tensors: expected equal lengths along dim 0, got {lengths}")
    if not isinstance(batch_size, int) or batch_size < 1:
        raise ValueError(f"batch_size: expected a positive int, got {batch_size!r}")
    device = tensors[0].device
    if shuffle:
        order = torch.randperm(n, generator=generator).to(device)
    else:
        order = torch.arange(n, device=device)
    stop = n - n % batch_size if drop_last and n >= batch_size else n
    for start in range(0, stop, batch_size):
        idx = order[start : start + batch_size]
        yield tuple(t[idx] for t in tensors)


def _as_float(value: float | torch.Tensor) -> float:
    return float(value.detach()) if isinstance(value, torch.Tensor) else float(value)


def run(
    step_fn: StepFn,
    data: torch.Tensor | Sequence[torch.Tensor],
    *,
    batch_size: int = 128,
    steps: int | None = None,
    epochs: int | None = None,
    seconds: float | None = None,
    log_every: int = 1,
    progress: bool = True,
    plot_every: int | None = None,
    seed: int | None = None,
    desc: str = "training",
) -> History:
    """Call ``step_fn(*batch)`` on shuffled mini-batches until a budget is reached.

    Args:
        step_fn: does one update and returns a dict of scalars to log.
        data: one tensor ``[N, ...]`` or a sequence of tensors sharing dim 0.
        batch_size: examples per step.
        steps, epochs, seconds: budgets; the first one reached stops training. At least
            one must be given.
        log_every: record the history every ``log_every`` steps.
        progress: show a ``tqdm.auto`` bar with the latest values.
        plot_every: in a notebook, redraw a live plot of the history every this many
            steps (``None``: no live plot).
        seed: seeds the batch order, so a run is reproducible.

    Returns:
        ``{"step": [...], "time": [...], key: [...]}`` for every key ``step_fn`` returns.
    """
    tensors = (data,) if isinstance(data, torch.Tensor) else tuple(data)
    if steps is None and epochs is None and seconds is None:
        raise ValueError("steps/epochs/seconds: expected at least one budget, got none")
    for arg, value in (("steps", steps), ("epochs", epochs), ("seconds", seconds)):
        if value is not None and value <= 0:
            raise ValueError(f"{arg}: expected a positive budget, got {value!r}")
    if not isinstance(log_every, int) or log_every < 1:
        raise ValueError(f"log_every: expected a positive int, got {log_every!r}")
    generator = torch.Generator().manual_seed(seed) if seed is not None else None

    from tqdm.auto import tqdm

    n_batches = -(-len(tensors[0]) // batch_size)
    step_limits = [b for b in (steps, epochs * n_batches if epochs else None) if b]
    total = min(step_limits) if step_limits else None  # unknown under a time budget
    bar = tqdm(total=total, desc=desc, disable=not progress, leave=False)
    history: History = {"step": [], "time": []}
    start, step, epoch = time.perf_counter(), 0, 0
    done = False
    while not done:
        for batch in batches(*tensors, batch_size=batch_size, generator=generator):
            logs = step_fn(*batch)
            step += 1
            elapsed = time.perf_counter() - start
            if step % log_every == 0:
                history["step"].append(step)
                history["time"].append(elapsed)
                for key, value in logs.items():
                    history.setdefault(key, []).append(_as_float(value))
                bar.set_postfix({k: f"{history[k][-1]:.4g}" for k in logs}, refresh=False)
            bar.update(1)
            if plot_every and step % plot_every == 0:
                _live_plot(history)
            if (steps and step >= steps) or (seconds and elapsed >= seconds):
                done = True
                break
        epoch += 1
        if epochs and epoch >= epochs:
            done = True
    bar.close()
    if plot_every:
        _live_plot(history)
    return history


def fit(
    loss_fn: Callable[..., torch.Tensor | Mapping[str, torch.Tensor]],
    optimizer: torch.optim.Optimizer,
    data: torch.Tensor | Sequence[torch.Tensor],
    **budget_and_options,
) -> History:
    """Minimise ``loss_fn(*batch)`` with ``optimizer``; keyword arguments as in ``run``.

    ``loss_fn`` returns a scalar tensor, or a dict with a scalar ``"loss"`` to minimise and
    other values to log.
    """

    def step_fn(*batch: torch.Tensor) -> Mapping[str, float | torch.Tensor]:
        out = loss_fn(*batch)
        logs = dict(out) if isinstance(out, Mapping) else {"loss": out}
        if "loss" not in logs:
            raise ValueError(f"loss_fn: expected a dict with a 'loss' key, got keys {list(logs)}")
        loss = logs["loss"]
        if not isinstance(loss, torch.Tensor) or loss.ndim != 0:
            shape = tuple(loss.shape) if isinstance(loss, torch.Tensor) else type(loss).__name__
            raise ValueError(f"loss_fn: expected a scalar tensor loss, got {shape}")
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return logs

    return run(step_fn, data, **budget_and_options)


def _live_plot(history: History) -> None:
    """Redraw the training curves in place (notebooks only; a no-op elsewhere)."""
    try:
        from IPython import get_ipython
        from IPython.display import clear_output, display
    except ImportError:
        return
    if get_ipython() is None:
        return
    import matplotlib.pyplot as plt

    from course_utils.viz import plot_history

    fig = plot_history(history)
    clear_output(wait=True)
    display(fig)
    plt.close(fig)


# -- training with weight averaging and model selection (the pretraining recipes') -----


def step_and_average(
    loss: torch.Tensor,
    optimizer: torch.optim.Optimizer,
    model: torch.nn.Module,
    averaged: torch.nn.Module,
    ema_decay: float,
) -> None:
    """One optimizer step on ``loss``, then ``averaged <- ema_decay * averaged + (1 -
    ema_decay) * model``, parameter by parameter."""
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    with torch.no_grad():
        for avg, p in zip(averaged.parameters(), model.parameters(), strict=True):
            avg.lerp_(p, 1 - ema_decay)


def train_keeping_best(
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    loss_fn: Callable[[torch.Tensor], torch.Tensor],
    validate: Callable[[torch.nn.Module], float],
    x_train: torch.Tensor,
    *,
    seconds: float | None,
    epochs: int | None,
    batch_size: int,
    ema_decay: float,
    eval_every: int,
    seed: int,
) -> dict[str, float]:
    """Minimize ``loss_fn(batch)`` in rounds of ``eval_every`` epochs until the time or
    epoch budget is spent, keeping an exponential moving average of the weights
    (``ema_decay = 0``: the weights themselves). After each round ``validate(averaged)``
    scores the average (lower is better); the best one is loaded into ``model`` (eval
    mode). Returns ``{"best_val", "best_epoch", "epochs", "train_seconds"}``."""
    averaged = copy.deepcopy(model)

    def step(x: torch.Tensor) -> dict[str, torch.Tensor]:
        loss = loss_fn(x)
        step_and_average(loss, optimizer, model, averaged, ema_decay)
        return {"loss": loss}

    best, best_state, best_epoch, epoch = float("inf"), None, 0, 0
    start = time.perf_counter()
    while (seconds is None or time.perf_counter() - start < seconds) and (
        epochs is None or epoch < epochs
    ):
        model.train()
        run(step, x_train, batch_size=batch_size, epochs=eval_every, progress=False,
            seed=seed + epoch)  # fmt: skip
        epoch += eval_every
        averaged.eval()
        val = validate(averaged)
        if val < best:
            best, best_state, best_epoch = val, copy.deepcopy(averaged.state_dict()), epoch
    model.load_state_dict(best_state)
    model.eval()
    return {
        "best_val": best,
        "best_epoch": best_epoch,
        "epochs": epoch,
        "train_seconds": time.perf_counter() - start,
    }

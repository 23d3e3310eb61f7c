from types import SimpleNamespace

import pytest
import torch

from course_utils import train


def test_batches_cover_every_example_once_per_epoch():
    x = torch.arange(10).float()
    y = torch.arange(10) * 2
    seen = []
    for bx, by in train.batches(x, y, batch_size=3, generator=torch.Generator().manual_seed(0)):
        assert torch.equal(by, bx.long() * 2)  # rows stay aligned across tensors
        seen += bx.tolist()
    assert sorted(seen) == list(range(10))
    sizes = [len(b) for (b,) in train.batches(x, batch_size=3, shuffle=False)]
    assert sizes == [3, 3, 3, 1]
    assert [len(b) for (b,) in train.batches(x, batch_size=3, drop_last=True)] == [3, 3, 3]


def test_batches_bad_input():
    with pytest.raises(ValueError, match="equal lengths"):
        list(train.batches(torch.zeros(4), torch.zeros(5), batch_size=2))
    with pytest.raises(ValueError, match="batch_size"):
        list(train.batches(torch.zeros(4), batch_size=0))
    with pytest.raises(TypeError, match=r"tensors\[0\]"):
        list(train.batches([1, 2, 3], batch_size=2))
    with pytest.raises(ValueError, match="at least one"):
        list(train.batches(batch_size=2))


def _regression_problem():
    torch.manual_seed(0)
    x = torch.randn(256, 3)
    w_true = torch.tensor([[1.0], [-2.0], [0.5]])
    return x, x @ w_true, w_true


def test_fit_learns_linear_regression_and_logs_history():
    x, y, w_true = _regression_problem()
    model = torch.nn.Linear(3, 1, bias=False)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    hist = train.fit(
        lambda xb, yb: {"loss": (model(xb) - yb).square().mean(), "extra": torch.tensor(1.0)},
        opt, (x, y), batch_size=32, epochs=20, seed=0, progress=False,
    )  # fmt: skip
    assert torch.allclose(model.weight.T, w_true, atol=1e-3)
    assert hist["step"] == list(range(1, 20 * 8 + 1))
    assert hist["loss"][-1] < 1e-5 < hist["loss"][0]
    assert set(hist) == {"step", "time", "loss", "extra"}
    assert all(isinstance(v, float) for v in hist["loss"])


def test_budgets_steps_epochs_and_seconds():
    x, y, _ = _regression_problem()
    model = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.01)

    def loss_fn(xb, yb):
        return (model(xb) - yb).square().mean()

    kwargs = dict(batch_size=32, progress=False)
    assert train.fit(loss_fn, opt, (x, y), steps=5, **kwargs)["step"][-1] == 5
    assert train.fit(loss_fn, opt, (x, y), epochs=2, **kwargs)["step"][-1] == 16
    assert train.fit(loss_fn, opt, (x, y), steps=3, epochs=2, **kwargs)["step"][-1] == 3
    hist = train.fit(loss_fn, opt, (x, y), seconds=0.2, **kwargs)
    assert 0.2 <= hist["time"][-1] < 5 and len(hist["step"]) > 1
    assert len(train.fit(loss_fn, opt, (x, y), steps=10, log_every=5, **kwargs)["step"]) == 2


def test_same_seed_same_run():
    x, y, _ = _regression_problem()

    def run_once():
        torch.manual_seed(1)
        model = torch.nn.Linear(3, 1)
        opt = torch.optim.SGD(model.parameters(), lr=0.05)
        return train.fit(
            lambda a, b: (model(a) - b).square().mean(), opt, (x, y),
            batch_size=16, epochs=2, seed=4, progress=False,
        )["loss"]  # fmt: skip

    assert run_once() == run_once()


def test_run_with_custom_step_function():
    calls = []
    hist = train.run(lambda b: calls.append(len(b)) or {"n": len(b)}, torch.zeros(10, 2),
                     batch_size=4, epochs=1, progress=False)  # fmt: skip
    assert calls == [4, 4, 2] and hist["n"] == [4.0, 4.0, 2.0]


def test_bad_budgets_and_losses():
    model = torch.nn.Linear(2, 1)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    x = torch.zeros(8, 2)
    with pytest.raises(ValueError, match="at least one budget"):
        train.fit(lambda b: model(b).sum(), opt, x)
    with pytest.raises(ValueError, match="steps: expected a positive budget"):
        train.fit(lambda b: model(b).sum(), opt, x, steps=0)
    with pytest.raises(ValueError, match="scalar tensor loss"):
        train.fit(lambda b: model(b), opt, x, steps=1, progress=False)
    with pytest.raises(ValueError, match="'loss' key"):
        train.fit(lambda b: {"l": model(b).sum()}, opt, x, steps=1, progress=False)


def test_live_plot_redraws_in_ipython_and_is_a_no_op_elsewhere(monkeypatch):
    import IPython
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", lambda fig: shown.append(fig))
    monkeypatch.setattr(IPython.display, "clear_output", lambda wait: None)
    step = lambda b: {"loss": float(b.sum())}  # noqa: E731
    train.run(step, torch.ones(8, 1), batch_size=2, steps=4, plot_every=2, progress=False)
    assert shown == []  # not in IPython: nothing drawn
    shell = SimpleNamespace(events=SimpleNamespace(register=lambda *args: None))
    monkeypatch.setattr(IPython, "get_ipython", lambda: shell)
    train.run(step, torch.ones(8, 1), batch_size=2, steps=4, plot_every=2, progress=False)
    assert len(shown) == 3  # at steps 2 and 4, and once at the end
    assert shown[-1].axes[0].get_title() == "Training curves"

import dataclasses

import pytest

from course_utils import checkpoints, pretrain, registry
from course_utils.metrics import MnistClassifier


def test_classifier_recipe_writes_a_loadable_checkpoint_with_its_metrics(tmp_path, capsys):
    out = tmp_path / "classifier.pt"
    pretrain.main(["classifier", "--out", str(out), "--epochs", "1"])
    printed = capsys.readouterr().out
    state, meta = checkpoints.load(out)
    assert meta["name"] == "classifier" and set(meta["metrics"]) == {
        "test_accuracy", "fid_train_vs_test", "train_seconds"
    }  # fmt: skip
    assert 0.5 < meta["metrics"]["test_accuracy"] <= 1  # one epoch already learns digits
    assert f"test_accuracy: {meta['metrics']['test_accuracy']:.4f}" in printed
    MnistClassifier(**meta["config"]).load_state_dict(state)


def test_unknown_recipe_is_an_argparse_error():
    with pytest.raises(SystemExit):
        pretrain.main(["gpt"])


def test_an_out_path_that_cannot_be_written_is_refused_before_training(tmp_path, capsys):
    for bad in (tmp_path, tmp_path / "missing" / "x.pt"):  # a folder; a file in no folder
        with pytest.raises(SystemExit):
            pretrain.main(["classifier", "--out", str(bad)])
        assert "--out: expected a file path in an existing folder" in capsys.readouterr().err


def test_vae_group_writes_both_mnist_vaes_and_refuses_one_out_path(tmp_path, capsys, monkeypatch):
    assert registry.groups()["vae"] == ["vae_mnist", "vae_mnist_2d"]
    with pytest.raises(SystemExit):
        pretrain.main(["vae", "--out", str(tmp_path / "x.pt")])
    assert "--out" in capsys.readouterr().err
    written = []
    monkeypatch.setattr(checkpoints, "WEIGHTS_DIR", tmp_path)

    def record(out, **options):
        written.append(out.name)
        return {}

    for name, recipe in registry.recipes().items():
        if recipe.group == "vae":
            monkeypatch.setitem(registry._RECIPES, name, dataclasses.replace(recipe, make=record))
    pretrain.main(["vae"])
    assert written == ["vae_mnist.pt", "vae_mnist_2d.pt"]


def test_train_vae_keeps_the_best_validation_weights(tmp_path):
    import torch

    from course_utils import data, vae

    torch.manual_seed(0)
    x = (data.digits("all", device="cpu")[0] >= 8).float()
    model = vae.MlpVae(data_dim=64, hidden=32, latent_dim=2)
    before = vae.negative_elbo_estimate(model, x[1000:1350]).mean().item()
    info = vae.train_vae(model, x[:1000], x[1000:1350], epochs=20, eval_every=5, ema_decay=0.9)
    assert info["epochs"] == 20 and info["best_epoch"] in (5, 10, 15, 20)
    assert not model.training
    after = vae.negative_elbo_estimate(model, x[1000:1350]).mean().item()
    assert after < before and after == pytest.approx(info["best_val_neg_elbo"], abs=1.0)


def test_train_flow_keeps_the_best_validation_weights_and_the_bench_prints_them(capsys):
    import torch

    from course_utils import data, flows

    torch.manual_seed(0)
    x, _ = data.digits("all", device="cpu")
    flow = flows.realnvp_digits(num_blocks=1, hidden=32)
    info = flows.train_flow(flow, x[:1000], x[1000:1350], epochs=10, eval_every=5)
    assert info["epochs"] == 10 and info["best_epoch"] in (5, 10) and not flow.training
    assert flows.discrete_nll_bound(flow, x[1000:1350], draws=4).mean().item() == pytest.approx(
        info["best_val_nll"], abs=2.0
    )
    results = flows.bench_flow_digits(seconds=0.5)
    assert results["parameters"] > 0 and results["test_nll"] > 0
    assert "test NLL bound" in capsys.readouterr().out


def test_train_ddpm_learns_and_drops_labels_for_guidance():
    import torch

    from course_utils import data, diffusion

    x, y = data.mnist("train", device="cpu")
    x, y = x[:256], y[:256]
    alpha_bar = diffusion.alpha_bar_of(diffusion.linear_beta_schedule(100))
    labels_before = {}
    for p_uncond in (0.0, 1.0):
        torch.manual_seed(0)
        model = diffusion.DiffusionUnet(width=8, mults=(1, 2), num_classes=10)
        labels_before[p_uncond] = model.label.weight.detach().clone()
        info = diffusion.train_ddpm(model, x, y, alpha_bar, epochs=3, batch_size=32, lr=2e-3,
                                   ema_decay=0.0, p_uncond=p_uncond)  # fmt: skip
        assert not model.training and info["epochs"] == 3
        # the zero-initialized head starts at L_simple = E||eps||^2 / D = 1
        assert info["final_loss"] < 0.9
        changed = (model.label.weight != labels_before[p_uncond]).any(dim=1)
        if p_uncond == 0.0:  # the "no label" row never trains
            assert changed[:10].all() and not changed[10]
        else:  # every label is dropped: only the "no label" row trains
            assert not changed[:10].any() and changed[10]

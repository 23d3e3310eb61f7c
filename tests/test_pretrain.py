import pytest

from course_utils import checkpoints, pretrain
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


def test_shipped_classifier_metadata_reports_what_the_readme_says():
    meta = checkpoints.load_pretrained("classifier").meta
    assert meta["metrics"]["test_accuracy"] == pytest.approx(0.977, abs=5e-4)
    assert meta["metrics"]["fid_train_vs_test"] == pytest.approx(3.22, abs=5e-3)


def test_unknown_recipe_is_an_argparse_error():
    with pytest.raises(SystemExit):
        pretrain.main(["gpt"])

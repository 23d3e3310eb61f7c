"""Lecture 07's package: the GPT (attention against the exercise's function, the key/value
cache against recomputation, the whole-split loss, the attention maps, the bidirectional
variant), sampling filters, tokenizers, the lecture's figures and the shipped GPT's recipe."""

from __future__ import annotations

import math
from collections import Counter

import matplotlib.pyplot as plt
import pytest
import torch
import torch.nn.functional as F

from course_utils.language_models import figures, functions
from course_utils.language_models.gpt import (
    Gpt,
    GptConfig,
    TrainConfig,
    attention_maps,
    filter_logits,
    generate,
    learning_rate,
    split_loss,
    train_gpt,
)
from course_utils.language_models.tokenizers import Bpe, CharTokenizer, pieces, train_bpe

SMALL = GptConfig(vocab_size=11, block_size=8, n_layer=2, n_head=2, n_embd=16)


def _model(config: GptConfig = SMALL, seed: int = 0) -> Gpt:
    torch.manual_seed(seed)
    return Gpt.from_config(config).eval()


def test_attention_is_the_exercise_function():
    """The block's attention computes ``multi_head_attention`` with ``w_qkv = qkv.weight.T``
    and ``w_out = proj.weight.T`` (no biases), causal: the package and the exercise agree."""
    attn = _model().blocks[0].attn
    x = torch.randn(3, 5, 16, generator=torch.Generator().manual_seed(1))
    ours, _ = attn(x)
    mask = torch.ones(5, 5, dtype=torch.bool).tril()
    theirs = functions.multi_head_attention(x, attn.qkv.weight.T, attn.proj.weight.T, 2, mask)
    torch.testing.assert_close(ours, theirs)


def test_the_model_is_causal_and_tied():
    model = _model()
    idx = torch.randint(11, (2, 8), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, 5:] = (changed[:, 5:] + 1) % 11
    torch.testing.assert_close(model(idx)[:, :5], model(changed)[:, :5])
    assert not torch.allclose(model(idx)[:, 5:], model(changed)[:, 5:])
    assert model.lm_head.weight is model.wte.weight
    assert model.parameter_count() == sum(p.numel() for p in set(model.parameters()))


def test_the_cache_gives_the_logits_of_recomputation_and_the_same_text():
    model = _model()
    idx = torch.randint(11, (2, 3), generator=torch.Generator().manual_seed(3))
    logits, cache = model.forward_cached(idx)
    step, _ = model.forward_cached(torch.tensor([[4], [7]]), cache)
    full = model(torch.cat([idx, torch.tensor([[4], [7]])], dim=1))
    torch.testing.assert_close(step[:, -1], full[:, -1])
    # past the context (8) the cache is rebuilt from the last block: still the same tokens
    cached = generate(model, idx, 12, greedy=True)
    recomputed = generate(model, idx, 12, greedy=True, use_cache=False)
    assert cached.shape == (2, 15) and torch.equal(cached, recomputed)
    with pytest.raises(ValueError, match="block_size=8"):
        model.forward_cached(torch.zeros(1, 9, dtype=torch.long))


def test_filters_keep_what_they_promise():
    logits = torch.tensor([[2.0, 1.0, 0.0, -1.0]])
    assert torch.isinf(filter_logits(logits, top_k=2)[0, 2:]).all()
    torch.testing.assert_close(filter_logits(logits, temperature=2.0), logits / 2)
    nucleus = filter_logits(logits, top_p=0.7)  # probs .64 .24 .09 .03: the first two
    assert torch.isfinite(nucleus[0, :2]).all() and torch.isinf(nucleus[0, 2:]).all()
    with pytest.raises(ValueError, match="temperature"):
        filter_logits(logits, temperature=0.0)


def test_split_loss_predicts_every_token_but_the_first_once():
    """A model that ignores its input and predicts uniformly scores log V; the split is
    covered by windows of block_size + 1 overlapping by one."""
    model = _model()
    with torch.no_grad():
        for p in model.parameters():
            p.zero_()
    ids = torch.randint(11, (50,), generator=torch.Generator().manual_seed(4))
    assert split_loss(model, ids, batch_size=3) == pytest.approx(math.log(11), rel=1e-6)
    trained = _model(seed=5)
    by_hand = []
    for start in range(0, 49, 8):
        window = ids[start : start + 9][None]
        logits = trained(window[:, :-1])
        by_hand.append(F.cross_entropy(logits[0], window[0, 1:], reduction="sum"))
    assert split_loss(trained, ids, batch_size=2) == pytest.approx(sum(by_hand).item() / 49)


def test_learning_rate_warms_up_then_decays_to_its_floor():
    config = TrainConfig(steps=1000, lr=1e-3, min_lr=1e-4, warmup=100)
    assert learning_rate(0, config) == pytest.approx(1e-3 / 101)
    assert learning_rate(100, config) == pytest.approx(1e-3)
    assert learning_rate(550, config) == pytest.approx(5.5e-4)
    assert learning_rate(1000, config) == pytest.approx(1e-4)


def test_tokenizers_round_trip_and_bpe_compresses():
    text = "to be or not to be, that is the question\nto be\n"
    chars = CharTokenizer.from_text(text)
    assert chars.decode(chars.encode(text)) == text and chars.vocab_size == len(set(text))
    with pytest.raises(ValueError, match="outside the vocabulary"):
        chars.encode("Z")
    assert pieces("to be\nor") == ["to", " be", "\n", "or"]
    bpe = train_bpe(text, 10)
    assert isinstance(bpe, Bpe) and bpe.vocab_size == chars.vocab_size + 10
    ids = bpe.encode(text)
    assert bpe.decode(ids) == text and len(ids) < len(text)
    counts = Counter()  # the first merge: the most frequent pair inside the pieces
    for piece in pieces(text):
        counts.update(zip(piece, piece[1:], strict=False))
    assert bpe.token_text(chars.vocab_size) == "".join(counts.most_common(1)[0][0])


def test_the_benchmark_trains_each_recipe_and_saves_its_rows(monkeypatch, tmp_path, capsys):
    from course_utils.language_models import bench

    tiny = (GptConfig(block_size=16, n_layer=1, n_head=2, n_embd=16), TrainConfig(steps=3))
    monkeypatch.setattr(bench, "RECIPES", {"a": tiny, "b": tiny})
    monkeypatch.setattr(bench, "split_loss", lambda model, ids: 4.0)  # not the whole split
    out = tmp_path / "gpt.json"
    rows = bench.bench_gpt_shakespeare(save=str(out))
    assert [r["recipe"] for r in rows] == ["a", "b"] and rows[0]["characters"] == 3 * 12 * 16
    assert "val nats/char" in capsys.readouterr().out
    bench.bench_gpt_shakespeare(save=str(out), methods="b")  # replaces b's row, keeps a's
    assert [r["recipe"] for r in bench.load_gpt_bench(str(out))["rows"]] == ["a", "b"]
    with pytest.raises(ValueError, match="methods"):
        bench.bench_gpt_shakespeare(methods="c")
    assert torch.get_num_threads() == 1


def test_attention_maps_are_the_weights_the_blocks_use():
    """Each layer's maps, applied to that block's values and mixed by ``proj``, give the
    block's attention output: the right scale, mask, head order and block inputs."""
    model = _model()
    idx = torch.randint(11, (2, 7), generator=torch.Generator().manual_seed(4))
    maps = attention_maps(model, idx)  # [2, layers, heads, 7, 7]
    assert maps.shape == (2, 2, 2, 7, 7)
    torch.testing.assert_close(maps.sum(-1), torch.ones(2, 2, 2, 7))
    assert (maps.triu(diagonal=1) == 0).all()
    x = model.wte(idx) + model.wpe(torch.arange(7))
    for layer, block in enumerate(model.blocks):
        h = block.ln_1(x)
        v = block.attn.qkv(h).split(16, dim=-1)[2].view(2, 7, 2, 8).transpose(1, 2)
        mixed = (maps[:, layer] @ v).transpose(1, 2).reshape(2, 7, 16)
        torch.testing.assert_close(block.attn.proj(mixed), block.attn(h)[0])
        x, _ = block(x)


def test_a_bidirectional_model_sees_the_future():
    """``causal=False`` (BERT): a later token changes earlier outputs, and its maps are not
    triangular."""
    model = _model(GptConfig(vocab_size=11, block_size=8, n_layer=1, n_head=2, n_embd=16,
                             causal=False))  # fmt: skip
    idx = torch.randint(11, (1, 8), generator=torch.Generator().manual_seed(2))
    changed = idx.clone()
    changed[:, -1] = (changed[:, -1] + 1) % 11
    assert not torch.allclose(model(idx)[:, 0], model(changed)[:, 0])
    future = torch.ones(8, 8, dtype=torch.bool).triu(diagonal=1)
    assert (attention_maps(model, idx)[..., future] > 0).all()


def test_lecture_figures_are_readable_and_refuse_bad_input():
    from course_utils.viz import MAX_WIDTH_PX

    tokens = ["To", " be", ",", " or", "\n"] * 20
    maps = attention_maps(_model(), torch.randint(11, (1, 6)))[0]
    for fig in (
        figures.tokens_figure(tokens, "after 3 merges"),
        figures.text_figure("ROMEO:\n" + "x" * 300, "T 1.0"),
        figures.attention_figure(maps, "ab cd\n", 1),
    ):
        assert fig.get_size_inches()[0] * fig.dpi <= MAX_WIDTH_PX
        assert fig.axes[0].get_title("left") or fig.axes[0].get_title() or fig._suptitle
        plt.close(fig)
    with pytest.raises(ValueError, match="tokens"):
        figures.tokens_figure([], "empty")
    with pytest.raises(ValueError, match="maps"):
        figures.attention_figure(maps, "too long a text", 0)
    with pytest.raises(ValueError, match="layer"):
        figures.attention_figure(maps, "ab cd\n", 2)


def test_the_gpt_recipe_keeps_the_best_probe(monkeypatch):
    """``train_gpt_shakespeare`` keeps the weights of the lowest probe loss, not the last,
    and reports the characters those weights saw."""
    from course_utils.language_models import shakespeare

    tiny = (GptConfig(vocab_size=65, block_size=8, n_layer=1, n_head=2, n_embd=16),
            TrainConfig(steps=6, batch_size=2))  # fmt: skip
    monkeypatch.setattr(shakespeare, "GPT_SHAKESPEARE", tiny)
    monkeypatch.setattr(shakespeare, "EVAL_EVERY", 2)
    probes = iter([3.0, 2.0, 2.5])  # the probes after steps 2, 4, 6; then the whole split
    kept = {}

    def fake_loss(model, ids):
        loss = next(probes, None)
        if loss is None:  # the final, whole-split loss: of the kept weights
            kept["state"] = {k: v.clone() for k, v in model.state_dict().items()}
            return 1.0
        kept[loss] = {k: v.clone() for k, v in model.state_dict().items()}
        return loss

    monkeypatch.setattr(shakespeare, "split_loss", fake_loss)
    model, results = shakespeare.train_gpt_shakespeare()
    assert results["best_step"] == 4 and results["probe_loss"] == 2.0
    assert results["characters"] == 4 * 2 * 8 and results["val_loss"] == 1.0
    for name, value in kept["state"].items():
        torch.testing.assert_close(value, kept[2.0][name])


def test_train_gpt_learns_what_its_corrupt_hook_asks():
    """``corrupt`` replaces the next-token pair: targets that are all token 3 teach the
    model to say 3 everywhere (ignoring the hook, it would learn the next token)."""
    model = _model().train()
    ids = torch.arange(200) % 11
    shapes = []

    def corrupt(x, y, generator):
        shapes.append(tuple(x.shape))
        assert isinstance(generator, torch.Generator)
        return x, torch.full_like(y, 3)

    config = TrainConfig(steps=30, batch_size=4, lr=1e-2, min_lr=1e-2, warmup=0)
    train_gpt(model, ids, config, corrupt=corrupt)
    assert shapes == [(4, 8)] * 30
    with torch.no_grad():
        assert (model(ids[:8][None]).argmax(-1) == 3).all()


def test_the_masked_lm_recipe_masks_every_batch_at_a_rate_from_its_range(monkeypatch):
    """``train_bert_shakespeare`` corrupts each batch with ``mask_tokens`` at a rate drawn
    from [MIN_MASK_RATE, 1], the [MASK] id being the last of the vocabulary."""
    from course_utils.language_models import shakespeare

    tiny = (GptConfig(vocab_size=66, block_size=8, n_layer=1, n_head=2, n_embd=16, causal=False),
            TrainConfig(steps=5, batch_size=2))  # fmt: skip
    monkeypatch.setattr(shakespeare, "BERT_SHAKESPEARE", tiny)
    calls = []

    def recording(ids, mask_id, vocab_size, p, generator):
        calls.append((tuple(ids.shape), mask_id, p))
        return functions.mask_tokens(ids, mask_id, vocab_size, p=p, generator=generator)

    monkeypatch.setattr(shakespeare, "mask_tokens", recording)
    model, results = shakespeare.train_bert_shakespeare()
    training = calls[:5]  # then masked_lm_accuracy's one call, at BERT's 15%
    assert [shape for shape, _, _ in training] == [(2, 8)] * 5
    assert all(mask_id == 65 and shakespeare.MIN_MASK_RATE <= p <= 1 for _, mask_id, p in training)
    assert len({p for _, _, p in training}) == 5 and calls[5][2] == 0.15
    assert 0 <= results["mlm_accuracy"] <= 1

import math

import pytest
import torch

from course_utils import grading
from course_utils.grading import notebooks, plugin, report


def _message(fn, *args, **kwargs) -> str:
    with pytest.raises(AssertionError) as info:
        fn(*args, **kwargs)
    return str(info.value)


def test_check_close_passes_on_match_and_tolerance():
    grading.check_close(torch.tensor(1.0), 1.0, "x")
    grading.check_close(1.00001, 1.0, "x")
    grading.check_close(torch.tensor([1.0, math.inf]), torch.tensor([1.0, math.inf]), "x")
    grading.check_close(torch.tensor([0.5]), 0.5, "x")  # one element matches a number


def test_check_close_messages_teach():
    msg = _message(grading.check_close, torch.tensor(-1.0), 1.0, "kl", hint="generic")
    assert msg.startswith("kl: expected 1, got -1") and "Likely mistake: generic" in msg
    msg = _message(grading.check_close, torch.tensor(-1.0), 1.0, "kl", hint="generic",
                   mistakes={"sign flipped": -1.0, "other": 3.0})  # fmt: skip
    assert msg.endswith("Likely mistake: sign flipped")
    assert "NaN" in _message(grading.check_close, torch.tensor(math.nan), 1.0, "kl")
    assert "infinities differ" in _message(grading.check_close, torch.tensor(math.inf), 1.0, "kl")
    assert "expected shape (3,), got (2,)" in _message(
        grading.check_close, torch.zeros(2), torch.zeros(3), "v"
    )
    assert "expected a tensor or a number, got str" in _message(grading.check_close, "1", 1.0, "v")


def test_shape_tensor_finite_grad_and_plain_checks():
    assert "expected shape (2,), got (3,)" in _message(
        grading.check_shape, torch.zeros(3), (2,), "z"
    )
    assert "expected a torch.Tensor, got list" in _message(grading.check_tensor, [1], "z")
    assert "1 NaN/inf" in _message(grading.check_finite, torch.tensor([1.0, math.nan]), "z")
    leaf = torch.zeros(2, requires_grad=True)
    (leaf.detach() * 2).sum()  # no graph to leaf
    assert "non-zero gradient" in _message(grading.check_grad, leaf, "mu")
    (leaf * 2).sum().backward()
    grading.check_grad(leaf, "mu")
    grading.check(True, "never shown")
    assert _message(grading.check, False, "what went wrong", hint="why") == (
        "what went wrong\nLikely mistake: why"
    )


@pytest.mark.parametrize(
    "source, expected",
    [
        ("# TEST kl_divergence (2 points)\ncheck()", ("kl_divergence", 2)),
        ("\n# TEST elbo (1 point)", ("elbo", 1)),
        ("# TEST kl 2 points", None),
        ("check()\n# TEST kl (2 points)", None),
    ],
)
def test_parse_test_header(source, expected):
    assert notebooks.parse_test_header(source) == expected


def test_failure_hint_prefers_cell_error_and_adds_advice():
    outs = [{"output_type": "stream", "text": "hi"},
            {"output_type": "error", "ename": "NotImplementedError", "evalue": ""}]  # fmt: skip
    assert plugin.failure_hint(outs, "fallback").startswith("NotImplementedError (not implemented")
    outs = [{"output_type": "error", "ename": "AssertionError", "evalue": "kl: expected 1, got 2"}]
    assert plugin.failure_hint(outs, "fallback") == "AssertionError: kl: expected 1, got 2"
    timeout = plugin.failure_hint([{"ename": "KeyboardInterrupt"}], "Timeout of 5 seconds\nmore")
    assert timeout.startswith("Timeout of 5 seconds (")
    assert plugin.failure_hint(None, "Cell failed\ndetails") == "Cell failed"


def test_format_score_table_wraps_hints_and_totals():
    rows = [
        {"question": "kl", "points": 2, "earned": 2, "passed": True, "hint": ""},
        {"question": "js_divergence", "points": 3, "earned": 0, "passed": False, "hint": "x " * 80},
    ]
    lines = report.format_score_table(rows, hint_width=40)
    assert lines[0].split() == ["question", "points", "earned", "hint"]
    assert lines[1].split() == ["kl", "2", "2"]
    assert lines[2].split()[:3] == ["js_divergence", "0", "3"][:1] + ["3", "0"]
    assert len(lines) > 4 and lines[-1].split() == ["total", "5", "2"]


def test_student_text_is_made_safe_for_terminals_and_spreadsheets():
    assert report.clean("a\x1b[31mred\x1b[0m\r\nb\x07") == "ared b"
    assert report.clean("x" * 700).endswith("...") and len(report.clean("x" * 700)) == 600
    assert [report.csv_cell(v) for v in ("=1+2", "+A1", "-cmd", "@SUM(A1)", "-2.5", "alice")] == [
        "'=1+2", "'+A1", "'-cmd", "'@SUM(A1)", "-2.5", "alice",
    ]  # fmt: skip

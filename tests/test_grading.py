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
    assert report.clean("paid\u202e8/8\u202c \udcff!") == "paid8/8 !"  # bidi, lone surrogate
    assert report.clean("x" * 700).endswith("...") and len(report.clean("x" * 700)) == 600
    assert [report.csv_cell(v) for v in ("=1+2", "+A1", "-cmd", "@SUM(A1)", "-2.5", "alice")] == [
        "'=1+2", "'+A1", "'-cmd", "'@SUM(A1)", "-2.5", "alice",
    ]  # fmt: skip


@pytest.mark.timeout(60)
def test_the_judge_reads_only_small_regular_records(tmp_path):
    """What a sandbox leaves in its output folder is the student's: the judge must not
    follow a link out of it, block on a FIFO, or expand a few bytes into gigabytes."""
    import os

    from course_utils.grading import worker

    elsewhere = tmp_path / "elsewhere.pt"  # a record the judge could read, the sandbox not
    torch.save({"records": [(0, torch.tensor(1.0))], "error": None}, elsewhere)
    assert worker.load_record(elsewhere)["records"][0][1] == 1.0
    out = tmp_path / "out"
    out.mkdir()
    (out / "0.pt").symlink_to(elsewhere)
    os.mkfifo(out / "1.pt")
    assert worker.load_record(out / "0.pt") is None
    assert worker.load_record(out / "1.pt") is None  # and returns at once
    assert worker.load_record(out / "2.pt") is None  # missing
    huge = torch.zeros(1).expand(2**31)  # 4 bytes of storage, 8 GiB once cloned
    shared: list = [0.0]
    for _ in range(6):
        shared = [shared] * 1000  # a few kilobytes pickled, 10**18 values expanded
    for n, value in enumerate((huge, shared), start=3):
        torch.save({"records": [(0, value)], "error": None}, out / f"{n}.pt")
        assert (out / f"{n}.pt").stat().st_size < 2**20
        with pytest.raises(ValueError, match="limits"):
            worker.load_record(out / f"{n}.pt")


def test_a_hidden_check_fails_without_showing_its_values():
    from course_utils.grading.worker import Judge

    sites = [(0, "check_close", (torch.tensor([0.123456, 0.654321]), "kl(p, q)"), {"hint": "h"})]
    got = {"records": [(0, torch.tensor([9.0, 9.0]))], "error": None}
    visible = Judge._judge_part(sites, {}, got)
    hidden = Judge._judge_part(sites, {}, got, hidden=True)
    assert "0.12345" in visible and "9.0" in visible
    assert (
        hidden
        == "kl(p, q): wrong on the hidden test's inputs (values not shown). Likely mistake: h"
    )


TINY_SET = '''# %%
import torch
from course_utils.grading import check_close

# %%
def f(x):
    """2 x."""
    ### BEGIN SOLUTION
    return 2 * x
    ### END SOLUTION

# %% tags=["graded"] points=1
# TEST f (1 point)
check_close(f(torch.tensor(1.0)), 2.0, "f(1)", hint="twice x", mistakes={"not x + 2": 3.0})
check_close(f(torch.tensor(3.0)) - f(torch.tensor(3.0)), 0.0, "f(3) - f(3)")

# %% tags=["hidden"]
# HIDDEN TEST f
from course_utils.grading import hidden_generator, solution
x = torch.randn(3, generator=hidden_generator())
check_close(f(x), solution.f(x), "f on random inputs")
'''


def test_a_variant_is_graded_both_ways_from_the_solution_run():
    from course_utils.grading import variants

    tiny = variants.ExerciseSet(TINY_SET, timeout=2)
    assert tiny.functions == ["f"] and tiny.reference["f"].passed and tiny.reference["f"].agree
    wrong = tiny.grade("f", "return x + 2")["f"]
    assert not wrong.passed and not wrong.class_passed and "not x + 2" in wrong.class_hint
    only_one = tiny.grade("f", "return 2 * x if x.numel() == 1 else x")["f"]  # visible inputs only
    assert not only_one.passed and "hidden test's inputs" in only_one.class_hint
    assert "f on random inputs" in only_one.hint and "expected tensor" in only_one.hint
    hangs = tiny.grade("f", "while True:\n    pass")["f"]
    assert not hangs.passed and "Timeout" in hangs.hint and "Timeout" in hangs.class_hint
    broken = tiny.grade("f", "return (x +* 2")["f"]
    assert not broken.passed and "NameError" in broken.hint and "NameError" in broken.class_hint
    with pytest.raises(variants.VariantError, match="function: expected one of f, got 'g'"):
        tiny.grade("g", "return x")


def test_the_two_graders_disagree_when_an_expected_value_calls_the_exercise():
    """Such a cell compares the student with the solution in class grading and with
    itself in self-grading: the agreement check sees it (course build refuses it)."""
    from course_utils.grading import variants

    script = TINY_SET.replace(
        "check_close(f(torch.tensor(3.0)) - f(torch.tensor(3.0)), 0.0,",
        "check_close(f(torch.tensor(3.0)), f(torch.tensor(3.0)),",
    )
    v = variants.ExerciseSet(script).grade(
        "f", "return x + 2 if x.numel() == 1 and x == 3 else 2 * x"
    )["f"]
    assert v.passed and not v.class_passed and not v.agree


def test_the_judge_caps_an_error_message_as_it_loads_it(tmp_path):
    """A record is the student's: its error text may be as large as the record limit."""
    from course_utils.grading import worker

    path = tmp_path / "0.pt"
    worker.save_record(path, [], ("ValueError", "x" * 10_000_000))
    error = worker.load_record(path)["error"]
    assert error[0] == "ValueError" and len(error[1]) == worker.MAX_ERROR_CHARS


def test_names_that_print_alike_get_distinct_labels():
    from course_utils.grading.classgrade import student_labels

    names = ["alice", "alice\u200b", "jos\u00e9", "jose\u0301", "bob\n", "\uff41lice"]
    labels = student_labels(names)
    assert labels["alice"] == "alice" and labels["alice\u200b"] == "alice<U+200B>"
    assert (labels["jose\u0301"], labels["jos\u00e9"]) == ("jose\u0301", "jos\u00e9 (2)")  # sorted
    assert labels["bob\n"] == "bob<U+000A>"
    assert labels["\uff41lice"] == "\uff41lice (2)"  # a full-width a: alice under NFKC
    assert len(set(labels.values())) == len(names)

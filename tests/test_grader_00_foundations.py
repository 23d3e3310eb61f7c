"""Exercise set 00: each known mistake loses exactly its question's points with a hint that
names the mistake, alternative correct implementations pass, a hanging cell times out, and
bad files get a one-line error. Everything runs through `course grade`'s own code path.
(Unsolved = 0 and solution = full marks hold for every set: test_exercise_sets.py.)"""

from __future__ import annotations

import re

import graderlib
import pytest

from course_utils import cli
from course_utils.grading import notebooks

SOLUTION = "solutions/00_foundations.py"
POINTS = {"kl_divergence": 2, "gaussian_kl": 2, "monte_carlo_kl": 2, "js_divergence": 2}

# question -> [(mistake, replacement body, words the hint must contain)]
WRONG = {
    "kl_divergence": [
        ("sign flipped", "return (torch.special.xlogy(p, q) - torch.special.xlogy(p, p)).sum(-1)",
         "sign is flipped"),
        ("log base 2", "return ((torch.special.xlogy(p, p) - torch.special.xlogy(p, q)) / math.log(2)).sum(-1)",
         "natural log"),
        ("0 log 0 gives NaN", "return (p * (p / q).log()).sum(-1)", "0 log 0 = 0"),
        ("arguments swapped", "return (torch.special.xlogy(q, q) - torch.special.xlogy(q, p)).sum(-1)",
         "arguments are swapped"),
        ("sums the batch too", "return (torch.special.xlogy(p, p) - torch.special.xlogy(p, q)).sum()",
         "last dimension only"),
    ],
    "gaussian_kl": [
        ("missing 1/2 on the quadratic term",
         "return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / sigma_q**2 - 0.5",
         "factor 1/2 is missing"),
        ("missing -1/2",
         "return torch.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2)",
         "constant -1/2 is missing"),
        ("variances in the log",
         "return torch.log(sigma_q**2 / sigma_p**2) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5",
         "not variances"),
        ("log ratio upside down",
         "return torch.log(sigma_p / sigma_q) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5",
         "not log(sigma_p / sigma_q)"),
    ],
    "monte_carlo_kl": [
        ("samples from q", """
            x = mu_q + sigma_q * torch.randn(n, generator=generator)
            p, q = torch.distributions.Normal(mu_p, sigma_p), torch.distributions.Normal(mu_q, sigma_q)
            return (p.log_prob(x) - q.log_prob(x)).mean()""", "sample x from p"),
        ("closed form, no sampling", """
            kl = math.log(sigma_q / sigma_p) + (sigma_p**2 + (mu_p - mu_q) ** 2) / (2 * sigma_q**2) - 0.5
            return torch.tensor(kl)""", "not the closed form"),
        ("ignores the generator", """
            x = mu_p + sigma_p * torch.randn(n)
            p, q = torch.distributions.Normal(mu_p, sigma_p), torch.distributions.Normal(mu_q, sigma_q)
            return (p.log_prob(x) - q.log_prob(x)).mean()""", "generator you are given"),
    ],
    "js_divergence": [
        ("NaN for zeros", """
            m = 0.5 * (p + q)
            return 0.5 * (p * (p / m).log()).sum(-1) + 0.5 * (q * (q / m).log()).sum(-1)""",
         "not NaN"),
        ("missing 1/2", """
            m = 0.5 * (p + q)
            kl_pm = (torch.special.xlogy(p, p) - torch.special.xlogy(p, m)).sum(-1)
            kl_qm = (torch.special.xlogy(q, q) - torch.special.xlogy(q, m)).sum(-1)
            return kl_pm + kl_qm""", "weighted by 1/2"),
    ],
}  # fmt: skip

ALTERNATIVE_CORRECT = {
    "kl_divergence": """
        Categorical = torch.distributions.Categorical
        return torch.distributions.kl_divergence(Categorical(probs=p), Categorical(probs=q))""",
    "gaussian_kl": """
        Normal = torch.distributions.Normal
        return torch.distributions.kl_divergence(Normal(mu_p, sigma_p), Normal(mu_q, sigma_q))""",
    "monte_carlo_kl": """
        x = torch.randn(n, generator=generator) * sigma_p + mu_p
        log_ratio = math.log(sigma_q / sigma_p) - 0.5 * ((x - mu_p) / sigma_p) ** 2 + 0.5 * ((x - mu_q) / sigma_q) ** 2
        return log_ratio.mean()""",
    "js_divergence": """
        m = (p + q) / 2
        terms = torch.where(p > 0, p * (p / m).log(), 0.0) + torch.where(q > 0, q * (q / m).log(), 0.0)
        return terms.sum(-1) / 2""",
}


@pytest.mark.parametrize("round_index", graderlib.rounds(WRONG))
def test_each_known_mistake_loses_exactly_its_question(root, tmp_path, round_index):
    solution = (root / SOLUTION).read_text()
    graderlib.check_round(solution, tmp_path, "00_foundations", POINTS, WRONG, round_index)


def test_alternative_correct_implementations_pass(root, tmp_path):
    solution = (root / SOLUTION).read_text()
    graderlib.check_alternatives(solution, tmp_path, "00_foundations", POINTS, ALTERNATIVE_CORRECT)


def test_a_cell_that_hangs_times_out_and_grading_goes_on(root, tmp_path):
    text = graderlib.with_body(
        (root / SOLUTION).read_text(), "gaussian_kl", "while True:\n    pass"
    )
    rows = graderlib.grade_text(text, tmp_path, "00_foundations", cell_timeout=10)
    assert rows["gaussian_kl"]["earned"] == 0 and "Timeout" in rows["gaussian_kl"]["hint"]
    assert rows["kl_divergence"]["earned"] == 2 and rows["js_divergence"]["earned"] == 2


def test_grade_reports_bad_files_in_one_line(tmp_path, capsys):
    (tmp_path / "broken.ipynb").write_text("{not json")
    (tmp_path / "notes.txt").write_text("hello")
    for name, message in [
        ("missing.ipynb", "no such file"),
        ("notes.txt", "expected a Jupyter notebook (.ipynb), got '.txt'"),
        ("broken.ipynb", "not a valid notebook"),
    ]:
        with pytest.raises(notebooks.GradeInputError, match=re.escape(message)):
            notebooks.read_notebook(tmp_path / name)
        assert cli.main(["grade", str(tmp_path / name)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("error: ") and "Traceback" not in err


def test_class_grading_agrees_on_every_variant(root, tmp_path):
    graderlib.check_class_grading_agrees(
        (root / SOLUTION).read_text(),
        tmp_path,
        "00_foundations",
        POINTS,
        WRONG,
        ALTERNATIVE_CORRECT,
        None,
    )

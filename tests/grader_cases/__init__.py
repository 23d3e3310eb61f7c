"""Each exercise set's grader cases, one data module per set: ``SOLUTION``, ``NAME``,
``POINTS``, ``WRONG`` (question -> [(mistake, replacement body, words the hint must
contain)]), ``ALTERNATIVE_CORRECT``, ``DEPENDS`` and ``MAY_AFFECT`` (questions graded by
training with another question's function: see ``graderlib.assert_round``)."""

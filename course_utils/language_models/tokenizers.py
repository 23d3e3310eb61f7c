"""Text as tokens: characters, and byte-pair encoding (Sennrich et al. 2016; GPT-2's BPE
works on bytes the same way) built on the exercise's ``merge_pair``.

A tokenizer maps a string to a list of ids and back: ``encode(text) -> list[int]``,
``decode(ids) -> str``. The BPE here starts from the characters of its training text
and learns ``merges``: each replaces the most frequent adjacent pair of ids by a new id.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from functools import cache, cached_property

from course_utils.language_models.functions import merge_pair


@dataclass
class CharTokenizer:
    """One id per character, in sorted order of the characters of a text (nanoGPT's
    ``shakespeare_char``)."""

    chars: list[str]

    @classmethod
    def from_text(cls, text: str) -> CharTokenizer:
        return cls(sorted(set(text)))

    @property
    def vocab_size(self) -> int:
        return len(self.chars)

    @cached_property
    def index(self) -> dict[str, int]:
        """Character -> id, built once (``train_bpe`` encodes every distinct word)."""
        return {c: i for i, c in enumerate(self.chars)}

    def encode(self, text: str) -> list[int]:
        """Raises ``ValueError`` naming a character outside the vocabulary."""
        unknown = sorted(set(text) - set(self.index))
        if unknown:
            raise ValueError(f"text: characters outside the vocabulary: {unknown[:10]}")
        return [self.index[c] for c in text]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.chars[i] for i in ids)


@dataclass
class Bpe:
    """A byte-pair encoding over characters: the base ``chars`` (ids ``0 … len(chars)-1``),
    then ``merges[j] = (a, b)``, the pair that id ``len(chars) + j`` replaces."""

    chars: list[str]
    merges: list[tuple[int, int]] = field(default_factory=list)

    @property
    def vocab_size(self) -> int:
        return len(self.chars) + len(self.merges)

    def token_text(self, token: int) -> str:
        """The characters token ``token`` stands for."""
        if token < len(self.chars):
            return self.chars[token]
        a, b = self.merges[token - len(self.chars)]
        return self.token_text(a) + self.token_text(b)

    def encode(self, text: str) -> list[int]:
        """Each piece of ``text`` (``pieces``: merges never cross a space or a newline) as
        its characters' ids, then every merge in the order it was learned."""
        chars = CharTokenizer(self.chars)

        @cache  # a text repeats its words: each distinct piece once
        def encode_piece(piece: str) -> tuple[int, ...]:
            ids = chars.encode(piece)
            for j, pair in enumerate(self.merges):
                if len(ids) < 2:
                    break
                ids = merge_pair(ids, pair, len(self.chars) + j)
            return tuple(ids)

        return [i for piece in pieces(text) for i in encode_piece(piece)]

    def decode(self, ids: list[int]) -> str:
        return "".join(self.token_text(i) for i in ids)


def train_bpe(text: str, merges: int) -> Bpe:
    """Learn ``merges`` merges on ``text``: each the ``most_frequent_pair`` of the current
    ids, replaced by a new id with ``merge_pair``. Words are counted once with their
    frequency (pairs never cross a space: a word keeps its leading space, as GPT-2's
    pre-tokenizer does), so each merge costs one pass over the distinct words, not over
    the text.

    Raises:
        ValueError: ``merges`` is negative.
    """
    if not isinstance(merges, int) or merges < 0:
        raise ValueError(f"merges: expected a non-negative int, got {merges!r}")
    chars = CharTokenizer.from_text(text)
    words = Counter(pieces(text))
    ids = {w: chars.encode(w) for w in words}
    bpe = Bpe(chars.chars)
    for j in range(merges):
        pairs: Counter[tuple[int, int]] = Counter()
        for word, count in words.items():
            seq = ids[word]
            for pair in zip(seq, seq[1:], strict=False):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs, key=pairs.__getitem__)  # ties: the pair counted first
        new = len(bpe.chars) + j
        for word in words:
            if len(ids[word]) > 1:
                ids[word] = merge_pair(ids[word], best, new)
        bpe.merges.append(best)
    return bpe


def pieces(text: str) -> list[str]:
    """``text`` cut before each space and newline: ``"to be\\nor"`` -> ``["to", " be",
    "\\n", "or"]``."""
    out, start = [], 0
    for i, c in enumerate(text):
        if c in " \n" and i > start:
            out.append(text[start:i])
            start = i
        if c == "\n":
            out.append("\n")
            start = i + 1
    if start < len(text):
        out.append(text[start:])
    return out

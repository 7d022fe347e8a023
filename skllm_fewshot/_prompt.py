"""The few-shot prompt as text: the instruction, the examples and where the query goes.

A prompt renders to a list of :class:`Piece` objects so that the tokenizer step can
tell text from users (examples and queries, never turned into special tokens) from
the template's own text.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "DEFAULT_INSTRUCTION", "MULTI_LABEL_INSTRUCTION", "PROMPT_FORMATS", "RESERVED_CODE_POINTS",
    "FewShotPrompt", "Piece",
]  # fmt: skip

DEFAULT_INSTRUCTION = "Classify each {text_name} into one of these categories: {labels}."
# Multi-label: each label is answered on its own line, "word: yes" or "word: no".
MULTI_LABEL_INSTRUCTION = "For each {text_name}, say which of these topics it is about: {labels}."
YES, NO = "yes", "no"


def default_instruction(instruction: str | None, multi_label: bool) -> str:
    """``instruction``, or the default for the task when it is None.

    Examples
    --------
    >>> from skllm_fewshot._prompt import default_instruction
    >>> default_instruction(None, False)
    'Classify each {text_name} into one of these categories: {labels}.'
    """
    if instruction is not None:
        return instruction
    return MULTI_LABEL_INSTRUCTION if multi_label else DEFAULT_INSTRUCTION


PROMPT_FORMATS = ("plain", "chat")

# Private-use code points mark user text while a chat template renders; they never
# occur in templates, and texts that contain them are rejected by validation.
RESERVED_CODE_POINTS = ("\ue000", "\ue001")
_MARK_OPEN, _MARK_CLOSE = RESERVED_CODE_POINTS
_MARK_RE = re.compile(f"{_MARK_OPEN}(-?\\d+){_MARK_CLOSE}")
QUERY_SLOT = -1


class Piece(NamedTuple):
    """A run of prompt text; ``user`` marks text that came from the data."""

    text: str
    user: bool = False


@dataclass(frozen=True)
class FewShotPrompt:
    """A few-shot classification prompt with one slot for the query.

    Parameters
    ----------
    instruction : str
        The task text; ``{labels}`` is replaced by the label words joined with
        ``", "`` and ``{text_name}`` by ``text_name``.
    examples : sequence of (text, label word)
        The demonstrations, in prompt order.
    label_words : sequence of str
        The label words in class order, for ``{labels}``.
    text_name, label_name : str
        The field names written before each text and each label.
    prompt_format : {"plain", "chat"}
        ``"plain"`` is the seed notebook's layout; ``"chat"`` puts the same content
        through the tokenizer's chat template as one user turn.
    multi_label : bool, default=False
        Each example's answer is then one ``"word: yes|no"`` line per label (see
        :meth:`label_lines`), and each label is scored on its own after the query
        (:meth:`answers`).

    Examples
    --------
    >>> from skllm_fewshot._prompt import FewShotPrompt
    >>> p = FewShotPrompt("Sentiment: {labels}.", [("I love it", "positive")],
    ...                   ["negative", "positive"], "Review", "Sentiment")
    >>> print(p.render("So bad"))
    Sentiment: negative, positive.
    <BLANKLINE>
    Review:
    'I love it'
    Sentiment:
    positive
    <BLANKLINE>
    Review:
    'So bad'
    Sentiment:
    <BLANKLINE>
    """

    instruction: str
    examples: Sequence[tuple[str, str]]
    label_words: Sequence[str]
    text_name: str = "Text"
    label_name: str = "Label"
    prompt_format: str = "plain"
    multi_label: bool = False

    @classmethod
    def for_classes(
        cls,
        examples: Sequence[tuple[str, Any]],
        classes: Sequence[Any],
        label_words: Sequence[str],
        label_descriptions: Sequence[str] | None = None,
        instruction: str | None = None,
        text_name: str = "Text",
        label_name: str = "Label",
        prompt_format: str = "plain",
        multi_label: bool = False,
    ) -> FewShotPrompt:
        """The prompt of a classifier: examples as ``(text, class)``, or ``(text, 0/1 row)`` for multi-label.

        Label descriptions, when given, come first as demonstrations: each class's
        description shown as a text of that class (for multi-label, a text with
        that label alone). Measured on the example tweets, this helps a small
        model where a list of "word: description" lines in the instruction hurts
        (``docs/zero_shot.md``).

        Examples
        --------
        >>> from skllm_fewshot._prompt import FewShotPrompt
        >>> p = FewShotPrompt.for_classes([("great", 1)], [0, 1], ["negative", "positive"])
        >>> p.examples
        [('great', 'positive')]
        """
        words = dict(zip(classes, label_words))
        if label_descriptions is not None:
            shown = np.eye(len(classes), dtype=int) if multi_label else classes
            examples = [
                (d, tuple(r) if multi_label else r) for d, r in zip(label_descriptions, shown)
            ] + list(examples)
        if multi_label:
            answers = [(text, cls.label_lines(label_words, row)) for text, row in examples]
        else:
            answers = [(text, words[c]) for text, c in examples]
        return cls(
            instruction=default_instruction(instruction, multi_label),
            examples=answers,
            label_words=list(label_words),
            text_name=text_name,
            label_name=label_name,
            prompt_format=prompt_format,
            multi_label=multi_label,
        )

    def answers(self) -> list[str]:
        """What is scored after the prompt: each label word, or each ``"word: yes"`` and ``"word: no"``."""
        if not self.multi_label:
            return list(self.label_words)
        return [f"{w}: {a}" for w in self.label_words for a in (YES, NO)]

    @staticmethod
    def label_lines(words: Sequence[str], present: Sequence[bool]) -> str:
        """A multi-label example's answer: one ``"word: yes"`` or ``"word: no"`` line per label.

        Examples
        --------
        >>> from skllm_fewshot._prompt import FewShotPrompt
        >>> print(FewShotPrompt.label_lines(["price", "delivery"], [True, False]))
        price: yes
        delivery: no
        """
        return "\n".join(f"{w}: {YES if p else NO}" for w, p in zip(words, present))

    def header(self) -> str:
        """The instruction with its fields filled in."""
        fields = {"labels": ", ".join(self.label_words), "text_name": self.text_name}
        # Only known fields are replaced, so braces elsewhere in a user's instruction survive.
        return re.sub(r"\{(labels|text_name)\}", lambda m: fields[m.group(1)], self.instruction)

    def _content_pieces(self) -> list[Piece | int]:
        """The content with each user text replaced by its slot number (query: -1)."""
        out: list[Piece | int] = [Piece(self.header())]
        # Multi-label answers are lines "word: yes|no" of their own, after the text.
        intro = "" if self.multi_label else f"{self.label_name}:\n"
        for i, (_, answer) in enumerate(self.examples):
            out += [Piece(f"\n\n{self.text_name}:\n'"), i, Piece(f"'\n{intro}{answer}")]
        out += [Piece(f"\n\n{self.text_name}:\n'"), QUERY_SLOT, Piece(f"'\n{intro}")]
        return out

    def render(self, query: str = "{}", tokenizer: Any = None) -> str:
        """The prompt as one string, ``query`` in the slot."""
        return "".join(p.text for p in self.pieces(query, tokenizer))

    def pieces(self, query: str = "{}", tokenizer: Any = None) -> list[Piece]:
        """The whole prompt as pieces, user text marked, with ``query`` in the slot."""
        head, tail = self.split(tokenizer)
        return [*head, Piece(query, user=True), *tail]

    def split(self, tokenizer: Any = None) -> tuple[list[Piece], list[Piece]]:
        """The pieces before and after the query slot.

        For ``prompt_format="chat"`` the tokenizer's chat template is applied, with
        the same content as the plain prompt in one user turn and the generation
        prompt added.
        """
        texts = [t for t, _ in self.examples]
        content = self._content_pieces()
        if self.prompt_format == "plain":
            flat = [
                Piece(texts[p], user=True) if isinstance(p, int) and p != QUERY_SLOT else p for p in content
            ]
        else:
            if tokenizer is None or not getattr(tokenizer, "chat_template", None):
                raise ValueError(
                    "prompt_format='chat' needs a tokenizer with a chat template; use prompt_format='plain'."
                )
            marked = "".join(
                p.text if isinstance(p, Piece) else f"{_MARK_OPEN}{p}{_MARK_CLOSE}" for p in content
            )
            # Many templates trim the turn's content; the generation prompt replaces
            # the plain layout's trailing newline.
            rendered = tokenizer.apply_chat_template(
                [{"role": "user", "content": marked.rstrip("\n")}],
                tokenize=False,
                add_generation_prompt=True,
            )
            flat = []
            pos = 0
            for m in _MARK_RE.finditer(rendered):
                flat.append(Piece(rendered[pos : m.start()]))
                slot = int(m.group(1))
                flat.append(QUERY_SLOT if slot == QUERY_SLOT else Piece(texts[slot], user=True))
                pos = m.end()
            flat.append(Piece(rendered[pos:]))
        at = flat.index(QUERY_SLOT)
        head = [p for p in flat[:at] if p.text]
        tail = [p for p in flat[at + 1 :] if p.text]
        return head, tail

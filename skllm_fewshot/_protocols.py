"""The interfaces between the estimator and the parts it is built from.

Written as :class:`typing.Protocol`: a new head or example selection needs no base
class, only these methods. ``tests/test_protocols.py`` checks that every built-in
part has them.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import numpy as np

if TYPE_CHECKING:
    from ._engine import PromptScorer
    from ._selection import PromptGroup

# One example of a prompt: its text and its class (a label set for multi-label).
Example = tuple[str, Any]


@runtime_checkable
class Head(Protocol):
    """From what the engine computes for each text to class probabilities.

    ``truncated`` lists the texts cut to fit the context, so that a head can warn
    or treat them apart; a head that reads features also has ``features``.
    """

    def fit(self, engine: PromptScorer, texts: Sequence[str], y: np.ndarray) -> Head: ...

    def predict_proba(
        self, engine: PromptScorer, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class FeatureReader(Head, Protocol):
    """A head that also gives its features (what ``LLMFeatures`` and the search read)."""

    def features(
        self, engine: PromptScorer, texts: Sequence[str], truncated: list[int] | None = None
    ) -> np.ndarray: ...


@runtime_checkable
class HeadBuilder(Protocol):
    """A ``head=`` value that builds its own head (``LoRAFineTuning``), rather than a
    classifier fitted on features."""

    def build_head(self, layers: Any, kind: str, threshold: Any, random_state: Any) -> Head: ...


@runtime_checkable
class ExampleSelection(Protocol):
    """Which labelled rows go into the prompt of each text.

    ``one_prompt`` is True when every text gets the same examples (then the
    classifier calibrates and fits its head on that one prompt).
    """

    one_prompt: bool

    def fit(
        self, texts: np.ndarray, y: np.ndarray, classes: np.ndarray, rng: np.random.RandomState
    ) -> ExampleSelection: ...

    @property
    def shown_examples(self) -> list[Example]: ...

    def groups(self, texts: Sequence[str]) -> list[PromptGroup]: ...

    def examples_for(self, texts: Sequence[str]) -> list[list[Example]]: ...

"""Calibration queries: what a prompt predicts when the text says nothing of the class.

A small model's label scores carry a bias of their own: towards some label words,
towards the labels of the prompt's last examples, towards what the task's vocabulary
suggests. Calibration measures that bias on queries whose answer is unknown and
divides it out (:func:`~skllm_fewshot._engine.calibrated`):

- content-free queries (``"N/A"``, ``""``, ``"[MASK]"``; Zhao et al. 2021) measure
  the bias of the prompt and the label words;
- in-domain bags of words (domain-context calibration, Fei et al. 2023): random
  words of the training texts, as long as a text, measure also the bias the task's
  vocabulary brings, which content-free queries miss.

``calibrate="domain"`` divides by both, averaged in log space. On the development
sets (``docs/accuracy.md``, 3 tasks x 6 values of k) the pair had a lower log-loss
than content-free queries alone in all 18 cells and a higher accuracy in 17, by up to
10 points (the 18th: -0.8 points, within the draws' spread); bags alone lost 8 points
on the MAS tweets with one example per class. The bags are scored once, at fit, under the fitted prompt
(with ``example_selection="similar"``, the prompt without examples); each prompt's
content-free prior is its own. Fitted without texts, only content-free queries remain.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.utils import check_random_state

__all__ = ["N_DOMAIN_QUERIES", "domain_queries", "mean_log_prior"]

# Enough bags that their mean prior varies little between draws, few enough to cost
# nothing next to a fit.
N_DOMAIN_QUERIES = 20


def domain_queries(
    texts: Sequence[str], n_queries: int = N_DOMAIN_QUERIES, random_state: Any = None
) -> list[str]:
    """Random bags of the texts' words, each as long as the texts are on average.

    Words are drawn with replacement from all the texts' whitespace-separated words,
    so a bag reads like the task's texts but says nothing of any one class. In texts
    written without spaces each text is one word: the bags are then whole training
    texts, and the prior comes close to batch calibration's.

    Parameters
    ----------
    texts : sequence of str
        The training texts.
    n_queries : int, default=20
    random_state : int, RandomState or None

    Returns
    -------
    list of str
        ``n_queries`` bags; empty when the texts have no words.

    Examples
    --------
    >>> from skllm_fewshot._calibration import domain_queries
    >>> domain_queries(["a good film", "a bad plot"], n_queries=2, random_state=0)
    ['bad plot a', 'a a a']
    """
    words = [w for text in texts for w in str(text).split()]
    if not words:
        return []
    rng = check_random_state(random_state)
    length = max(1, round(len(words) / len(texts)))
    return [" ".join(words[i] for i in rng.randint(len(words), size=length)) for _ in range(n_queries)]


def mean_log_prior(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """The geometric mean of two class-probability priors, renormalised.

    Dividing by it divides by the square root of each prior.

    Parameters
    ----------
    a, b : ndarray of shape (n_classes,)
        Class probabilities (e.g. of the content-free queries and of the bags of words).

    Returns
    -------
    ndarray of shape (n_classes,)

    Examples
    --------
    >>> import numpy as np
    >>> from skllm_fewshot._calibration import mean_log_prior
    >>> mean_log_prior(np.array([0.5, 0.5]), np.array([0.8, 0.2])).round(3)
    array([0.667, 0.333])
    """
    prior = np.sqrt(np.maximum(a, 1e-300) * np.maximum(b, 1e-300))
    return prior / prior.sum()

"""The seed notebook's data set, read from a path the user gives (nothing is shipped).

The MAS corpus (Spanish marketing tweets, 7 sectors) is course material: download
``NLP/Datasets/mascorpus/tweets_marketing.csv`` from the public GitHub repository
santiagxf/M72109 and pass its path.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["SEED_SECTOR_NAMES", "load_mas_tweets", "seed_instruction"]

# The seed notebook's names for the corpus' sectors.
SEED_SECTOR_NAMES = {
    "ALIMENTACION": "alimentos",
    "AUTOMOCION": "automobiles",
    "BANCA": "bancos",
    "BEBIDAS": "bebidas",
    "DEPORTES": "deportes",
    "RETAIL": "supermercados",
    "TELCO": "telefonía",
}


def seed_instruction(labels: list[str]) -> str:
    """The seed notebook's instruction for the tweet task.

    Examples
    --------
    >>> from skllm_fewshot.datasets import seed_instruction
    >>> seed_instruction(["bancos", "bebidas"]).split(": ")[-1]
    'bancos, bebidas'
    """
    return (
        "Clasificar los siguientes tweets según el producto o categoría a la que hacen referencia. "
        f"Las posibles categorías son: {', '.join(labels)}"
    )


def load_mas_tweets(path: str | os.PathLike) -> tuple[Any, str]:
    """Read the MAS corpus as the seed notebook prepares it.

    Parameters
    ----------
    path : str or path
        ``tweets_marketing.csv``.

    Returns
    -------
    tweets : pandas.DataFrame
        Columns ``TEXTO`` (the text) and ``SECTOR`` (renamed as in the seed), among others.
    instruction : str
        The seed's instruction, naming the labels in the order the seed finds them.
    """
    import pandas as pd

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"MAS corpus not found at {path}: download tweets_marketing.csv from the "
            "santiagxf/M72109 repository (NLP/Datasets/mascorpus/) and pass its path."
        )
    tweets = pd.read_csv(path)
    tweets["SECTOR"] = tweets["SECTOR"].map(SEED_SECTOR_NAMES)
    return tweets, seed_instruction(tweets["SECTOR"].unique().tolist())

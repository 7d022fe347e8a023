"""The seed notebook's data set, read from a path the user gives, and a small stand-in.

The MAS corpus (Spanish marketing tweets, 7 sectors) is course material, not shipped:
download ``NLP/Datasets/mascorpus/tweets_marketing.csv`` from the public GitHub
repository santiagxf/M72109 and pass its path to :func:`load_mas_tweets`. Where it is
not at hand, :func:`load_example_tweets` returns 91 short tweets of the same 7 sectors
written for this package (13 per sector), in the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = [
    "SECTOR_DESCRIPTIONS",
    "SEED_SECTOR_NAMES",
    "load_customer_messages",
    "load_example_tweets",
    "load_mas_tweets",
    "seed_instruction",
]

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

# A short description of each sector, in Spanish like the tweets, for zero-shot
# classification with label_descriptions (written for the sectors in general, not
# for particular tweets).
SECTOR_DESCRIPTIONS = {
    "alimentos": "comida, dulces, snacks, lácteos y marcas de alimentación",
    "automobiles": "coches, motos, concesionarios y marcas de automóviles",
    "bancos": "bancos, cuentas, tarjetas, préstamos, hipotecas y seguros",
    "bebidas": "cerveza, refrescos, vino, agua, café y otras bebidas",
    "deportes": "deporte, fútbol, equipos, ropa y zapatillas deportivas",
    "supermercados": "supermercados, tiendas, grandes almacenes, muebles y compras",
    "telefonía": "móviles, operadoras, fibra, internet y tarifas de telefonía",
}


def seed_instruction(labels: list[str]) -> str:
    """The seed notebook's instruction for the tweet task.

    Parameters
    ----------
    labels : list of str
        The class names, in the order the instruction lists them (joined with
        ``", "``).

    Returns
    -------
    str
        The seed's Spanish instruction, ending with the list of the possible
        categories.

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


def load_example_tweets() -> tuple[Any, str]:
    """Small Spanish marketing tweets of the seed's 7 sectors, shipped with the package.

    A stand-in for the MAS corpus when it is not at hand: 91 tweets (13 per
    sector) written for this package, not taken from the corpus. They are short
    and name their sector's products plainly, so they are easier than the
    corpus' tweets; use them to try the library and run the examples, and the
    corpus (:func:`load_mas_tweets`) to measure accuracy.

    Returns
    -------
    tweets : pandas.DataFrame
        Columns ``TEXTO`` (the text) and ``SECTOR`` (the seed's class names, as
        :func:`load_mas_tweets` returns them), grouped by sector.
    instruction : str
        The seed's instruction, naming the labels in the order the seed finds
        them in the corpus.

    See Also
    --------
    load_mas_tweets : the MAS corpus itself, the same layout.

    Examples
    --------
    >>> from skllm_fewshot.datasets import load_example_tweets
    >>> tweets, instruction = load_example_tweets()
    >>> tweets.shape
    (91, 2)
    >>> tweets["SECTOR"].value_counts().to_dict()["bancos"]
    13
    >>> instruction.split(": ")[-1]
    'supermercados, telefonía, alimentos, automobiles, bancos, bebidas, deportes'
    """
    from importlib.resources import files

    import pandas as pd

    with files("skllm_fewshot").joinpath("data", "example_tweets.csv").open(encoding="utf-8") as f:
        tweets = pd.read_csv(f)
    tweets["SECTOR"] = tweets["SECTOR"].map(SEED_SECTOR_NAMES)
    return tweets, seed_instruction(tweets["SECTOR"].unique().tolist())


def load_customer_messages() -> Any:
    """120 short English customer messages tagged with the topics they are about.

    A small multi-label set written for this package: each message is about one
    to three of ``price``, ``quality``, ``delivery`` and ``service``.

    Returns
    -------
    pandas.DataFrame
        Column ``text``, then one 0/1 column per topic: ``frame.drop(columns="text")``
        is the indicator matrix ``fit`` takes, with the topics as column names.

    Examples
    --------
    >>> from skllm_fewshot.datasets import load_customer_messages
    >>> messages = load_customer_messages()
    >>> messages.shape
    (120, 5)
    >>> list(messages.columns[1:])
    ['price', 'quality', 'delivery', 'service']
    """
    from importlib.resources import files

    import pandas as pd

    with files("skllm_fewshot").joinpath("data", "customer_messages.csv").open(encoding="utf-8") as f:
        return pd.read_csv(f)

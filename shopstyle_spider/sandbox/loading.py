"""Turn a ``--catalog`` spec (``synthetic``, ``fashion:PATH``, ``jsonl:PATH``) into a loaded catalog."""

from __future__ import annotations

from datetime import date
from pathlib import Path

from .catalog import Catalog, CatalogError
from .fashion import load_fashion
from .jsonl import load_jsonl
from .synthetic import Gaps, generate
from .timeline import Timeline

CATALOG_KINDS = ("synthetic", "fashion:PATH", "jsonl:PATH")


def load_catalog(spec: str, *, seed: int = 0, products_per_category: int = 60,
                 categories_file: Path | None = None, gaps: Gaps | None = None, as_of: date | None = None) -> Catalog:
    """The catalog ``spec`` names; ``seed``, ``products_per_category`` and ``gaps`` shape the synthetic one. With
    ``as_of``, the catalog as it stood at the end of that day (``timeline``, drawn from ``seed``); without, every
    product it ever held, none with a date."""
    kind, _, location = spec.partition(":")
    if kind == "synthetic" and not location:
        catalog = generate(seed=seed, products_per_category=products_per_category, gaps=gaps)
    elif kind == "fashion" and location:
        catalog = load_fashion(Path(location))
    elif kind == "jsonl" and location:
        catalog = load_jsonl(Path(location), categories_file)
    else:
        raise CatalogError(f"unknown catalog {spec!r}: expected one of {', '.join(CATALOG_KINDS)}")
    return catalog if as_of is None else Timeline(catalog, seed).as_of(as_of)

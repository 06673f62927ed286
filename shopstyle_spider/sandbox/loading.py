"""Turn a ``--catalog`` spec (``synthetic``, ``fashion:PATH``, ``jsonl:PATH``) into a loaded catalog."""

from __future__ import annotations

from pathlib import Path

from .catalog import Catalog, CatalogError
from .fashion import load_fashion
from .jsonl import load_jsonl
from .synthetic import Gaps, generate

CATALOG_KINDS = ("synthetic", "fashion:PATH", "jsonl:PATH")


def load_catalog(spec: str, *, seed: int = 0, products_per_category: int = 60,
                 categories_file: Path | None = None, gaps: Gaps | None = None) -> Catalog:
    """The catalog ``spec`` names; ``seed``, ``products_per_category`` and ``gaps`` shape the synthetic one."""
    kind, _, location = spec.partition(":")
    if kind == "synthetic" and not location:
        return generate(seed=seed, products_per_category=products_per_category, gaps=gaps)
    if kind == "fashion" and location:
        return load_fashion(Path(location))
    if kind == "jsonl" and location:
        return load_jsonl(Path(location), categories_file)
    raise CatalogError(f"unknown catalog {spec!r}: expected one of {', '.join(CATALOG_KINDS)}")

"""The one set of Jinja2 templates behind every HTML page modeling makes: the review app's pages and the static
report of ``modeling.analyze`` (written as files, photos and styles inside them, so a copied report still works).

Autoescaping is on for every template: product text is shown as text, whatever HTML or script it holds.
"""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from .fields import is_missing

__all__ = ["STATIC", "TEMPLATES", "environment", "percent"]

TEMPLATES = Path(__file__).resolve().parent / "templates"
STATIC = Path(__file__).resolve().parent / "static"


def percent(value: object, digits: int = 1) -> str:
    """A share as a percentage for people to read; blank where there is none.

    >>> percent(0.97825), percent(1), percent(None), percent(float("nan"))
    ('97.8%', '100.0%', '', '')
    """
    if is_missing(value):
        return ""
    return f"{100 * float(value):.{digits}f}%"


def environment() -> Environment:
    """A fresh environment over modeling's templates: autoescaped, and an undefined name is an error, not blank."""
    env = Environment(loader=FileSystemLoader(TEMPLATES), autoescape=True, undefined=StrictUndefined,
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["percent"] = percent
    return env

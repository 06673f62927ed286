"""What a missing product field is, decided once for every reader of products.

A product's photo, description, parent or price can be absent in several spellings depending on where it came
from: ``None`` from JSON or a database, ``NaN`` from pandas (pandas 3's string columns store a missing value as
NaN, so ``None`` written into one reads back as a float), an empty string from a CSV file. Loading, training,
prediction, the audit, the review app and the report all ask these functions, so a product without a photo is a
text-only product everywhere, never "a float that is not a path" in one place.
"""

from __future__ import annotations

import math

__all__ = ["is_missing", "optional_text", "photo_path"]


def is_missing(value: object) -> bool:
    """None, a float NaN (pandas' missing value, ``pd.NA`` included) or a blank string.

    >>> [is_missing(v) for v in (None, float("nan"), "", "  ", "a", 0, 0.0)]
    [True, True, True, True, False, False, False]
    """
    if value is None or (isinstance(value, str) and not value.strip()):
        return True
    if isinstance(value, float):
        return math.isnan(value)
    try:  # NaT and pd.NA equal nothing, themselves included; pd.NA's truth value is undefined
        return bool(value != value)
    except TypeError:  # pd.NA
        return True
    except ValueError:  # an array: a value, if not a path
        return False


def photo_path(value: object) -> str | None:
    """A photo's path as a string, or None where the product has no photo; a value that is neither a path nor
    missing (a number, a list) is refused with ``TypeError`` naming its type.

    >>> photo_path(float("nan")) is None, photo_path("") is None, photo_path("full/1.jpg")
    (True, True, 'full/1.jpg')
    """
    if is_missing(value):
        return None
    if not isinstance(value, str):
        raise TypeError(f"image_path is a {type(value).__name__}, not a path")
    return value


def optional_text(value: object) -> str:
    """A free-text field (description, brand) as a string; missing reads as empty. Not for names, which are
    required: their absence is an error the caller reports.

    >>> optional_text(None), optional_text(float("nan")), optional_text("Silk")
    ('', '', 'Silk')
    """
    return "" if is_missing(value) else value if isinstance(value, str) else str(value)

"""The review app: a web page where a person files the products the model could not, and settles the labels an
audit suspects, with a JSON prediction API beside it (``python -m modeling.review``)."""

from .app import create_app

__all__ = ["create_app"]

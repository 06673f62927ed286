"""Learn leaf categories from a crawl: text and image classifiers stacked into one scikit-learn estimator.

Stages are modules run as ``python -m modeling.train`` and ``python -m modeling.predict``; the estimators they
compose are importable from here. Nothing here imports Keras: the image branch builds its network on first use.
"""

from .fusion import LogLinearFusion
from .image import ImageEmbedder, make_image_classifier
from .persistence import load_model, save_model
from .stacking import ProductClassifier
from .text import make_text_pipeline

__all__ = ["ImageEmbedder", "LogLinearFusion", "ProductClassifier", "load_model", "make_image_classifier",
           "make_text_pipeline", "save_model"]

"""Learn leaf categories from a crawl: text and image classifiers stacked into one scikit-learn estimator."""

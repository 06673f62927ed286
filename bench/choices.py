"""The defaults the code justifies, decided on the validation split of the fashion catalog (the test split chooses
nothing, so it is not even scored here).

- the image branch's inverse regularisation C (``modeling.image.make_image_classifier``), on the embeddings as
  they are and standardised;
- where the stacking's out-of-fold probabilities come from (``modeling.train --cv``): a fifth held out once, or
  5 folds, with the time each takes to train.

Crawls the catalog into ``data/bench/fashion`` as ``bench/accuracy.py`` does unless ``--db`` names a crawl; photos
come from its embedding cache.

    .venv/bin/python bench/choices.py [--db data/crawl.db --images data/images] [--skip-cv]
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np
from accuracy import add_crawl_arguments, crawl_of
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from modeling import train
from modeling.data import load_products, select_categories
from modeling.image import ImageEmbedder
from modeling.metrics import prediction_figures
from modeling.stacking import ProductClassifier
from shopstyle_spider import config

# (standardised first?, C): around the kept 0.3, and around the best standardised C of earlier sessions (0.003-0.02)
C_GRID = ((False, 0.1), (False, 0.3), (False, 1.0), (True, 0.003), (True, 0.01), (True, 0.03))
CV_CHOICES = (0.2, 5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--backbone", default=str(config.mobilenet_v2_backbone()), help="image backbone")
    parser.add_argument("--skip-cv", action="store_true", help="only the image branch's C (the --cv choice trains "
                                                                "the whole model twice, minutes each)")
    parser.add_argument("--skip-c", action="store_true", help="only the --cv choice")
    parser.add_argument("--seed", type=int, default=0, help="seed of the stacking's folds")
    args = parser.parse_args(argv)
    if not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/choices.py: needs {config.fashion_dir()} (set SHARED_DIR)", file=sys.stderr)
        return 2
    db, images = crawl_of(args)
    frame = select_categories(load_products(db, images, progress=False), min_products=args.min_products)
    fit_rows, validation = frame[frame["split"] == "train"], frame[frame["split"] == "validation"]
    embedder = ImageEmbedder(args.backbone, cache_dir=str(args.work / "cache"), progress=False).fit()
    x_fit, x_val = embedder.transform(fit_rows), embedder.transform(validation)
    has_fit, has_val = ~np.isnan(x_fit[:, 0]), ~np.isnan(x_val[:, 0])
    y_fit, y_val = fit_rows["category"].to_numpy()[has_fit], validation["category"].to_numpy()[has_val]
    print(f"choices on the validation split, {time.strftime('%Y-%m-%d')}, {platform.node()}: fashion catalog, "
          f"{frame['category'].nunique()} categories; image branch: {has_fit.sum()} training and {has_val.sum()} "
          "validation photos", flush=True)
    print(f"{'image branch':<28} {'C':>6} {'validation accuracy':>20} {'seconds':>8}")
    for scaled, c in () if args.skip_c else C_GRID:
        started = time.perf_counter()
        model = LogisticRegression(C=c, max_iter=1000)
        model = make_pipeline(StandardScaler(), model) if scaled else model
        model.fit(x_fit[has_fit], y_fit)
        accuracy = float((model.predict(x_val[has_val]) == y_val).mean())
        label = "standardised" if scaled else "embeddings as they are"
        print(f"{label:<28} {c:>6g} {accuracy:>20.4f} {time.perf_counter() - started:>8.0f}", flush=True)
    if args.skip_cv:
        return 0
    parents = dict(zip(frame["category"], frame["parent"], strict=True))
    print(f"\n{'stacking --cv':<14} {'accuracy':>9} {'coverage@98':>12} {'parent acc':>11} {'train s':>8}")
    for cv in CV_CHOICES:
        started = time.perf_counter()
        model = ProductClassifier(image=embedder, cv=cv, random_state=args.seed, category_parents=parents)
        model.fit(fit_rows, fit_rows["category"])
        seconds = time.perf_counter() - started
        figures = prediction_figures(train.prediction_rows(model, validation), parents)["stacked"]
        print(f"{cv!s:<14} {figures['accuracy']:>9.4f} {figures['coverage_98']:>12.4f} "
              f"{figures['parent_accuracy']:>11.4f} {seconds:>8.0f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

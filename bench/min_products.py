"""``modeling.train --min-products``, decided on the guarantee's own products: which value files the most under it.

A leaf with fewer training products than ``--min-products`` is left out of the model; its products still count in
the filing guarantee (the model meets their like in service and is always wrong on them at the leaf). Leaving out
more leaves keeps the model's classes well learned, at the cost of more products the guarantee must absorb. For
each value, a text-only model is fitted with 5 folds, exactly as ``modeling.train`` does, and its card's thresholds
chosen (``train.guaranteed_filing``); the figure is the share of the guarantee's products (out-of-fold, validation
and the unlearned leaves' products: never the test split, which is not even scored here) filed at each target.

    .venv/bin/python bench/min_products.py [--db data/bench/fashion/crawl.db] [--values 10,5,3]
"""

from __future__ import annotations

import argparse
import platform
import time

from accuracy import add_crawl_arguments, crawl_of

from modeling import train
from modeling.data import leaf_parents, load_products, select_categories, unlearned_products
from modeling.stacking import ProductClassifier
from modeling.text import make_text_pipeline

TARGETS = ("0.99", "0.995")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--values", default="10,5,3", help="the --min-products values compared")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    args = parser.parse_args(argv)
    db, images = crawl_of(args)
    products = load_products(db, images, progress=False)
    parents = leaf_parents(products)
    print(f"--min-products on the guarantee's products, {time.strftime('%Y-%m-%d')}, {platform.node()}: "
          f"{len(products)} products, text only, 5 folds")
    print(f"{'--min-products':>14} {'leaves':>6} {'unlearned products':>18} "
          + " ".join(f"{'filed at ' + f'{float(t):.1%}':>14}" for t in TARGETS))
    for value in (int(v) for v in args.values.split(",")):
        frame = select_categories(products, min_products=value)
        unlearned = unlearned_products(products, frame)
        fit = frame[frame["split"] == "train"]
        model = ProductClassifier(text=make_text_pipeline(), cv=5, random_state=args.seed, category_parents=parents)
        out_of_fold, _ = model.fit_out_of_fold(fit, fit["category"], text_only=True)
        validation = train.prediction_rows(model, frame[frame["split"] == "validation"])
        filing, how = train.guaranteed_filing(model, out_of_fold, fit, validation, unlearned)
        shares = [(filing[t]["leaf_products"] + filing[t]["parent_products"]) / how["products"] for t in TARGETS]
        print(f"{value:>14} {frame['category'].nunique():>6} {len(unlearned):>18} "
              + " ".join(f"{share:>14.2%}" for share in shares), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

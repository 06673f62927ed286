"""Filing with a guarantee on the real fashion catalog: how much each target files, and how right it is on test.

Trains ``python -m modeling.train`` on the fashion crawl (text only unless ``--image-backbone`` says otherwise;
recorded as an experiment, never promoted), whose card holds thresholds promising each level's accuracy with 95%
confidence, computed on the training products' out-of-fold predictions plus the validation split. In the same run
the same guarantee is computed on the validation split alone (``filing.choose_thresholds`` over the recorded
validation predictions), the comparison that says what the out-of-fold products buy. Both are scored on the test
split, which chooses nothing. Goals (issue 27): at 99% at least 95% of the products filed (leaf or parent), at
99.5% at least 60%, each level's test accuracy at least the target.

    .venv/bin/python bench/filing.py [--db data/bench/fashion/crawl.db] [--cv 5]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import pandas as pd

from modeling import analysis, train
from modeling.champion import interval
from modeling.filing import choose_thresholds, decision_figures
from modeling.metrics import recorded_parents

sys.path.insert(0, str(Path(__file__).resolve().parent))
from accuracy import add_crawl_arguments, crawl_of  # noqa: E402  (the fashion crawl, as bench/accuracy.py makes it)

GOALS = {"0.99": 0.95, "0.995": 0.60}  # share filed at each target
TARGETS = ("0.98", "0.99", "0.995")


def scored(test: pd.DataFrame, filing: dict, parents: dict) -> pd.DataFrame:
    predicted_parents, parent_scores = recorded_parents(test)
    figures = decision_figures(test["true_category"], test["predicted_category"], test["score"], predicted_parents,
                               parent_scores, parents, {t: filing[t] for t in TARGETS})
    return pd.DataFrame([{"target": t, "leaf_threshold": f["leaf_threshold"], "leaf_bound": f["leaf_bound"],
                          "leaf_share": f["leaf_share"], "leaf_accuracy": f["leaf_accuracy"],
                          "parent_threshold": f["parent_threshold"], "parent_bound": f["parent_bound"],
                          "parent_share": f["parent_share"], "parent_accuracy": f["parent_accuracy"],
                          "filed": f["leaf_share"] + f["parent_share"]} for t, f in figures.items()])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--cv", default="5", help="modeling.train --cv: where the out-of-fold predictions come from")
    parser.add_argument("--image-backbone", default="none", help="modeling.train --image-backbone")
    args = parser.parse_args(argv)
    db, images = crawl_of(args)
    started = time.perf_counter()
    code = train.main(["--db", str(db), "--images", str(images), "--image-backbone", args.image_backbone,
                       "--cv", args.cv, "--min-products", str(args.min_products), "--out",
                       str(args.work / "filing-models"), "--promote", "never", "--no-progress",
                       "--name", f"filing bench, --cv {args.cv}"])
    if code != 0:
        return code
    seconds = time.perf_counter() - started
    experiments = analysis.load_experiments(db)
    experiment = int(experiments.index[-1])
    card = json.loads((args.work / "filing-models" / f"{experiment}.json").read_text(encoding="utf-8"))
    parents = card["categories"]
    validation = analysis.load_predictions(db, "validation", experiment)
    test = analysis.load_predictions(db, "test", experiment)
    validation_only = choose_thresholds(validation["true_category"], validation["predicted_category"],
                                        validation["score"], *recorded_parents(validation), parents)
    guarantee = card["guarantee"]
    print(f"filing benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: experiment {experiment}, "
          f"{len(parents)} categories, trained in {seconds:.0f} s (--cv {args.cv}, {args.image_backbone} backbone); "
          f"test split {len(test)} products")
    floats = {"float_format": lambda v: f"{v:.4f}", "index": False, "na_rep": "never"}
    results = {}
    for label, filing in (
            (f"out-of-fold + validation ({guarantee['out_of_fold']} + {guarantee['validation']} products)",
             card["filing"]),
            (f"validation alone ({len(validation)} products)", validation_only)):
        table = scored(test, filing, parents)
        results[label] = table
        print(f"\nguarantee computed on {label}, scored on test:")
        print(table.to_string(**floats))
    ours = results[next(iter(results))].set_index("target")
    print("\ngoals (out-of-fold + validation):")
    for target, goal in GOALS.items():
        filed = ours.at[target, "filed"]
        verdict = "met" if filed >= goal else "NOT met"
        print(f"  filed at {float(target):.1%}: {filed:.1%} (goal >= {goal:.0%}: {verdict})")
    for target in TARGETS:
        for level in ("leaf", "parent"):
            reached = ours.at[target, f"{level}_accuracy"]
            if reached is not None and not pd.isna(reached):
                filed = round(ours.at[target, f"{level}_share"] * len(test))
                low, high = interval(round(reached * filed), filed)
                verdict = "at least the target" if reached >= float(target) else (
                    "below the target, within the test's noise" if high >= float(target) else "BELOW the target")
                print(f"  {level} accuracy on test at {float(target):.1%}: {reached:.4f} of {filed} products, exact "
                      f"95% interval {low:.4f}-{high:.4f} ({verdict})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

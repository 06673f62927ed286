"""The review loop measured on the fashion catalog: does the label audit find wrong labels, and does fixing them pay?

Crawls ``../shared/datasets/fashion`` through the sandbox into ``data/bench/fashion`` (as ``bench/accuracy.py``; a
second run adds nothing) unless ``--db`` names a crawl, then, each step on its own copy of the crawl database:

1. The catalog as it is: ``modeling.train`` (the clean model) and ``modeling.audit``: suspects found, the pairs of
   categories the catalog confuses (cleanlab's figures), and the share of the clean model's test errors that the
   audit suspects.
2. Flip ``--flip-share`` (3%) of the training labels in a copy, seeded: half to a random other category, half inside
   the catalog's most confused pairs (step 1's overlapping pairs, weighted by their overlap). Train on it (the
   flipped model) and audit it: precision and recall against the flips among the top k and top 2k suspects
   (k = number flipped).
3. A simulated reviewer goes through the top 2k suspects (the workload: products shown), restores the label of each
   flipped one and confirms the others, through ``modeling.reviews.record_decision``; ``modeling.train --labels
   reviewed`` trains the reviewed model.

Prints the test accuracy of the clean, flipped and reviewed models (the test split is never flipped) and the share
of the accuracy the flips cost that review won back. Goals: recall >= 0.8 within the top 2k; >= 80% won back.

    .venv/bin/python bench/review.py [--db data/crawl.db --images data/images] [--categories a,b,c]
"""

from __future__ import annotations

import argparse
import json
import logging
import platform
import sqlite3
import sys
import time
from contextlib import closing, redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import pandas as pd
from accuracy import add_crawl_arguments, crawl_of

from modeling import audit, store, train
from modeling.data import load_products, select_categories
from modeling.reviews import record_decision
from shopstyle_spider import config

GOALS = {"recall within the top 2k": 0.8, "accuracy won back by review": 0.8}


def copy_database(source: Path, target: Path) -> Path:
    """A fresh copy (sqlite's backup API: consistent even while the source is open), replacing an earlier one."""
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    with closing(sqlite3.connect(source)) as original, closing(sqlite3.connect(target)) as copy:
        original.backup(copy)
    return target


def latest_id(db: Path, table: str) -> int:
    with closing(sqlite3.connect(db)) as connection:
        return connection.execute(f"SELECT max(id) FROM {table}").fetchone()[0]  # noqa: S608 (our table names)


def test_accuracy(db: Path, experiment: int) -> tuple[float, pd.DataFrame]:
    with closing(sqlite3.connect(db)) as connection:
        rows = pd.read_sql_query("SELECT product_id, true_category, predicted_category FROM predictions "
                                 "WHERE experiment_id = ? AND split = 'test'", connection, params=(experiment,))
    return float((rows["true_category"] == rows["predicted_category"]).mean()), rows


def suspects_of(db: Path, audit_id: int) -> pd.DataFrame:
    with closing(sqlite3.connect(db)) as connection:
        return pd.read_sql_query("SELECT * FROM label_issues WHERE audit_id = ? ORDER BY rank", connection,
                                 params=(audit_id,))


def choose_flips(frame: pd.DataFrame, pairs: list[dict], share: float,
                 seed: int) -> tuple[dict[int, tuple[str, str]], int]:
    """(product -> (true label, flipped label), how many were drawn inside a pair) for ``share`` of the training
    products: half to the other side of one of the catalog's confused pairs (drawn by their overlap), the rest to a
    random other category."""
    rng = np.random.default_rng(seed)
    train_rows = frame[frame["split"] == "train"]
    classes = np.array(sorted(frame["category"].unique()))
    count = round(share * len(train_rows))
    by_class = {c: rows["id"].to_numpy() for c, rows in train_rows.groupby("category")}
    flips: dict[int, tuple[str, str]] = {}
    pairs = [p for p in pairs if p["category_a"] in by_class and p["category_b"] in by_class]
    weights = np.array([p["overlapping"] for p in pairs], dtype=float)
    while len(flips) < count // 2 and pairs:
        pair = pairs[rng.choice(len(pairs), p=weights / weights.sum())]
        given, other = (pair["category_a"], pair["category_b"])[::rng.choice([1, -1])]
        product = int(rng.choice(by_class[given]))
        if product not in flips:
            flips[product] = (given, other)
    in_pairs = len(flips)
    labels = dict(zip(train_rows["id"], train_rows["category"], strict=True))
    ids = train_rows["id"].to_numpy()
    while len(flips) < count:
        product = int(rng.choice(ids))
        if product not in flips:
            flips[product] = (labels[product], str(rng.choice(classes[classes != labels[product]])))
    return flips, in_pairs


def write_flips(db: Path, flips: dict[int, tuple[str, str]]) -> None:
    with closing(sqlite3.connect(db)) as connection, connection:
        connection.executemany("UPDATE products SET category_id = ? WHERE id = ?",
                               [(flipped, product) for product, (_, flipped) in flips.items()])


def precision_recall(ranked: list[int], flipped: set[int], top: int) -> tuple[float, float]:
    shown = ranked[:top]
    hits = len(set(shown) & flipped)
    return hits / max(len(shown), 1), hits / max(len(flipped), 1)


def review(db: Path, suspects: pd.DataFrame, flips: dict[int, tuple[str, str]], workload: int) -> tuple[int, int]:
    """The simulated reviewer: the top ``workload`` suspects, a flipped label restored, any other confirmed.
    Returns (products shown, labels corrected)."""
    shown = suspects.head(workload)
    corrected = 0
    with closing(store.connect(db)) as connection, connection.begin():
        for product, given in zip(shown["product_id"], shown["given_label"], strict=True):
            decision = flips[product][0] if product in flips else given
            corrected += decision != given
            record_decision(connection, product_id=int(product), decision=decision, replaces=given, source="audit",
                            reviewer="simulated reviewer")
    return len(shown), corrected


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--categories", help="only these leaf categories, comma-separated (default: every leaf)")
    parser.add_argument("--image-backbone", default=str(config.mobilenet_v2_backbone()),
                        help="image backbone of every training and audit, or 'none' for text only")
    parser.add_argument("--folds", type=int, default=5, help="the audits' folds")
    parser.add_argument("--flip-share", type=float, default=0.03, help="share of the training labels flipped")
    parser.add_argument("--seed", type=int, default=0, help="seed of the flips and of every fold")
    args = parser.parse_args(argv)
    if not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/review.py: needs {config.fashion_dir()} (set SHARED_DIR)", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.WARNING, format="%(name)s %(levelname)s: %(message)s")  # the steps' warnings
    started = time.perf_counter()
    db, images = crawl_of(args)
    work = args.work / "review"
    work.mkdir(parents=True, exist_ok=True)
    common = ["--images", str(images), "--image-backbone", args.image_backbone, "--cache-dir",
              str(args.work / "cache"), "--min-products", str(args.min_products), "--seed", str(args.seed),
              "--no-progress"] + (["--categories", args.categories] if args.categories else [])
    training = ["--keep", "better"]  # each database's models go to its own folder, as modeling.train chooses
    seconds: dict[str, float] = {}

    def timed(step: str, function, argv: list[str]) -> None:
        t0 = time.perf_counter()
        # each step's own report and errors go to its log, ours to the console
        with open(work / f"{step}.log", "w", encoding="utf-8") as log, redirect_stdout(log), redirect_stderr(log):
            code = function(argv)
        seconds[step] = time.perf_counter() - t0
        if code != 0:
            raise SystemExit(f"bench/review.py: {step} failed (exit {code}), see {work / f'{step}.log'}")
        print(f"{step}: {seconds[step]:.0f} s", flush=True)

    # 1. the catalog as it is
    clean = copy_database(db, work / "clean.db")
    timed("train clean", train.main, ["--db", str(clean), "--labels", "crawled", *common, *training])
    clean_accuracy, clean_test = test_accuracy(clean, latest_id(clean, "experiments"))
    timed("audit clean", audit.main, ["--db", str(clean), "--folds", str(args.folds), *common])
    with closing(sqlite3.connect(clean)) as connection:
        summary = json.loads(connection.execute("SELECT summary FROM audits ORDER BY id DESC").fetchone()[0])
    as_is = suspects_of(clean, latest_id(clean, "audits"))
    errors = clean_test[clean_test["true_category"] != clean_test["predicted_category"]]
    errors_suspected = errors["product_id"].isin(as_is["product_id"]).mean() if len(errors) else float("nan")

    # 2. flips, the flipped model, its audit
    frame = select_categories(load_products(clean, None, progress=False),
                              args.categories.split(",") if args.categories else None, args.min_products)
    flips, in_pairs = choose_flips(frame, summary["overlapping_pairs"], args.flip_share, args.seed)
    flipped_db = copy_database(db, work / "flipped.db")
    write_flips(flipped_db, flips)
    timed("train flipped", train.main, ["--db", str(flipped_db), "--labels", "crawled", *common, *training])
    flipped_accuracy, _ = test_accuracy(flipped_db, latest_id(flipped_db, "experiments"))
    timed("audit flipped", audit.main, ["--db", str(flipped_db), "--folds", str(args.folds), *common])
    suspects = suspects_of(flipped_db, latest_id(flipped_db, "audits"))
    ranked = [int(p) for p in suspects["product_id"]]
    k = len(flips)
    at_k, at_2k = precision_recall(ranked, set(flips), k), precision_recall(ranked, set(flips), 2 * k)

    # 3. the reviewer, then the reviewed model
    shown, corrected = review(flipped_db, suspects, flips, 2 * k)
    timed("train reviewed", train.main, ["--db", str(flipped_db), "--labels", "reviewed", *common, *training])
    reviewed_accuracy, _ = test_accuracy(flipped_db, latest_id(flipped_db, "experiments"))
    won_back = (reviewed_accuracy - flipped_accuracy) / (clean_accuracy - flipped_accuracy) \
        if clean_accuracy > flipped_accuracy else float("nan")

    print(f"\nreview loop benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: fashion catalog"
          f"{' (' + args.categories + ')' if args.categories else ''}, {frame['category'].nunique()} categories, "
          f"{len(frame)} products ({(frame['split'] == 'train').sum()} training), image backbone "
          f"{Path(args.image_backbone).name}, {args.folds}-fold audits; {time.perf_counter() - started:.0f} s in all")
    print("\nthe catalog as it is:")
    print(f"  suspects found: {summary['suspects']} in {summary['groups']} groups, of {summary['products_audited']} "
          f"products ({summary['suspects'] / summary['products_audited']:.2%})")
    print(f"  share of the clean model's {len(errors)} test errors that are suspects: {errors_suspected:.2%}")
    print("  top overlapping pairs (cleanlab find_overlapping_classes):")
    for pair in summary["overlapping_pairs"][:10]:
        print(f"    {pair['category_a']:<28} {pair['category_b']:<28} {pair['overlapping']:>5}  "
              f"joint {pair['joint_probability']:.5f}")
    print(f"\nflips: {k} training labels ({args.flip_share:.0%}; {in_pairs} drawn inside the confused pairs, "
          f"{k - in_pairs} to a random category), seed {args.seed}")
    print(f"  audit of the flipped catalog: {len(suspects)} suspects")
    print(f"  top k={k}:   precision {at_k[0]:.3f}  recall {at_k[1]:.3f}")
    print(f"  top 2k={2 * k}: precision {at_2k[0]:.3f}  recall {at_2k[1]:.3f}")
    print(f"  reviewer's workload: {shown} products shown, {corrected} labels corrected, {shown - corrected} "
          "confirmed")
    print("\ntest accuracy (the test split is never flipped):")
    for name, value in (("clean", clean_accuracy), ("flipped", flipped_accuracy), ("reviewed", reviewed_accuracy)):
        print(f"  {name:<9} {value:.4f}")
    print(f"  accuracy the flips cost, won back by review: {won_back:.2f}")
    print("\ngoals:")
    for goal, measured in (("recall within the top 2k", at_2k[1]), ("accuracy won back by review", won_back)):
        print(f"  {goal:<30} {measured:.3f}  goal >= {GOALS[goal]}  "
              f"{'met' if measured >= GOALS[goal] else 'NOT met'}")
    print("\nsteps: " + ", ".join(f"{step} {s:.0f} s" for step, s in seconds.items()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

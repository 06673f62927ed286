"""Scale: training time and peak memory for 10k, 50k and 150k products over 250 categories; prediction speed.

Timing data, not accuracy data: product names are the shared fashion catalog's, perturbed (words shuffled, one
dropped, a random brand-like token added) and spread over 250 categories (each article type split into a few by a
hash of the product). Each training runs in its own process so that its peak RSS is its own. Prediction is timed
text-only (products/s on 10,000 products, and the latency of one product) and with photos (products/s on 256 fashion
products with a photo, embedded with the shared MobileNetV2 on a cold cache).

    .venv/bin/python bench/scale.py [--sizes 10000,50000,150000]
"""

from __future__ import annotations

import argparse
import platform
import random
import resource
import subprocess
import sys
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pandas as pd

from shopstyle_spider import config
from shopstyle_spider.sandbox.fashion import read_styles

CATEGORIES = 250
GOALS = "goals: 150k products trained in under 10 minutes within 6 GB; text-only prediction >= 2,000 products/s"


def perturbed_products(n: int, seed: int = 0) -> pd.DataFrame:
    rows = read_styles(config.fashion_dir() / "styles.csv")
    types = sorted({r["articleType"] for r in rows})
    splits = -(-CATEGORIES // len(types))  # each article type becomes up to this many categories
    rng = random.Random(seed)
    names, descriptions, categories = [], [], []
    for i in range(n):
        row = rows[rng.randrange(len(rows))]
        words = row["productDisplayName"].split()
        rng.shuffle(words)
        if len(words) > 3:
            words.pop(rng.randrange(len(words)))
        words.append(f"brand{rng.randrange(5000)}")
        part = zlib.crc32(f"{row['id']}:{i % 7}".encode()) % splits
        categories.append(f"{row['articleType']}-{part}")
        names.append(" ".join(words))
        descriptions.append(f"Colour: {row['baseColour']}. Usage: {row['usage']}.")
    frame = pd.DataFrame({"name": names, "description": descriptions, "category": categories})
    keep = frame["category"].value_counts().index[:CATEGORIES]
    return frame[frame["category"].isin(keep)].reset_index(drop=True)


def train_child(n: int) -> None:
    """Run in a child process: train the text model on n products and print the seconds it took."""
    from modeling.stacking import ProductClassifier

    frame = perturbed_products(n)
    started = time.perf_counter()
    ProductClassifier().fit(frame, frame["category"])
    print(f"{time.perf_counter() - started:.1f} {frame['category'].nunique()}")


def predict_speeds() -> dict[str, float]:
    from modeling.data import load_products
    from modeling.image import ImageEmbedder
    from modeling.stacking import ProductClassifier

    frame = perturbed_products(20_000, seed=1)
    model = ProductClassifier().fit(frame[:10_000], frame["category"][:10_000])
    test = frame[10_000:].reset_index(drop=True)
    started = time.perf_counter()
    model.predict_proba(test)
    text_rate = len(test) / (time.perf_counter() - started)
    latencies = []
    for i in range(50):
        started = time.perf_counter()
        model.predict_proba(test[i:i + 1])
        latencies.append(time.perf_counter() - started)

    db = config.data_dir() / "bench" / "fashion" / "crawl.db"
    photos_rate = float("nan")
    if db.is_file():
        products = load_products(db, db.parent / "images").dropna(subset=["image_path"])
        train, test_photos = products[:2000], products[2000:2256]
        with tempfile.TemporaryDirectory() as cache:
            embedder = ImageEmbedder(str(config.mobilenet_v2_backbone()), cache_dir=cache, progress=False)
            stacked = ProductClassifier(image=embedder).fit(train, train["category"])
        with tempfile.TemporaryDirectory() as cache:
            stacked.image_.set_params(cache_dir=cache)
            started = time.perf_counter()
            stacked.predict_proba(test_photos)
            photos_rate = len(test_photos) / (time.perf_counter() - started)
    return {"text": text_rate, "latency_ms": 1000 * float(np.median(latencies)), "photos": photos_rate}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--sizes", default="10000,50000,150000", help="training set sizes, comma-separated")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        train_child(args.child)
        return 0
    if not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/scale.py: needs {config.fashion_dir()} (set SHARED_DIR)", file=sys.stderr)
        return 2
    print(f"scale benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: perturbed fashion names over "
          f"{CATEGORIES} categories (timing data, not accuracy data); text model, its fusion trained on a fifth "
          "held out (the default, --cv 0.2)")
    print(f"{'products':>9} {'categories':>11} {'train s':>8} {'peak RSS GB':>12}")
    for n in (int(s) for s in args.sizes.split(",")):
        result = subprocess.run([sys.executable, str(Path(__file__).resolve()), "--child", str(n)],
                                capture_output=True, text=True)
        if result.returncode != 0:
            print(result.stderr[-3000:], file=sys.stderr)
            return 1
        seconds, categories = result.stdout.split()
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2  # the largest child so far
        print(f"{n:>9} {categories:>11} {float(seconds):>8.1f} {peak:>12.2f}", flush=True)
    speeds = predict_speeds()
    print(f"prediction, text only: {speeds['text']:.0f} products/s; one product: {speeds['latency_ms']:.1f} ms; "
          f"with photos (cold embedding cache): {speeds['photos']:.1f} products/s")
    print(f"text-only prediction vs the 2,000 products/s goal: {speeds['text'] / 2000:.2f}x")
    print(GOALS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

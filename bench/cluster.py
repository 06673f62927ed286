"""Training on this machine alone vs on a Dask LocalCluster of this machine: what the cluster costs, and that it
trains the same model.

On two cores a cluster cannot be faster than the local run (the workers share the cores the local run already
uses, and photos and data travel between processes); the ratio shows the overhead, and the comparison of the two
models' test predictions shows correctness. Both runs start from a cold embedding cache, so both embed every photo.
The crawl half of the comparison, one crawl process vs two sharing a crawl through Redis, is in ``bench/crawl.py``
(its ``ours x2`` row).

    .venv/bin/python bench/cluster.py [--db data/bench/fashion/crawl.db --images data/bench/fashion/images]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import joblib
import numpy as np
from accuracy import add_crawl_arguments, crawl_of

from modeling import train
from modeling.data import load_products, select_categories
from shopstyle_spider import config


def timed_training(db: Path, images: Path, out: Path, min_products: int, *extra: str) -> tuple[float, Path]:
    started = time.perf_counter()
    code = train.main(["--db", str(db), "--images", str(images), "--out", str(out), "--cache-dir", str(out / "cache"),
                       "--min-products", str(min_products), "--no-progress", "--keep", "stacked",
                       "--name", "bench distributed", *extra])
    if code != 0:
        raise SystemExit(f"training failed (exit {code})")
    card = json.loads(max(out.glob("*.json"), key=lambda p: p.stat().st_mtime).read_text())
    return time.perf_counter() - started, out / f"{card['experiment_id']}.joblib"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_crawl_arguments(parser)
    parser.add_argument("--workers", type=int, default=2, help="LocalCluster worker processes (1 thread each)")
    args = parser.parse_args(argv)
    try:
        import distributed
    except ImportError:
        print("bench/cluster.py: needs dask.distributed (pip install -e '.[scale]')", file=sys.stderr)
        return 2
    if args.db is None and not (config.fashion_dir() / "styles.csv").is_file():
        print(f"bench/cluster.py: needs {config.fashion_dir()} (set SHARED_DIR)", file=sys.stderr)
        return 2
    args.db, images = crawl_of(args)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        local_seconds, local_model = timed_training(args.db, images, folder / "local", args.min_products)
        with distributed.LocalCluster(n_workers=args.workers, threads_per_worker=1, host="127.0.0.1",
                                      dashboard_address=None) as cluster:
            cluster_seconds, cluster_model = timed_training(args.db, images, folder / "cluster", args.min_products,
                                                            "--cluster", cluster.scheduler_address)
        frame = select_categories(load_products(args.db, images, progress=False), min_products=args.min_products)
        test = frame[frame["split"] == "test"]
        local, remote = joblib.load(local_model), joblib.load(cluster_model)
        same = float((local.predict(test) == remote.predict(test)).mean())
        gap = float(np.abs(local.predict_proba(test) - remote.predict_proba(test)).max())

    print(f"\ncluster benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: fashion catalog, "
          f"{len(frame)} products ({frame['image_path'].notna().sum()} photos), cold embedding caches")
    print(f"{'training':<34} {'seconds':>8}")
    print(f"{'this machine':<34} {local_seconds:>8.1f}")
    print(f"{f'LocalCluster, {args.workers} workers x 1 thread':<34} {cluster_seconds:>8.1f}")
    print(f"cluster / local time: {cluster_seconds / local_seconds:.2f}x (on one machine the workers share the "
          "local run's cores: this is the cluster's cost, not a speed-up to expect from more machines)")
    print(f"test predictions identical: {same:.2%}; largest probability difference {gap:.1e} "
          "(the workers run BLAS on one thread, so float sums may differ in order)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

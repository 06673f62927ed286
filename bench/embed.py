"""Embedding speed: the image branch end to end against the same network's pure inference, on real photos.

End to end is what ``ImageEmbedder.transform`` does on a cold cache: read each file, hash it, decode and resize
it (in threads, overlapped with the network), embed, write the cache. Pure inference is the network alone on
tensors already in memory. Their ratio is what the input pipeline loses; the goal is >= 0.9. Measured for the
shared MobileNetV2 and for InceptionV3 with random weights (its architecture's cost; no download needed).

    .venv/bin/python bench/embed.py [--photos 512] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import platform
import sys
import tempfile
import time

import numpy as np

from modeling.image import ImageEmbedder, read_photo
from shopstyle_spider import config


def measure(backbone: str, weights: str | None, paths: list[str], batch_size: int) -> dict[str, float]:
    """Both rates after one warm-up batch through each path (graph tracing and memory allocation happen once per
    process, outside both timings); ``paths[0]``'s batch warms up, the others are timed on a cold cache."""
    warm_up, paths = paths[:batch_size], paths[batch_size:]
    with tempfile.TemporaryDirectory() as cache:
        embedder = ImageEmbedder(backbone, weights=weights, batch_size=batch_size, cache_dir=cache,
                                 progress=False).fit()
        network = embedder.network()
        size = network.input_size
        pixels = np.stack([read_photo(p, size) for p in warm_up])
        network.embed(pixels)
        embedder.transform(warm_up)
        started = time.perf_counter()
        for start in range(0, len(paths), batch_size):
            network.embed(pixels[:min(batch_size, len(paths) - start)])
        inference = len(paths) / (time.perf_counter() - started)
        started = time.perf_counter()
        vectors = embedder.transform(paths)
        end_to_end = len(paths) / (time.perf_counter() - started)
        assert not np.isnan(vectors).any()
    return {"end_to_end": end_to_end, "inference": inference}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--photos", type=int, default=512, help="how many of the shared fashion photos to time")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per network call")
    args = parser.parse_args(argv)
    photos = sorted(str(p) for p in (config.fashion_dir() / "images").glob("*.jpg"))[:args.photos + args.batch_size]
    backbone = config.mobilenet_v2_backbone()
    if len(photos) < 2 * args.batch_size or not backbone.is_file():
        print(f"bench/embed.py: needs photos in {config.fashion_dir()} and {backbone} (set SHARED_DIR)",
              file=sys.stderr)
        return 2
    print(f"embedding benchmark, {time.strftime('%Y-%m-%d')}, {platform.node()}: "
          f"{len(photos) - args.batch_size} fashion photos (after a warm-up batch), batch {args.batch_size}")
    print(f"{'backbone':<34} {'end to end/s':>13} {'inference/s':>12} {'ratio':>6}")
    for label, spec, weights in (("mobilenet_v2 (shared, ImageNet)", str(backbone), None),
                                 ("inception_v3 (random weights)", "inception_v3", None)):
        r = measure(spec, weights, photos, args.batch_size)
        print(f"{label:<34} {r['end_to_end']:>13.1f} {r['inference']:>12.1f} "
              f"{r['end_to_end'] / r['inference']:>6.2f}", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

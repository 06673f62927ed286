"""Embedding speed: the image branch end to end on each inference runtime, against Keras, in the same run.

End to end is what ``ImageEmbedder.transform`` does on a cold cache: read each file, hash it, decode and resize
it (in threads, overlapped with the network), embed, write the cache. Pure inference is the network alone on
tensors already in memory. For each runtime (Keras, OpenVINO) it prints both rates, their ratio (what the input
pipeline loses; goal >= 0.9), end to end against Keras' end to end (goal >= 2x), and the share of the machine's
peak the inference reaches: the network's GFLOP per photo (2 x its multiply-adds, counted from its layers) times
photos/s, against a float32 matrix product measured on the same cores with NumPy's BLAS. The conversion to
OpenVINO (once per backbone, then kept beside the embedding cache) is timed apart.

Each rate is the best of ``--repeats`` timings, pure inference and end to end taken in turn, each end-to-end timing
on photos of its own (a cold cache every time): on a shared 2-core VM a single timing moves by a third with the
neighbours' load, and the best of a few is the machine's own speed (``timeit``'s advice). The median ratio of the
repeats is printed beside the best.

    .venv/bin/python bench/embed.py [--photos 512] [--repeats 3] [--batch-size 32]
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

from modeling.backbones import keras_module, load_backbone
from modeling.image import ImageEmbedder, read_photo
from shopstyle_spider import config


def network_gflop(backbone: str) -> float:
    """GFLOP per photo: 2 x the multiply-adds of the network's convolutions and dense layers (the rest, batch norms,
    activations and additions, is under 1% of MobileNetV2's work), nested models included."""
    keras = keras_module()

    def layers(model):
        for layer in model.layers:
            yield from layers(layer) if isinstance(layer, keras.Model) else (layer,)

    macs = 0
    for layer in layers(load_backbone(backbone, None).model):
        if isinstance(layer, keras.layers.DepthwiseConv2D):
            _, height, width, channels = layer.output.shape
            macs += height * width * channels * int(np.prod(layer.kernel_size)) * layer.depth_multiplier
        elif isinstance(layer, keras.layers.Conv2D):
            _, height, width, filters = layer.output.shape
            macs += height * width * filters * int(np.prod(layer.kernel_size)) * layer.input.shape[-1] // layer.groups
        elif isinstance(layer, keras.layers.Dense):
            macs += layer.input.shape[-1] * layer.units
    return 2 * macs / 1e9


def matmul_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The best of ``repeats`` float32 (size x size) matrix products on every core, in GFLOP/s."""
    rng = np.random.default_rng(0)
    a, b = rng.random((size, size), dtype=np.float32), rng.random((size, size), dtype=np.float32)
    a @ b
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        a @ b
        best = min(best, time.perf_counter() - started)
    return 2 * size ** 3 / best / 1e9


def measure(backbone: str, runtime: str, warm_up: list[str], photo_sets: list[list[str]],
            batch_size: int) -> dict[str, float]:
    """Both rates, the best of one timing per photo set, interleaved (pure inference, then end to end on that set)
    so that a busy spell of the shared machine slows one repeat of each, not one path. Each set's photos are new to
    the cache, so every end-to-end repeat is cold. One warm-up batch through each path first (graph tracing,
    compilation and memory allocation happen once per process, outside every timing)."""
    with tempfile.TemporaryDirectory() as cache:
        started = time.perf_counter()
        embedder = ImageEmbedder(backbone, batch_size=batch_size, cache_dir=cache, progress=False,
                                 runtime=runtime).fit()
        built = time.perf_counter() - started
        network = embedder.network()
        pixels = np.stack([read_photo(p, network.input_size) for p in warm_up]).astype(np.float32)
        network.embed(pixels)
        embedder.transform(warm_up)
        inference, end_to_end = [], []
        for paths in photo_sets:
            started = time.perf_counter()
            for start in range(0, len(paths), batch_size):
                network.embed(pixels[:min(batch_size, len(paths) - start)])
            inference.append(len(paths) / (time.perf_counter() - started))
            started = time.perf_counter()
            vectors = embedder.transform(paths)
            end_to_end.append(len(paths) / (time.perf_counter() - started))
            assert not np.isnan(vectors).any()
    return {"end_to_end": max(end_to_end), "inference": max(inference), "built": built,
            "median_ratio": float(np.median(np.asarray(end_to_end) / np.asarray(inference)))}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--photos", type=int, default=512, help="photos a timing embeds")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timings of each path, each on photos of its own; the best of them is reported")
    parser.add_argument("--batch-size", type=int, default=32, help="photos per network call")
    parser.add_argument("--backbone", default=str(config.mobilenet_v2_backbone()),
                        help="the .keras backbone to time (raw RGB in, pooled features out)")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.photos < args.batch_size:
        parser.error("--repeats must be at least 1 and --photos at least --batch-size")
    photos = sorted(str(p) for p in (config.fashion_dir() / "images").glob("*.jpg"))
    warm_up = photos[:args.batch_size]
    photo_sets = [photos[start:start + args.photos]
                  for start in range(args.batch_size, args.batch_size + args.repeats * args.photos, args.photos)]
    if len(photo_sets[-1]) < args.photos or not os.path.isfile(args.backbone):
        print(f"bench/embed.py: needs photos in {config.fashion_dir()} and {args.backbone} (set SHARED_DIR)",
              file=sys.stderr)
        return 2
    gflop = network_gflop(args.backbone)
    peak = matmul_gflops()
    print(f"embedding benchmark, {time.strftime('%Y-%m-%d %H:%M')}, {platform.node()}, {os.cpu_count()} cores: "
          f"best of {args.repeats} timings of {args.photos} fashion photos each (after a warm-up batch), "
          f"batch {args.batch_size}; "
          f"{os.path.basename(args.backbone)}: {gflop:.3f} GFLOP a photo; float32 matmul peak {peak:.0f} GFLOP/s")
    print(f"{'runtime':<9} {'built s':>8} {'end to end/s':>13} {'inference/s':>12} {'e2e/inference':>14} "
          f"{'e2e vs keras':>13} {'inference GFLOP/s':>18} {'of peak':>8} {'median e2e/inf':>15}")
    results = {}
    for runtime in ("keras", "openvino"):
        results[runtime] = r = measure(args.backbone, runtime, warm_up, photo_sets, args.batch_size)
        print(f"{runtime:<9} {r['built']:>8.1f} {r['end_to_end']:>13.1f} {r['inference']:>12.1f} "
              f"{r['end_to_end'] / r['inference']:>14.2f} {r['end_to_end'] / results['keras']['end_to_end']:>12.2f}x"
              f" {r['inference'] * gflop:>18.1f} {r['inference'] * gflop / peak:>8.1%} {r['median_ratio']:>15.2f}",
              flush=True)
    fast = results["openvino"]
    print(f"goals: OpenVINO end to end {fast['end_to_end'] / results['keras']['end_to_end']:.2f}x Keras' (>= 2x), "
          f"{fast['end_to_end'] / fast['inference']:.2f} of its pure inference (>= 0.9)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

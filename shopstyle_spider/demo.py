"""``make demo``: the whole job end to end on the built-in synthetic catalog, with no API key or network needed.

It starts the sandbox, crawls it into ``data/demo/`` (database and photos), trains a model on the crawl (text and,
where ``../shared`` has the offline MobileNetV2, photos; run again, the new model goes into service only if it is
no worse, as ``modeling.train --promote if-better`` decides), predicts a few new products drawn from another seed
of the catalog (none of them crawled) and then the whole crawl with the model in service (queueing what it cannot
file for a person), audits the crawl's labels (text only: a second), writes the report, and says how to open it and
the review app (``make review``), where both queues then hold cards.
Each stage runs as the command a user would type, in a subprocess; what TensorFlow's C++ runtime prints on its own
(its absl INFO lines, which no log level silences) is left out of the demo's output.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from pathlib import Path

from sqlalchemy import text

from . import cli, config, schema
from .runner import LIBRARY_NOISE, crawl_summary, run_crawl
from .sandbox import SandboxProcess
from .sandbox.synthetic import generate

DEMO_KEY = "sandbox-key"
STEPS = 8
# The demo files at the leaf or sends to a person (never at the parent: the synthetic catalog's parents are so easy
# that every product would be filed under one, and the review app's queue would stay empty), at the highest target
# that a catalog of its size can promise at the leaf with 95% confidence. The review app files by the same rule
# (the Makefile's review target, and the command step 8 prints).
TARGET = 0.95
LEVELS = "leaf"

def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m shopstyle_spider.demo", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--seed", type=int, default=0, help="seed of the synthetic catalog")
    parser.add_argument("--products-per-category", type=int, default=60, help="products in each of the 27 leaves")
    parser.add_argument("--out", default=str(config.demo_dir()),
                        help="folder for the demo's database (crawl.db) and photos (images/)")
    args = parser.parse_args(argv)
    out = Path(args.out)
    db, images = out / "crawl.db", out / "images"

    with SandboxProcess("--seed", str(args.seed), "--products-per-category", str(args.products_per_category),
                        "--api-key", DEMO_KEY) as sandbox:
        step(1, f"sandbox serving the synthetic catalog at {sandbox.url}")
        step(2, f"crawling it into {db} and {images} ...")
        started = time.perf_counter()
        result = run_crawl(sandbox.url, db, images, api_key=DEMO_KEY, settings={"STATS_DUMP": False})
    if result.returncode != 0:
        print(result.stderr[-5000:], file=sys.stderr)
        print(f"the crawl failed (exit {result.returncode})", file=sys.stderr)
        return result.returncode
    print("\n".join(crawl_summary(result.stderr)))
    print(f"    crawled in {time.perf_counter() - started:.0f} s")
    show_crawl(db)

    backbone = config.mobilenet_v2_backbone()
    backbone_arg = str(backbone) if backbone.is_file() else "none"
    step(3, f"training on the crawl (image backbone: {backbone_arg}) ...")
    started = time.perf_counter()
    models = out / "models"
    code = run_module("modeling.train", "--db", str(db), "--images", str(images), "--out", str(models),
                      "--image-backbone", backbone_arg, "--name", "demo", "--promote", "if-better",
                      "--promote-targets", str(TARGET), "--levels", LEVELS)
    if code != 0:
        return code
    print(f"    trained in {time.perf_counter() - started:.0f} s")

    step(4, "predicting new products with the model in service (python -m modeling.models current)")
    source, predictions = out / "new_products.jsonl", out / "predictions.jsonl"
    write_new_products(args.seed, source)
    code = run_module("modeling.predict", "--input", str(source), "--output",
                      str(predictions), "--queue", str(db), "--photo-store", str(images), "--target-accuracy",
                      str(TARGET), "--levels", LEVELS, "--no-progress")
    if code != 0:
        return code
    for line in predictions.read_text(encoding="utf-8").splitlines():
        p = json.loads(line)
        if "error" in p:
            print(f"  line {p['line']}: {p['error']}")
            continue
        others = ", ".join(f"{a['category']} {a['score']:.2f}" for a in p["alternatives"])
        print(f"  {str(p['id']):<10} {p['category']:<18} {p['score']:.2f}  "
              f"{'photo+text' if p['photo_used'] else 'text only':<10} (then {others})")

    step(5, f"filing the whole crawl at the leaf at {TARGET:.0%} accuracy; what the model cannot file goes to a "
            "person")
    filed = out / "filed.jsonl"
    code = run_module("modeling.predict", "--db", str(db), "--images", str(images),
                      "--output", str(filed), "--queue", "--target-accuracy", str(TARGET), "--levels", LEVELS,
                      "--no-progress")
    if code != 0:
        return code
    lines = [json.loads(line) for line in filed.read_text(encoding="utf-8").splitlines()]
    decisions = Counter(p.get("decision", "error") for p in lines)
    print("  " + ", ".join(f"{decisions[d]} {label}" for d, label in
                           (("leaf", "filed at the leaf"), ("parent", "filed at the parent"),
                            ("review", "queued for a person")) if decisions[d]))
    unseen = held_out_products(db)
    fresh = Counter(p.get("decision") for p in lines if p.get("id") in unseen)
    print(f"  of the {sum(fresh.values())} products of its test split (kept from training and from choosing the "
          f"thresholds), {fresh['leaf'] / max(sum(fresh.values()), 1):.0%} filed at the leaf:\n"
          f"  the {TARGET:.0%} promise is made for such products, as for the new ones a weekly cycle files (those it "
          "trained on score surer than they are)")

    step(6, "auditing the crawl's labels (text only): the suspects become the review app's second queue")
    code = run_module("modeling.audit", "--db", str(db), "--images", str(images), "--image-backbone", "none",
                      "--no-progress")
    if code != 0:
        return code

    report = out / "report"
    step(7, f"writing the report into {report}")
    code = run_module("modeling.analyze", "--db", str(db), "--plots", str(report))
    if code != 0:
        return code
    step(8, "where to look next")
    print(f"  the report:     open {(report / 'index.html').resolve().as_uri()}")
    # its model in service, filing by the demo's rule (the Makefile's review target passes the same)
    serve = (f"{sys.executable} -m modeling.review --db {db} --images {images} --target-accuracy {TARGET} "
             f"--levels {LEVELS}")
    if out == config.data_dir() / "demo":
        serve = f"make review   (that is: {serve})"
    print(f"  the review app: {serve}")
    print("                  then open http://127.0.0.1:8000/: file the products the model was unsure of, and "
          "settle the suspect labels")
    print(f"\nrun it again and the crawl finds everything complete: {sys.executable} -m shopstyle_spider.demo")
    return 0


def step(number: int, what: str) -> None:
    """A step's heading, after a blank line once the demo has said something."""
    print(("\n" if number > 1 else "") + f"{number}/{STEPS} {what}", flush=True)


def run_module(module: str, *args: str) -> int:
    """Run ``python -m module args`` as a user would, its standard error passed on line by line without the
    library noise (so its progress comes as plain lines: it is not a terminal)."""
    with subprocess.Popen([sys.executable, "-m", module, *args], cwd=config.PROJECT_ROOT, stderr=subprocess.PIPE,
                          text=True, errors="replace") as process:
        for line in process.stderr:
            if not LIBRARY_NOISE.match(line):
                sys.stderr.write(line)
                sys.stderr.flush()
    code = process.returncode
    if code != 0:
        print(f"python -m {module} failed (exit {code})", file=sys.stderr)
    return code


def show_crawl(db: Path) -> None:
    with closing(schema.connect(db, readonly=True)) as connection:
        leaves = connection.execute(text(
            "SELECT category_id, count(*), sum(CASE WHEN image_status = 'ok' THEN 1 ELSE 0 END) FROM products "
            "GROUP BY category_id ORDER BY category_id")).fetchall()
        sample = connection.execute(text(
            "SELECT id, category_id, name, image_path FROM products ORDER BY id LIMIT 5")).fetchall()
    print(f"\nstored {sum(n for _, n, _ in leaves)} products in {len(leaves)} leaf categories, "
          f"{sum(ok for *_, ok in leaves)} with their photo; for example:")
    for product_id, category, name, image_path in sample:
        print(f"  {product_id}  {category:<20} {name:<45} {image_path or 'no photo'}")


def held_out_products(db: Path) -> set[int]:
    """The crawled products of the latest experiment's test split: neither its model nor its filing thresholds
    were chosen on them (the thresholds come from out-of-fold and validation predictions)."""
    with closing(schema.connect(db, readonly=True)) as connection:
        return set(connection.execute(text(
            "SELECT product_id FROM predictions WHERE split = 'test' AND experiment_id = "
            "(SELECT max(id) FROM experiments)")).scalars())


def write_new_products(seed: int, path: Path) -> None:
    """Products to predict: a few invented ones (text only) and a few drawn from another seed of the synthetic
    catalog with their photos (new names, new photos: none is a crawled product, so none is queued twice)."""
    invented = [
        {"id": "new-1", "name": "Ripped skinny jeans with frayed hem", "description": "<p>Stretch denim</p>"},
        {"id": "new-2", "name": "Sequin evening gown", "description": "Floor length, <b>silk</b> lining"},
        {"id": "new-3", "name": "Chunky cable-knit cardigan", "description": ""},
        {"id": "new-4", "name": "", "description": "a record without a name: reported, not predicted"},
    ]
    other = generate(seed + 1, products_per_category=1)
    photos = path.parent / "new_photos"
    photos.mkdir(parents=True, exist_ok=True)
    drawn = []
    for product in other.products():
        photo = other.images.original(product.id)
        if photo is None or not product.description:
            continue
        record_id = f"new-{len(invented) + len(drawn) + 1}"
        (photos / f"{record_id}.jpg").write_bytes(photo)
        drawn.append({"id": record_id, "name": product.name, "description": product.description,
                      "image_path": f"{photos.name}/{record_id}.jpg"})  # relative to the file's folder
        if len(drawn) == 3:
            break
    path.write_text("".join(json.dumps(record) + "\n" for record in invented + drawn), encoding="utf-8")


if __name__ == "__main__":
    raise SystemExit(main())

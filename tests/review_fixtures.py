"""A crawl with a trained text-only model, a filing queue and an audit's label issues, for the review app's tests.

Built once per test session from the synthetic crawl (a real sqlite file, real photos, a real model): the filing
queue is written by ``modeling.predict --queue`` itself; the audit's rows are written here by hand, as the audit
(built on another branch) would write them, with hostile text in one product.
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

from modeling import predict, store, train
from modeling.data import split_of

HOSTILE_NAME = "Silk blouse <script>alert('name')</script>"
# Entities decode to markup when the description is cleaned: the page must show it as text, escaped once.
HOSTILE_DESCRIPTION = ("&lt;script&gt;window.pwned=1&lt;/script&gt; &lt;img src=x onerror=\"window.pwned=2\"&gt; "
                       "<b onmouseover=\"window.pwned=3\">soft</b> &amp; light")


@dataclass
class ReviewSetup:
    db: Path
    images: Path
    model: Path
    new_products: Path  # the JSONL file queued for filing
    groups: dict[str, list[int]]  # the audit's groups: key -> product ids, worst group first


def copy_db(source: Path, target: Path) -> Path:
    with sqlite3.connect(source) as original, sqlite3.connect(target) as copy:
        original.backup(copy)
    return target


def build(synthetic_crawl, folder: Path) -> ReviewSetup:
    source, crawled_images, _ = synthetic_crawl
    db = copy_db(source, folder / "crawl.db")
    # an image store of its own: queueing a file product copies its photo into the store, and the session's crawl
    # is the reference the crawler's tests compare their photos with
    images = Path(shutil.copytree(crawled_images, folder / "images"))
    models = folder / "models"
    assert train.main(["--db", str(db), "--images", str(images), "--image-backbone", "none", "--out", str(models),
                       "--min-products", "5", "--no-progress", "--name", "review test"]) == 0
    model = next(models.glob("*.joblib"))
    with sqlite3.connect(db) as connection:  # analyze finds the photos through what training recorded
        (parameters,), = connection.execute("SELECT parameters FROM experiments")
    assert json.loads(parameters)["images"] == str(images.resolve())
    with sqlite3.connect(db) as connection:
        crawled = [row for row in connection.execute("SELECT id, name, description, image_path, category_id FROM "
                                                     "products WHERE image_status = 'ok' ORDER BY id LIMIT 40")
                   if split_of(row[0]) != "test"][:8]  # the suspect queue never shows a test product
    records = [{"id": "new-hostile", "name": HOSTILE_NAME, "description": HOSTILE_DESCRIPTION},
               {"id": "new-plain", "name": "Chunky cable-knit cardigan", "description": ""},
               {"id": "new-outside", "name": "Wrap dress", "description": "a photo path leading out of the store",
                "image_path": str(folder / "outside.jpg")},
               *({"id": f"crawled-{pid}", "name": name, "description": description,
                  "image_path": str(images / image_path)} for pid, name, description, image_path, _ in crawled[:2]),
               {"id": "bad", "description": "no name: an error line, never queued"}]
    (folder / "outside.jpg").write_bytes((images / crawled[0][3]).read_bytes())
    new_products = folder / "new_products.jsonl"
    new_products.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    assert predict.main(["--model", str(model), "--input", str(new_products), "--output", str(folder / "out.jsonl"),
                         "--queue", str(db), "--photo-store", str(images), "--no-progress"]) == 0
    # The audit: three groups, worst first; the second holds three copies of one product.
    groups = {"first": [crawled[2][0]], "copies": [crawled[3][0], crawled[4][0], crawled[5][0]],
              "last": [crawled[6][0]]}
    labels = {pid: category for pid, *_, category in crawled}
    with store.connect(db) as connection, connection.begin():
        connection.execute(store.audits.insert().values(id=1, created_at="2026-01-01T00:00:00+00:00",
                                                        parameters="{}", summary="{}"))
        rank = 0
        for key, members in groups.items():
            for pid in members:
                rank += 1
                connection.execute(store.label_issues.insert().values(
                    audit_id=1, product_id=pid, given_label=labels[pid], suggested_label="bootcut-jeans",
                    quality=0.01 * rank, given_score=0.1, suggested_score=0.8, group_key=key, rank=rank))
    return ReviewSetup(db=db, images=images, model=model, new_products=new_products, groups=groups)

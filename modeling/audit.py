"""``python -m modeling.audit``: find the crawled labels the catalog itself contradicts, worst first.

A model trained on a catalog learns what most of its products say; a product whose label disagrees with everything
like it is more likely mislabelled than misunderstood. Every labelled product (every split) gets probabilities from
a model that never saw it: ``--folds K`` fits the training's own ``ProductClassifier`` with K folds and reads the
stacked out-of-fold probabilities it computes anyway (``fit_out_of_fold``: each branch trained K + 1 times; photos
come from the embedding cache, so only new photos are embedded).
``--model M`` uses a trained model's probabilities instead, in seconds, but a model is sure of the products it was
trained on, so it finds fewer suspects among those.

cleanlab then names the suspects (``find_label_issues``), scores every label's quality by self-confidence (the
probability of the given label; ``get_label_quality_scores``) and finds the pairs of categories the catalog confuses
(``find_overlapping_classes``). Suspects that are copies of one product (``copy_groups``) form one group, so one
decision can settle every copy. Test-split products are audited but never listed (their labels score the model).
The labels audited are the ones in force: a person's decision (``modeling.reviews``) replaces the crawled label,
excluded products are left out, and a product a person already decided is never a suspect again.

Results go to the database (an ``audits`` row and its ``label_issues``, which the review app reads), and on request
to JSON (``--json``) and an HTML page with photos (``--html``).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd
from cleanlab.dataset import find_overlapping_classes
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
from sqlalchemy import insert

from shopstyle_spider import cli, config, schema

from . import report, store
from .backbones import BackboneError
from .data import DataError, load_products, select_categories, with_reviewed_labels
from .fields import is_missing
from .image import ImageEmbedder
from .persistence import ModelFileError, load_model
from .photo_store import PhotoStoreError, crawl_images, images_location
from .registry import RegistryError, serving_path
from .runtime import RUNTIME_HELP, RUNTIMES
from .stacking import ProductClassifier
from .text import clean_text, make_text_pipeline

__all__ = ["AuditResult", "audit_labels", "copy_groups", "group_key", "record_audit"]

log = logging.getLogger("modeling.audit")
SERVING = Path("<the model in service>")  # --model without a file

OVERLAPPING_PAIRS = 20  # category pairs kept in an audit's summary


def group_key(name: object) -> str:
    """The cleaned name, lower-cased: the first thing copies of one product share (``copy_groups`` says the rest).

    >>> group_key("Catwalk  <b>Flats</b>") == group_key("catwalk flats")
    True
    """
    return clean_text(name).lower()


def copy_groups(rows: pd.DataFrame) -> list[str]:
    """Each row's group: copies of one product share it. Copies have the same cleaned name and brand, and the same
    (non-empty) description or the same photo, so two different products with one generic name ("Northwind Bag", a
    shoulder bag and a clutch) stay separate cards; a group's key is its cleaned name and its smallest product id.

    >>> rows = pd.DataFrame({"id": [1, 2, 3, 4], "name": ["Bag", "bag", "Bag", "Bag"], "brand": ["N", "N", "N", "O"],
    ...                      "description": ["soft", "soft", "clutch", "soft"], "image_path": [None, "a", "a", None]})
    >>> copy_groups(rows)
    ['bag/1', 'bag/1', 'bag/1', 'bag/4']
    """
    parent = list(range(len(rows)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    names = [group_key(name) for name in rows["name"]]
    brands = [group_key(brand) for brand in rows["brand"]] if "brand" in rows else [""] * len(rows)
    seen: dict[tuple, int] = {}
    for i, (name, brand, description, photo) in enumerate(zip(
            names, brands, rows["description"], rows["image_path"], strict=True)):
        for kind, value in (("description", group_key(description)), ("photo", None if is_missing(photo) else photo)):
            if not value:
                continue
            first = seen.setdefault((name, brand, kind, value), i)
            parent[root(i)] = root(first)
    smallest: dict[int, int] = {}
    for i, product_id in enumerate(rows["id"]):
        smallest[root(i)] = min(smallest.get(root(i), product_id), product_id)
    return [f"{names[i]}/{smallest[root(i)]}" for i in range(len(rows))]


class AuditResult:
    """What one audit found: the suspects (worst first), cleanlab's overlapping pairs, and counts."""

    def __init__(self, suspects: pd.DataFrame, overlapping: pd.DataFrame, audited: int, classes: int):
        self.suspects = suspects
        self.overlapping = overlapping
        self.audited = audited
        self.classes = classes

    def summary(self) -> dict:
        return {"products_audited": self.audited, "categories": self.classes, "suspects": len(self.suspects),
                "groups": int(self.suspects["group_key"].nunique()) if len(self.suspects) else 0,
                "overlapping_pairs": self.overlapping.head(OVERLAPPING_PAIRS).to_dict("records")}


def audit_labels(frame: pd.DataFrame, proba: np.ndarray, classes: np.ndarray) -> AuditResult:
    """cleanlab over the given labels (``frame["category"]``) and out-of-fold ``proba`` laid out on ``classes``.

    Products whose label is not among ``classes`` cannot be audited and are left out; a product a person decided
    (``frame["reviewed"]``, where present), or one of the test split, is audited with the others but never listed
    as a suspect.
    """
    known = frame["category"].isin(classes).to_numpy()
    frame, proba = frame[known].reset_index(drop=True), proba[known]
    present = np.isin(classes, frame["category"].unique())  # cleanlab wants every column's class among the labels
    classes, proba = classes[present], proba[:, present]
    proba = proba / np.clip(proba.sum(1, keepdims=True), 1e-12, None)
    labels = np.searchsorted(classes, frame["category"].to_numpy().astype(str))
    quality = get_label_quality_scores(labels, proba, method="self_confidence")
    ranked = find_label_issues(labels, proba, return_indices_ranked_by="self_confidence", n_jobs=1)
    if "reviewed" in frame:
        ranked = ranked[~frame["reviewed"].to_numpy()[ranked]]
    if "split" in frame:  # a test product relabelled toward the audit's advice would make test figures flatter it
        ranked = ranked[frame["split"].to_numpy()[ranked] != "test"]
    others = proba[ranked].copy()
    others[np.arange(len(ranked)), labels[ranked]] = -1.0  # the suggestion is the best label other than the given
    suggested = others.argmax(1)
    rows = frame.iloc[ranked]
    suspects = pd.DataFrame({
        "product_id": rows["id"].to_numpy(), "given_label": classes[labels[ranked]],
        "suggested_label": classes[suggested], "quality": quality[ranked],
        "given_score": proba[ranked, labels[ranked]], "suggested_score": proba[ranked, suggested],
        "group_key": copy_groups(rows), "rank": np.arange(1, len(ranked) + 1),
        "name": rows["name"].to_numpy(), "description": rows["description"].to_numpy(),
        "image_path": rows["image_path"].to_numpy(),
    })
    overlapping = find_overlapping_classes(labels=labels, pred_probs=proba, class_names=list(classes)) \
        if len(classes) > 1 else pd.DataFrame()
    overlapping = overlapping.rename(columns={
        "Class Name A": "category_a", "Class Name B": "category_b", "Num Overlapping Examples": "overlapping",
        "Joint Probability": "joint_probability"}).drop(columns=["Class Index A", "Class Index B"], errors="ignore")
    return AuditResult(suspects, overlapping.reset_index(drop=True), len(frame), len(classes))


def record_audit(db: str | Path, parameters: dict, result: AuditResult) -> int:
    """One transaction: the audit row and its suspects."""
    columns = [column.name for column in store.label_issues.columns if column.name != "audit_id"]
    with closing(store.connect(db)) as connection, connection.begin():
        audit_id = connection.execute(insert(store.audits).values(
            created_at=datetime.now(UTC).isoformat(timespec="seconds"), parameters=json.dumps(parameters),
            summary=json.dumps(result.summary(), default=float))).inserted_primary_key[0]
        records = result.suspects[columns].astype(object).to_dict("records")
        if records:
            connection.execute(insert(store.label_issues), [{"audit_id": audit_id, **r} for r in records])
    return audit_id


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.audit", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--db", type=schema.location, default=config.crawl_db(),
                        help="the crawl database to audit (and to record the audit in): a sqlite file or a "
                             "postgresql:// URL")
    parser.add_argument("--images", type=images_location,
                        help="the crawl's IMAGES_STORE: a folder, or s3://bucket/prefix/ (default: where the crawl "
                             f"recorded it stored its photos, else {config.images_dir()})")
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--folds", type=int, default=5,
                        help="folds of the stacked model's out-of-fold probabilities (each branch trained this many "
                             "times + 1; every product is predicted by copies that never saw it)")
    source.add_argument("--model", type=Path, nargs="?", const=SERVING,
                        help="a .joblib model from modeling.train instead of folds (fast; in-sample on the products "
                             "it was trained on, so it finds fewer suspects among them); --model alone: the --db's "
                             "model in service (python -m modeling.models current)")
    parser.add_argument("--image-backbone", default=str(config.mobilenet_v2_backbone()),
                        help="the folds' image backbone, as modeling.train's, or 'none' for text only")
    parser.add_argument("--image-runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    parser.add_argument("--cache-dir", type=Path, default=config.embedding_cache_dir(),
                        help="embedding cache (photos embedded by an earlier run or training are not embedded again)")
    parser.add_argument("--categories", type=lambda s: [c.strip() for c in s.split(",") if c.strip()],
                        help="only these leaf categories, comma-separated (default: every leaf)")
    parser.add_argument("--min-products", type=int, default=10,
                        help="leave out leaves with fewer training products than this, as modeling.train does")
    parser.add_argument("--seed", type=int, default=0, help="seed of the folds")
    parser.add_argument("--top", type=int, default=20, help="suspects and overlapping pairs printed")
    parser.add_argument("--json", action="store_true", help="print the summary and every suspect as JSON")
    parser.add_argument("--html", type=Path, help="write the suspects, grouped, with photos, to this HTML file")
    parser.add_argument("--no-progress", action="store_true", help="no progress bars")
    return parser


def text_lines(audit_id: int, result: AuditResult, top: int, seconds: float) -> list[str]:
    summary = result.summary()
    lines = [f"audit {audit_id}: {summary['suspects']} suspect labels in {summary['groups']} groups among "
             f"{summary['products_audited']} products, {summary['categories']} categories ({seconds:.0f} s)", "",
             "categories the catalog confuses (cleanlab find_overlapping_classes):"]
    if len(result.overlapping):
        lines.append(result.overlapping.head(top).to_string(index=False, float_format=lambda v: f"{v:.5f}"))
    lines += ["", "worst suspects:"]
    if len(result.suspects):
        shown = result.suspects.head(top)[["rank", "product_id", "name", "given_label", "given_score",
                                           "suggested_label", "suggested_score"]]
        lines.append(shown.to_string(index=False, float_format=lambda v: f"{v:.3f}",
                                     formatters={"name": lambda v: clean_text(v)[:50]}))
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.model is None and args.folds < 2:
        parser.error(f"--folds must be at least 2, got {args.folds}")
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(name)s %(levelname)s: %(message)s")
    started = time.perf_counter()
    progress = not args.no_progress
    try:
        args.images = crawl_images(args.db, args.images)
        products = with_reviewed_labels(load_products(args.db, args.images, progress=progress), args.db, args.images)
        frame = select_categories(products, args.categories, args.min_products)
        if args.model is not None:
            if args.model == SERVING:
                args.model = serving_path(args.db)
            model = load_model(args.model, image_runtime=args.image_runtime)
            classes = np.asarray(model.classes_).astype(str)
            proba = model.predict_proba(frame)
            source = {"model": str(args.model)}
        else:
            embedder = None
            if args.image_backbone.lower() != "none":
                embedder = ImageEmbedder(args.image_backbone, cache_dir=str(args.cache_dir), progress=progress,
                                         runtime=args.image_runtime).fit()
            parents = dict(zip(frame["category"], frame["parent"], strict=True))
            model = ProductClassifier(text=make_text_pipeline(), image=embedder, cv=args.folds,
                                      random_state=args.seed, category_parents=parents)
            proba = model.fit_out_of_fold(frame, frame["category"], progress=progress)
            classes = model.classes_
            source = {"folds": args.folds, "image_backbone": args.image_backbone if embedder else None}
    except (DataError, BackboneError, PhotoStoreError, ModelFileError, RegistryError, schema.SchemaError) as error:
        print(f"modeling.audit: {error}", file=sys.stderr)
        return 2
    result = audit_labels(frame, proba, classes)
    seconds = time.perf_counter() - started
    parameters = {"db": schema.display_name(args.db), **source, "categories": args.categories,
                  "min_products": args.min_products, "seed": args.seed, "seconds": round(seconds, 1)}
    audit_id = record_audit(args.db, parameters, result)
    if args.html:
        args.html.parent.mkdir(parents=True, exist_ok=True)
        args.html.write_text(report.suspects_page(result.suspects, f"Audit {audit_id}: {len(result.suspects)} "
                                                                   "suspect labels, worst group first"),
                             encoding="utf-8")
    if args.json:
        suspects = result.suspects.drop(columns=["image_path"]).astype(object)
        print(json.dumps({"audit_id": audit_id, "parameters": parameters, "summary": result.summary(),
                          "suspects": suspects.where(suspects.notna(), None).to_dict("records")},
                         indent=2, default=float))
    else:
        print("\n".join(text_lines(audit_id, result, args.top, seconds)))
        if args.html:
            print(f"wrote {args.html}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""``python -m modeling.predict``: categories for products from a JSONL or CSV file, or for a whole crawl database.

Input records carry ``id``, ``name``, ``description`` and optionally ``image_path``. Each output line is JSON: the
product's ``id``, ``category``, ``score`` (a calibrated probability), the most probable ``parent`` category with its
``parent_score`` (the sum of its leaves' probabilities), the next 3 ``alternatives`` with their scores, and whether a
photo was used. With ``--target-accuracy`` each line also carries the auto-filing ``decision``: ``leaf`` (file under
``category``), ``parent`` (file under ``parent``) or ``review`` (a person decides), by the thresholds the model card
stores for that target (``modeling.filing``). A record that cannot be read gets an ``error``
line naming it (line number and id) and every other record is still predicted. A product without a photo (no
``image_path``, null, empty, or NaN from a database) is predicted from its text, with ``photo_used: false``. The
summary on standard error counts the records that failed and names the most common reason; the exit status is 1
when every record failed, 2 when the model or the input cannot be opened. ``--queue`` also writes the products the
model could not file on its own into the filing queue of a crawl database, where the review app shows them to a
person (``python -m modeling.review``). With ``--target-accuracy`` and a database (``--db`` or ``--queue``), every
decision is also stored in its ``filings`` table (``modeling.filings``: what was filed where, by which model, when).
``--changed-since`` limits ``--db`` to the products the crawl met or saw change since then, less those this model
has filed since: the weekly cycle's (``modeling.cycle``) predict step.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing, contextmanager
from itertools import islice
from pathlib import Path
from typing import TextIO

import numpy as np
import pandas as pd

from shopstyle_spider import cli, config, schema

from . import filing_queue, filings, store
from .backbones import BackboneError
from .data import DataError, load_products, photo_summary
from .fields import is_missing, optional_text, photo_path
from .filing import (
    TARGETS,
    FilingPolicyError,
    best_parents,
    decide,
    levels_argument,
    never_files,
    thresholds_at,
)
from .persistence import ModelFileError, load_model
from .photo_store import PhotoStoreError, crawl_images, images_location, is_remote
from .progress import progress_bar
from .registry import RegistryError, serving_path
from .runtime import RUNTIME_HELP, RUNTIMES

ALTERNATIVES = 3
CHUNK = 1000  # products predicted together: large enough to batch photos, small enough to show progress


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m modeling.predict", description=__doc__,
                                     formatter_class=cli.HelpFormatter)
    parser.add_argument("--model", type=Path,
                        help="a .joblib file written by modeling.train (a pickle: load only models you trust); "
                             "default: the model in service (python -m modeling.models current) of the --db, "
                             f"else of the --queue database, else of {config.crawl_db()}")
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", type=Path, help="products as JSON lines (.jsonl) or CSV with a header (.csv)")
    source.add_argument("--db", type=schema.location,
                        help="a crawl database (sqlite file or postgresql:// URL): predict every product it holds, "
                             "with its photo")
    parser.add_argument("--images", type=images_location,
                        help="folder that relative image paths are resolved against (default: with --db, where "
                             f"the crawl recorded it stored its photos, else {config.images_dir()}; with --input, "
                             "the input file's folder); with --db also the crawl's s3://bucket/prefix/")
    parser.add_argument("--target-accuracy", type=float, choices=TARGETS,
                        help="add the auto-filing decision (leaf, parent or review) reaching this accuracy, by the "
                             "thresholds the model card stores (chosen on the validation split); default: no "
                             "decision, so --queue queues every product")
    levels_argument(parser, "where --target-accuracy may file a product: 'leaf' files at the leaf or sends to a "
                            "person, never at the parent; 'leaf,parent' also files at the parent")
    parser.add_argument("--output", default="-", help="where the JSON lines go; '-' is standard output")
    parser.add_argument("--queue", nargs="?", const="", type=lambda v: schema.location(v) if v else "",
                        metavar="DB",
                        help="also write the products whose decision is 'review' into this crawl database's filing "
                             "queue for the review app; with --db and no value, into that database (products "
                             "already queued are not added twice; a product from --input is known by the file's "
                             "name and its id, never confused with a crawled product of the same id)")
    parser.add_argument("--changed-since", metavar="DATE",
                        help="with --db: only the products first seen, re-filed by the shop or with a new photo at "
                             "or after this ISO time, less those this model has filed since then (default: every "
                             "product)")
    parser.add_argument("--no-filings", action="store_true",
                        help="do not store the decisions in the database's filings table (predict --db then only "
                             "reads the database)")
    parser.add_argument("--photo-store", type=Path, default=config.images_dir(),
                        help="the image store the review app serves (its --images): --queue copies a queued file "
                             "product's photo into it")
    parser.add_argument("--image-runtime", choices=RUNTIMES, default="auto", help=RUNTIME_HELP)
    parser.add_argument("--no-progress", action="store_true", help="no progress bar")
    return parser


def read_records(path: Path) -> Iterator[tuple[int, dict | None, str | None]]:
    """(line number, record, None) or (line number, None, why it cannot be read), for a .jsonl or .csv file."""
    with path.open(encoding="utf-8", errors="replace", newline="") as f:
        if path.suffix.lower() == ".csv":
            reader = csv.DictReader(f)
            for row in reader:
                if None in row:
                    yield reader.line_num, None, f"{len(reader.fieldnames) + len(row[None])} fields where the header " \
                                                 f"has {len(reader.fieldnames)}"
                else:
                    yield reader.line_num, row, None
            return
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as error:
                yield number, None, f"not JSON ({error.msg} at column {error.colno})"
                continue
            if not isinstance(record, dict):
                yield number, None, f"a JSON {type(record).__name__}, not an object"
            else:
                yield number, record, None


def check_record(record: dict, images: Path | None) -> tuple[dict | None, str | None]:
    """The model's input row for a record, or why the record cannot be predicted."""
    product_id = record.get("id")
    if product_id is None or str(product_id).strip() == "":
        return None, "no id"
    name = record.get("name")
    if not isinstance(name, str) or not name.strip():
        return None, "no name (a non-empty string is required)"
    description = record.get("description")
    if not is_missing(description) and not isinstance(description, str):
        return None, f"description is a {type(description).__name__}, not text"
    try:
        image_path = photo_path(record.get("image_path"))
    except TypeError as error:
        return None, str(error)
    if image_path is not None and images is not None and not Path(image_path).is_absolute():
        image_path = str(images / image_path)
    return {"id": product_id, "name": name, "description": optional_text(description), "image_path": image_path}, None


def decision_of(line: dict) -> str:
    """What the model's answer lets us do with a product: 'leaf' (file it), 'parent' (file it under its parent) or
    'review' (a person files it). A line without a decision (a model without auto-filing thresholds) needs review."""
    return line.get("decision", "review")


def prediction_lines(model, rows: list[dict], thresholds: dict[str, float | None] | None = None) -> Iterator[dict]:
    """One output line per checked row, predicted together; with ``thresholds`` (``filing.thresholds_at``), each
    line's ``decision`` too. The review app calls this for its predictions, so both decide alike."""
    stacked, _, image = model.predict_branches(pd.DataFrame(rows))
    classes = model.classes_
    parents, parent_scores = best_parents(stacked, classes, model.category_parents or {})
    ranked = np.argsort(-stacked, axis=1)[:, :ALTERNATIVES + 1]
    decisions = decide(stacked[np.arange(len(rows)), ranked[:, 0]], parent_scores, thresholds) \
        if thresholds is not None else None
    for i, row in enumerate(rows):
        best, *others = ranked[i]
        line = {"id": row["id"], "category": classes[best], "score": round(float(stacked[i, best]), 6),
                "parent": parents[i], "parent_score": round(float(parent_scores[i]), 6),
                "alternatives": [{"category": classes[k], "score": round(float(stacked[i, k]), 6)} for k in others],
                "photo_used": bool(not np.isnan(image[i, 0]))}
        if decisions is not None:
            line["decision"] = decisions[i]
        yield line


def filing_thresholds(model_path: Path, target: float, levels: list[str]) -> dict[str, float | None]:
    """The card's thresholds for ``target`` without the levels left out (``filing.thresholds_at``, as the review
    app's); what never files, and why, goes to standard error."""
    thresholds = thresholds_at(model_path, target, levels)
    for line in never_files(thresholds):
        print(f"modeling.predict: at {target:.1%} accuracy {line}", file=sys.stderr)
    return thresholds


def db_records(frame: pd.DataFrame, only: set[int] | None = None) -> Iterator[tuple[int, dict | None, str | None]]:
    """Every product of a crawl database (``load_products``' frame; of ``only``, when given) as (row number, record,
    None), with the local path of its stored photo (None where it has none, or it cannot be read)."""
    if only is not None:
        frame = frame[frame["id"].isin(only)]
    for number, (product_id, name, description, image_path) in enumerate(
            frame[["id", "name", "description", "image_path"]].itertuples(index=False, name=None), start=1):
        yield number, {"id": int(product_id), "name": name, "description": description,
                       "image_path": image_path}, None


def run(model, records: Iterator[tuple[int, dict | None, str | None]], images: Path | None, out,
        progress: bool, thresholds: dict[str, float | None] | None = None,
        queue: Callable[[list[tuple[dict, dict]]], object] | None = None,
        filed: Callable[[list[tuple[dict, dict]]], object] | None = None) -> tuple[int, Counter]:
    """Predict in chunks, writing lines in input order as each chunk is done; returns (predicted, errors by reason).

    ``thresholds`` add each line's decision; ``queue`` receives each chunk's (checked row, line) pairs whose decision
    is 'review', once its lines are written; ``filed`` receives every pair of the chunk.
    """
    predicted = 0
    errors: Counter = Counter()
    bar = progress_bar(desc="predicting", unit="products", enabled=progress)
    while chunk := list(islice(records, CHUNK)):
        lines: list[dict | None] = []  # None: the place of a prediction still to make
        rows = []
        for number, record, problem in chunk:
            row = None
            if problem is None:
                row, problem = check_record(record, images)
            if row is None:
                who = record.get("id") if isinstance(record, dict) else None
                lines.append({"line": number, "id": who, "error": problem})
                errors[problem] += 1
            else:
                lines.append(None)
                rows.append(row)
        made = list(prediction_lines(model, rows, thresholds)) if rows else []
        unmade = iter(made)
        for line in lines:
            out.write(json.dumps(line if line is not None else next(unmade), default=str) + "\n")
        if queue is not None:
            queue([(row, line) for row, line in zip(rows, made, strict=True) if decision_of(line) == "review"])
        if filed is not None:
            filed(list(zip(rows, made, strict=True)))
        predicted += len(rows)
        bar.update(len(chunk))
    bar.close()
    return predicted, errors


@contextmanager
def open_output(name: str) -> Iterator[TextIO]:
    if name == "-":
        yield sys.stdout
        return
    with open(name, "w", encoding="utf-8") as f:
        yield f


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.queue == "" and args.db is None:
        parser.error("--queue needs a database with --input: --queue path/to/crawl.db")
    if args.changed_since is not None and args.db is None:
        parser.error("--changed-since needs --db")
    queue_db = (args.db if args.queue == "" else args.queue) if args.queue is not None else None
    try:
        if args.model is None:
            args.model = serving_path(args.db or queue_db or config.crawl_db())
        model = load_model(args.model, image_runtime=args.image_runtime)
        thresholds = filing_thresholds(args.model, args.target_accuracy, args.levels.split(",")) \
            if args.target_accuracy else None
        if args.db is not None:
            only = None
            if args.changed_since is not None:
                with closing(store.connect(args.db, readonly=True)) as connection:
                    only = filings.changed_since(connection, args.changed_since, args.model)
            frame = load_products(args.db, crawl_images(args.db, args.images), progress=not args.no_progress)
            photos, photos_loud = photo_summary(frame)
            if photos_loud:
                print(f"modeling.predict: WARNING: {photos}", file=sys.stderr)
            records = db_records(frame, only)
            images = None  # the database's photo paths come back resolved
        else:
            if not args.input.is_file():
                raise FileNotFoundError(f"{args.input}: no such input file")
            if is_remote(args.images):
                raise DataError(f"--images {args.images}: a bucket holds a crawl's photos; read them with --db")
            records = read_records(args.input)
            images = args.images or args.input.resolve().parent
        # queued rows name crawled products only when the queue is in that crawl's own database
        in_crawl = args.db is not None and queue_db == args.db
        origin = args.input.name if args.input is not None else schema.display_name(args.db)
        writer = filing_queue.Writer(queue_db, args.model, from_crawl=in_crawl, source=origin,
                                     photo_store=args.photo_store)
        recorder = filings.Writer(None if args.no_filings else args.db or queue_db, args.model, args.target_accuracy,
                                  from_crawl=args.db is not None, source=origin)
        with open_output(args.output) as out, writer as queued, recorder as recorded:
            predicted, errors = run(model, records, images, out, progress=not args.no_progress, thresholds=thresholds,
                                    queue=queued.add if queue_db is not None else None, filed=recorded.add)
    except (FilingPolicyError, ModelFileError, RegistryError, schema.SchemaError, DataError, PhotoStoreError,
            FileNotFoundError, BackboneError) as error:
        print(f"modeling.predict: {error}", file=sys.stderr)
        return 2
    if queue_db is not None:
        print(f"modeling.predict: {queued.added} products queued for review in {schema.display_name(queue_db)} "
              f"({queued.already} were already there)", file=sys.stderr)
    if recorded.written:
        print(f"modeling.predict: {recorded.written} filing decisions stored in "
              f"{schema.display_name(args.db or queue_db)}", file=sys.stderr)
    failed = sum(errors.values())
    summary = f"modeling.predict: {predicted} products predicted, {failed} records with errors"
    if failed:
        reason, count = errors.most_common(1)[0]
        summary += f" (most common: {reason!r}, {count} record{'s' if count != 1 else ''})"
    print(summary, file=sys.stderr)
    if args.db is not None:
        print(f"modeling.predict: {photos}", file=sys.stderr)
    return 1 if failed and not predicted else 0


if __name__ == "__main__":
    raise SystemExit(main())

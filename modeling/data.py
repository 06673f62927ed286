"""Products from the crawl database as a training frame, and the deterministic split every experiment shares.

The split is a hash of the product id, not a random draw: a product stays in the same split when the crawl grows,
when categories are chosen differently, and from one experiment to the next, so test figures are comparable and no
model ever trains on a product another experiment was tested on.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from contextlib import closing
from pathlib import Path

import pandas as pd
from sqlalchemy import select, text

from shopstyle_spider import schema

from . import identity, store
from .fields import is_missing, optional_text, photo_path
from .photo_store import fetch_photos, is_remote
from .reviews import in_force

log = logging.getLogger(__name__)

SPLITS = ("train", "validation", "test")
# Which labels a model learns from: what people decided where they did (``modeling.reviews``), or the catalog's own.
LABELS = ("reviewed", "crawled")
# Percent of the hash space each split takes, in the order of SPLITS: 80/10/10.
SPLIT_PERCENT = (80, 10, 10)

PRODUCTS_SQL = """
SELECT p.id, p.name, p.description, p.brand, p.category_id AS category, c.parent_id AS parent, c.path,
       p.image_path, p.image_status, p.image_checksum
FROM products AS p LEFT JOIN categories AS c ON c.id = p.category_id
ORDER BY p.id
"""


class DataError(ValueError):
    """The database holds nothing the requested experiment can train on."""


def split_of(product_id: int | str) -> str:
    """``train``, ``validation`` or ``test``, fixed for a product id forever."""
    bucket = int.from_bytes(hashlib.sha256(str(product_id).encode()).digest()[:8], "big") % 100
    bound = 0
    for name, percent in zip(SPLITS, SPLIT_PERCENT, strict=True):
        bound += percent
        if bucket < bound:
            return name
    raise AssertionError("split percentages do not add up to 100")


def subject_split(subject: str) -> str:
    """The split of a reviewed product (``modeling.identity``): its id's for a crawled product, its identity's for
    one from a file, as training splits them.

    >>> subject_split("crawl/5") == split_of(5), subject_split("file/new.jsonl/5") == split_of("file/new.jsonl/5")
    (True, True)
    """
    found = identity.parse(subject)
    return split_of(found.product_id if found.product_id is not None else subject)


def load_products(db: str | Path, images_dir: str | Path | None = None, *, progress: bool = True) -> pd.DataFrame:
    """Every crawled product with its leaf, parent, path, text, local image path (None without a photo) and split.

    ``images_dir`` is the crawl's IMAGES_STORE: a folder, or ``s3://bucket/prefix`` (photos are then copied into a
    local mirror once). The frame's ``name``, ``description`` and ``image_path`` columns are exactly what a trained
    model takes. A stored photo that cannot be read (not in the folder or the bucket) leaves its product without
    one: ``frame.attrs["photos"]`` holds how many photos the crawl stored and which of them could not be read, for
    ``photo_summary``.
    """
    with closing(schema.connect(db, readonly=True)) as connection:
        frame = pd.read_sql_query(text(PRODUCTS_SQL), connection)
    if frame.empty:
        raise DataError(f"{schema.display_name(db)}: no products (crawl a catalog into it first)")
    has_photo = ((frame["image_status"] == "ok") & frame["image_path"].notna()).to_numpy()
    paths: list[str | None] = [None] * len(frame)
    if images_dir is not None and has_photo.any():
        rows = has_photo.nonzero()[0]
        stored = frame["image_path"].to_numpy()[rows].tolist()
        if is_remote(images_dir):
            local = fetch_photos(str(images_dir), stored, frame["image_checksum"].to_numpy()[rows].tolist(),
                                 progress=progress)
        else:
            local = [str(Path(images_dir) / path) for path in stored]
            local = [path if os.access(path, os.R_OK) and os.path.isfile(path) else None for path in local]
        for row, path in zip(rows, local, strict=True):
            paths[row] = path
        unreadable = [f"{images_dir}/{path}" if is_remote(images_dir) else str(Path(images_dir) / path)
                      for path, got in zip(stored, local, strict=True) if got is None]
    else:
        unreadable = []
    # object columns: pandas 3 would store a missing photo as NaN in a string column (modeling.fields)
    frame["image_path"] = pd.Series(paths, index=frame.index, dtype=object)
    frame["description"] = pd.Series([optional_text(v) for v in frame["description"]], index=frame.index,
                                     dtype=object)
    frame["parent"] = pd.Series([None if is_missing(v) else v for v in frame["parent"]], index=frame.index,
                                dtype=object)
    frame["split"] = [split_of(product_id) for product_id in frame["id"]]
    frame = frame.drop(columns=["image_status", "image_checksum"])
    frame.attrs["photos"] = {"store": str(images_dir), "stored": int(has_photo.sum()) if images_dir is not None else 0,
                             "unreadable": unreadable}
    return frame


def photo_summary(frame: pd.DataFrame) -> tuple[str, bool]:
    """A line saying how many of the crawl's stored photos ``load_products`` read, naming those it could not (a few),
    and whether it must be said loudly: most of them unreadable means the image store is not where it was looked for
    (moved, or another machine's) and the products are being read from their text alone."""
    photos = frame.attrs.get("photos", {"store": None, "stored": 0, "unreadable": []})
    stored, unreadable = photos["stored"], photos["unreadable"]
    line = f"photos: {stored - len(unreadable)} of the {stored} the crawl stored read from {photos['store']}"
    if unreadable:
        shown = ", ".join(unreadable[:3]) + (", ..." if len(unreadable) > 3 else "")
        line += f"; {len(unreadable)} cannot be read ({shown}): those products are read from their text alone"
    loud = len(unreadable) > stored / 2
    if loud:
        line += (" -- most are missing: was the image store moved? Give its folder with --images (the crawl "
                 "recorded where it stored them; see the image_store table)")
    return line, loud


def review_count(db: str | Path) -> int:
    """How many products, crawled or from a file, have a decision in force (0 before anyone reviewed anything)."""
    with closing(store.connect(db)) as connection:  # writable: an older database's reviews gain their identity
        return len(in_force(connection))


def file_product_id(subject: str) -> int:
    """The id a product from a file takes in a training frame and the ``predictions`` table: negative (crawled ids
    are not), fixed by its identity.

    >>> key = "file/new.jsonl/5"
    >>> file_product_id(key) < 0, file_product_id(key) == file_product_id(key)
    (True, True)
    """
    return -1 - int.from_bytes(hashlib.sha256(subject.encode()).digest()[:7], "big")


def _file_products(connection, decisions: dict[str, str], images_dir: str | Path | None) -> pd.DataFrame:
    """The products from files that people filed (decision in force a leaf), as ``load_products`` rows; their split
    is the hash of their identity, as a crawled product's is of its id."""
    queue = store.filing_queue
    rows = []
    for subject, payload in connection.execute(select(queue.c.subject, queue.c.payload)
                                               .where(queue.c.product_id.is_(None)).order_by(queue.c.id)):
        decision = decisions.get(subject)
        if decision is None or decision == store.EXCLUDE:
            continue
        payload = json.loads(payload)
        photo = photo_path(payload.get("image_path"))
        if photo is not None and images_dir is not None and not is_remote(images_dir):
            photo = str(Path(images_dir) / photo)
        rows.append({"id": file_product_id(subject), "subject": subject, "name": optional_text(payload.get("name")),
                     "description": optional_text(payload.get("description")), "brand": None,
                     "category": decision, "image_path": photo if photo and Path(photo).is_file() else None,
                     "split": split_of(subject)})
    return pd.DataFrame(rows, columns=["id", "subject", "name", "description", "brand", "category", "image_path",
                                       "split"])


def with_reviewed_labels(frame: pd.DataFrame, db: str | Path, images_dir: str | Path | None = None) -> pd.DataFrame:
    """``load_products``' frame with the labels people decided (``modeling.reviews.in_force``): a decided leaf
    replaces the crawled one (its parent and path follow), an excluded product is left out, and the products from
    files that people filed are added (a negative ``id``, ``file_product_id``; their photo from the image store
    ``images_dir``). ``crawled_category`` keeps what the catalog said (None for a product from a file) and
    ``reviewed`` says where a decision stands (a confirmation included). The database itself is never changed."""
    with closing(store.connect(db)) as connection:  # writable: an older database's reviews gain their identity
        standing = {subject: s.decision for subject, s in in_force(connection).items()}
        tree = pd.read_sql_query(text("SELECT id, parent_id, path FROM categories"), connection).set_index("id")
        filed = _file_products(connection, standing, images_dir)
    decisions = {identity.parse(subject).product_id: decision for subject, decision in standing.items()
                 if subject.startswith("crawl/")}
    frame = frame.assign(crawled_category=frame["category"], reviewed=frame["id"].isin(decisions.keys()))
    if len(filed):
        filed = filed.assign(crawled_category=None, reviewed=True, parent=None, path=None)
        frame = pd.concat([frame, filed[[c for c in filed.columns if c != "subject"]]], ignore_index=True)
        frame["crawled_category"] = frame["crawled_category"].astype(object)
    decided = frame["id"].map(decisions).astype(object).where(frame["crawled_category"].notna(), frame["category"])
    frame = frame[decided.ne(store.EXCLUDE) | decided.isna()].copy()
    decided = decided[frame.index]
    changed = decided.notna() & (decided.ne(frame["category"]) | frame["crawled_category"].isna())
    unknown = sorted(set(decided[changed]) - set(tree.index))
    if unknown:
        ids = frame.loc[changed & decided.isin(unknown), "id"].head(5).tolist()
        raise DataError(f"{schema.display_name(db)}: reviews decide categories the crawl does not hold: "
                        f"{', '.join(unknown[:10])} (products {', '.join(map(str, ids))}, ...)")
    new = decided[changed]
    frame.loc[changed, "category"] = new
    frame.loc[changed, "parent"] = [None if is_missing(p) else p for p in tree.loc[new, "parent_id"]]
    frame.loc[changed, "path"] = tree.loc[new, "path"].to_numpy()
    return frame.reset_index(drop=True)


def leaf_parents(frame: pd.DataFrame) -> dict[str, str | None]:
    """Each leaf of ``frame`` and its parent (None for a leaf missing from the tree)."""
    return {leaf: parent if isinstance(parent, str) else None
            for leaf, parent in zip(frame["category"], frame["parent"], strict=True)}


def unlearned_products(products: pd.DataFrame, selected: pd.DataFrame,
                       categories: list[str] | None = None) -> pd.DataFrame:
    """The products (of the named leaves, all by default) whose leaf ``select_categories`` left out for too few
    training products, test split excluded: the model meets their like in service, so the filing guarantee counts
    them."""
    in_scope = products[products["category"].isin(categories)] if categories else products
    return in_scope[~in_scope["category"].isin(set(selected["category"])) & (in_scope["split"] != "test")]


def select_categories(frame: pd.DataFrame, categories: list[str] | None = None,
                      min_products: int = 1) -> pd.DataFrame:
    """Products of the named leaves (all by default) whose leaf has at least ``min_products`` training products.

    A leaf named in ``categories`` that the crawl does not hold is an error, not silently an empty class.
    """
    if categories:
        unknown = sorted(set(categories) - set(frame["category"]))
        if unknown:
            raise DataError(f"categories not in the crawl database: {', '.join(unknown)}")
        frame = frame[frame["category"].isin(categories)]
    train_counts = frame.loc[frame["split"] == "train", "category"].value_counts()
    keep = set(train_counts[train_counts >= min_products].index)
    dropped = sorted(set(frame["category"]) - keep)
    if dropped:
        log.info("left out %d categories with fewer than %d training products: %s", len(dropped), min_products,
                 ", ".join(dropped[:20]) + (" ..." if len(dropped) > 20 else ""))
    frame = frame[frame["category"].isin(keep)]
    if frame["category"].nunique() < 2:
        raise DataError(f"fewer than 2 categories with at least {min_products} training products: nothing to learn")
    empty = [split for split in SPLITS if not (frame["split"] == split).any()]
    if empty:  # found now, not by the first figure computed after the whole fit
        raise DataError(f"no product of the chosen categories is in the {' or '.join(empty)} split ({len(frame)} "
                        "products in all), so the model could not be "
                        f"{'chosen and ' if 'validation' in empty else ''}evaluated: choose more categories "
                        "(--categories) or crawl more products of them")
    return frame.reset_index(drop=True)

"""The shared fashion catalog (``styles.csv`` + ``images/<id>.jpg``) mapped onto the ShopStyle tree.

The mapping is the one ``../shared/datasets/fashion/README.md`` fixes: master category > master+sub category >
article type, every product filed under ``slug(articleType)``, a leaf placed under the sub category where its
article type occurs most often.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path

from PIL import Image

from .catalog import ROOT_ID, ROOT_NAME, Catalog, CatalogError, Category, Product, slug

COLUMNS = ["id", "gender", "masterCategory", "subCategory", "articleType", "baseColour", "season", "year",
           "usage", "productDisplayName"]
# The description is composed from these columns, in this order; an empty value drops its label too.
DESCRIPTION_FIELDS = [("Colour", "baseColour"), ("Season", "season"), ("Usage", "usage"), ("Gender", "gender"),
                      ("Year", "year")]


class DirectoryImages:
    """Photos stored as ``<folder>/<product id>.jpg``; dimensions are read from the header once, on demand."""

    def __init__(self, folder: Path):
        self.folder = folder
        self._dimensions: dict[int, tuple[int, int] | None] = {}

    def _path(self, product_id: int) -> Path:
        return self.folder / f"{product_id}.jpg"

    def original(self, product_id: int) -> bytes | None:
        try:
            return self._path(product_id).read_bytes()
        except FileNotFoundError:
            return None

    def dimensions(self, product_id: int) -> tuple[int, int] | None:
        if product_id not in self._dimensions:
            try:
                with Image.open(self._path(product_id)) as image:
                    self._dimensions[product_id] = image.size
            except FileNotFoundError:
                self._dimensions[product_id] = None
        return self._dimensions[product_id]


def read_styles(csv_path: Path) -> list[dict[str, str]]:
    """Rows of ``styles.csv`` as dicts; a name with unquoted commas is everything after the 9th comma.

    The file uses no CSV quoting (one stray '"' sits inside a name), so lines are split by hand, exactly as the
    data set's README defines them, rather than by a CSV reader that would honour quotes.
    """
    rows = []
    with csv_path.open(encoding="utf-8") as f:
        header = f.readline().rstrip("\r\n").split(",")
        if header != COLUMNS:
            raise CatalogError(f"{csv_path}: unexpected header {header}, expected {COLUMNS}")
        for line_number, line in enumerate(f, 2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            fields = line.split(",", len(COLUMNS) - 1)
            if len(fields) < len(COLUMNS) or not fields[0].isdigit():
                raise CatalogError(f"{csv_path}, line {line_number}: not a product row ({line[:80]!r})")
            rows.append(dict(zip(COLUMNS, fields, strict=True)))
    return rows


def describe(row: dict[str, str]) -> str:
    return " ".join(f"{label}: {row[column]}." for label, column in DESCRIPTION_FIELDS if row[column])


def load_fashion(folder: Path) -> Catalog:
    csv_path = Path(folder) / "styles.csv"
    if not csv_path.is_file():
        raise CatalogError(f"fashion catalog: {csv_path} not found (expected the layout of shared/datasets/fashion)")
    rows = read_styles(csv_path)
    masters: dict[str, str] = {}

    sub_categories: dict[str, Category] = {}
    leaf_homes: dict[str, Counter] = defaultdict(Counter)
    leaf_names: dict[str, str] = {}
    for row in rows:
        master_id = slug(row["masterCategory"])
        sub_id = slug(f"{row['masterCategory']} {row['subCategory']}")
        sub_categories.setdefault(sub_id, Category(sub_id, row["subCategory"], master_id))
        leaf_id = slug(row["articleType"])
        leaf_homes[leaf_id][sub_id] += 1
        leaf_names.setdefault(leaf_id, row["articleType"])
        masters.setdefault(master_id, row["masterCategory"])

    leaves = []
    for leaf_id, homes in leaf_homes.items():
        # most frequent sub category; ties go to the alphabetically first, so the tree never depends on row order
        home = min(homes, key=lambda sub: (-homes[sub], sub))
        leaves.append(Category(leaf_id, leaf_names[leaf_id], home))
    # A sub category whose article types all live elsewhere would be an empty leaf: the tree leaves it out.
    used_subs = [sub_categories[sub_id] for sub_id in dict.fromkeys(leaf.parent_id for leaf in leaves)]
    used_masters = [Category(master_id, masters[master_id], ROOT_ID)
                    for master_id in dict.fromkeys(sub.parent_id for sub in used_subs)]
    categories = [Category(ROOT_ID, ROOT_NAME, None), *used_masters, *used_subs, *leaves]
    taken = {c.id for c in categories[:1 + len(used_masters) + len(used_subs)]}
    collisions = sorted(taken & set(leaf_homes))
    if collisions:
        raise CatalogError(f"fashion catalog: article types {collisions} collide with higher category ids")

    products = [
        Product(
            id=int(row["id"]),
            name=row["productDisplayName"],
            branded_name=row["productDisplayName"],
            description=describe(row),
            category_id=slug(row["articleType"]),
            colors=(row["baseColour"],) if row["baseColour"] else (),
        )
        for row in rows
    ]
    return Catalog("fashion", categories, products, DirectoryImages(Path(folder) / "images"))

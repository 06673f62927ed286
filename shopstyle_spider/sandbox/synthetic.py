"""The project's own catalog: a ShopStyle-like women's tree whose text and photos carry real but imperfect signal.

Everything derives from ``seed``: the same seed gives the same products, ids and photo bytes on every machine,
which is what lets tests and the demo compare a crawl with the catalog it came from. Sibling categories share
vocabulary and silhouettes (bootcut vs flare jeans), and some names or photos borrow from a sibling, so neither
text nor image alone is a perfect classifier.

Like a real catalog (most of the shared fashion catalog's products have no photo), some products come incomplete
(``Gaps``): no photo offered, a photo URL that answers 404, no description. Every test and the demo meet them, so
no part of the project can assume that a product has a photo.
"""

from __future__ import annotations

import io
import random
from dataclasses import dataclass
from functools import lru_cache

from PIL import Image, ImageDraw, ImageFilter

from .catalog import ROOT_ID, ROOT_NAME, Catalog, Category, Product

IMAGE_SIZE = (240, 300)
FIRST_PRODUCT_ID = 500_000_000


@dataclass(frozen=True)
class Group:
    """A parent category: its place in the tree, shared words, drawing routine and price level."""

    path: tuple[str, ...]
    name: str
    noun: str
    words: tuple[str, ...]
    price: float


@dataclass(frozen=True)
class Gaps:
    """Shares of products served incomplete, drawn per product from the seed apart from everything else, so a
    catalog with other shares has the same names, prices and photos."""

    no_photo: float = 0.15  # the product offers no image at all
    broken_photo: float = 0.05  # image URLs are listed, and answer 404
    no_description: float = 0.05

    def __post_init__(self) -> None:
        for name in ("no_photo", "broken_photo", "no_description"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a share between 0 and 1, got {getattr(self, name)}")
        if self.no_photo + self.broken_photo > 1.0:
            raise ValueError("no_photo + broken_photo is more than every product")


NO_GAPS = Gaps(0.0, 0.0, 0.0)


@dataclass(frozen=True)
class Leaf:
    id: str
    name: str
    group: str
    nouns: tuple[str, ...]
    traits: tuple[str, ...]
    shape: float  # 0..1, the silhouette parameter the group's drawing routine reads
    palette: tuple[tuple[int, int, int], ...]


BLUES = ((40, 60, 110), (70, 100, 160), (25, 35, 60), (110, 140, 190))
DARKS = ((20, 20, 25), (90, 10, 40), (15, 30, 80), (60, 0, 70))
BRIGHTS = ((200, 40, 60), (240, 170, 40), (60, 160, 90), (230, 110, 150))
PASTELS = ((240, 200, 210), (200, 220, 240), (230, 230, 190), (210, 240, 220))
NEUTRALS = ((200, 190, 170), (150, 120, 90), (90, 80, 70), (235, 235, 230))
METALS = ((212, 175, 55), (192, 192, 200), (183, 110, 121), (240, 240, 235))
LEATHERS = ((110, 60, 30), (30, 25, 20), (160, 110, 70), (120, 20, 30))

GROUPS = {
    "jeans": Group(("women", "womens-clothes", "jeans"), "Jeans", "jeans",
                   ("denim", "five-pocket", "mid-rise", "stretch cotton", "zip fly", "whiskered wash"), 120),
    "dresses": Group(("women", "womens-clothes", "dresses"), "Dresses", "dress",
                     ("dress", "fitted bodice", "hidden back zip", "lined", "a-line skirt"), 180),
    "tops": Group(("women", "womens-clothes", "womens-tops"), "Tops", "top",
                  ("top", "jersey", "relaxed fit", "scoop neck", "soft cotton"), 55),
    "sweaters": Group(("women", "womens-clothes", "sweaters"), "Sweaters", "sweater",
                      ("knit", "ribbed trims", "sweater", "long sleeves", "wool blend"), 110),
    "skirts": Group(("women", "womens-clothes", "skirts"), "Skirts", "skirt",
                    ("skirt", "elastic waist", "lined", "side zip", "flowy"), 75),
    "jewelry": Group(("women", "womens-clothes", "jewelry"), "Jewelry", "jewelry",
                     ("sterling silver", "18k gold plated", "crystal", "lobster clasp", "hypoallergenic"), 90),
    "shoes": Group(("women", "womens-shoes"), "Women's Shoes", "shoes",
                   ("leather upper", "cushioned insole", "rubber sole", "almond toe", "padded footbed"), 130),
    "bags": Group(("women", "handbags"), "Handbags", "bag",
                  ("leather", "interior zip pocket", "magnetic snap", "gold-tone hardware", "lined interior"), 160),
}

LEAVES = (
    Leaf("bootcut-jeans", "Bootcut Jeans", "jeans", ("bootcut jeans", "boot-cut jeans", "bootcut denim"),
         ("slight flare from the knee", "made to wear over boots", "bootcut leg"), 0.5, BLUES),
    Leaf("flare-jeans", "Flare Jeans", "jeans", ("flare jeans", "flared jeans", "bell-bottom jeans"),
         ("dramatic flare", "wide flared hem", "seventies flare"), 0.8, BLUES),
    Leaf("skinny-jeans", "Skinny Jeans", "jeans", ("skinny jeans", "super skinny jeans", "jeggings"),
         ("skin-tight fit", "narrow ankle", "sculpting stretch"), 0.15, BLUES + DARKS[:1]),
    Leaf("distressed-jeans", "Distressed Jeans", "jeans", ("distressed jeans", "ripped jeans", "destroyed jeans"),
         ("ripped knees", "frayed hem", "distressed details"), 0.4, BLUES[1:] + NEUTRALS[3:]),
    Leaf("cocktail-dresses", "Cocktail Dresses", "dresses", ("cocktail dress", "party dress", "sequin dress"),
         ("above the knee", "sequin embellishment", "night out"), 0.25, DARKS + BRIGHTS[:1]),
    Leaf("day-dresses", "Day Dresses", "dresses", ("day dress", "shirt dress", "sundress"),
         ("easy daytime style", "floral print", "button front"), 0.5, BRIGHTS + PASTELS),
    Leaf("evening-dresses", "Evening Dresses", "dresses", ("evening gown", "maxi gown", "evening dress"),
         ("floor length", "formal occasions", "draped silk"), 0.9, DARKS + METALS[:1]),
    Leaf("tank-tops", "Tank Tops", "tops", ("tank top", "tank", "racerback tank"),
         ("sleeveless", "racerback", "layering essential"), 0.0, BRIGHTS + PASTELS),
    Leaf("tees-and-tshirts", "Tees & T-Shirts", "tops", ("tee", "t-shirt", "crewneck tee"),
         ("short sleeves", "crew neck", "graphic print"), 0.35, BRIGHTS + NEUTRALS),
    Leaf("tunic-tops", "Tunic Tops", "tops", ("tunic", "tunic top", "kaftan top"),
         ("hits at the hip", "longline cut", "side slits"), 0.7, PASTELS + NEUTRALS),
    Leaf("button-front-tops", "Button-Front Tops", "tops", ("button-down shirt", "blouse", "button-front top"),
         ("button front", "point collar", "curved hem"), 0.55, PASTELS + NEUTRALS[3:]),
    Leaf("cardigan-sweaters", "Cardigans", "sweaters", ("cardigan", "open cardigan", "button cardigan"),
         ("open front", "button closure", "patch pockets"), 0.2, NEUTRALS + PASTELS[:2]),
    Leaf("v-neck-sweaters", "V-Neck Sweaters", "sweaters", ("v-neck sweater", "v-neck pullover", "v-neck jumper"),
         ("deep v-neck", "pullover style", "fine gauge"), 0.5, NEUTRALS + DARKS[:2]),
    Leaf("cashmere-sweaters", "Cashmere Sweaters", "sweaters", ("cashmere sweater", "cashmere pullover",
                                                                 "cashmere crewneck"),
         ("pure cashmere", "luxuriously soft", "grade-a cashmere"), 0.8, PASTELS + NEUTRALS[:2]),
    Leaf("mini-skirts", "Mini Skirts", "skirts", ("mini skirt", "miniskirt", "skater skirt"),
         ("mini length", "above mid-thigh", "flirty flare"), 0.2, BRIGHTS + DARKS[:1]),
    Leaf("long-skirts", "Long Skirts", "skirts", ("maxi skirt", "long skirt", "pleated maxi skirt"),
         ("ankle length", "sweeping hem", "tiered"), 0.9, PASTELS + BRIGHTS[1:2]),
    Leaf("earrings", "Earrings", "jewelry", ("earrings", "drop earrings", "hoop earrings"),
         ("post back", "pair of earrings", "dangles"), 0.2, METALS),
    Leaf("necklaces", "Necklaces", "jewelry", ("necklace", "pendant necklace", "chain necklace"),
         ("adjustable chain", "pendant", "layering necklace"), 0.5, METALS),
    Leaf("bracelets", "Bracelets", "jewelry", ("bracelet", "bangle", "cuff bracelet"),
         ("slips over the wrist", "bangle", "stackable"), 0.8, METALS),
    Leaf("boots", "Boots", "shoes", ("boots", "ankle boots", "knee-high boots"),
         ("shaft height", "side zip", "block heel boot"), 0.9, LEATHERS),
    Leaf("pumps", "Pumps", "shoes", ("pumps", "stiletto pumps", "court shoes"),
         ("stiletto heel", "pointed toe", "heel height 4 inches"), 0.6, DARKS + BRIGHTS[:1]),
    Leaf("sandals", "Sandals", "shoes", ("sandals", "strappy sandals", "slide sandals"),
         ("open toe", "ankle strap", "buckle closure"), 0.3, LEATHERS[2:] + METALS[:1] + NEUTRALS[:1]),
    Leaf("womens-sneakers", "Sneakers", "shoes", ("sneakers", "running sneakers", "trainers"),
         ("lace-up", "athletic", "cushioned midsole"), 0.15, NEUTRALS[3:] + BRIGHTS),
    Leaf("clutches", "Clutches", "bags", ("clutch", "evening clutch", "envelope clutch"),
         ("no handle", "evening bag", "detachable chain"), 0.1, METALS + DARKS[:2]),
    Leaf("tote-bags", "Tote Bags", "bags", ("tote", "tote bag", "shopper tote"),
         ("two handles", "roomy", "fits a laptop"), 0.5, LEATHERS + NEUTRALS[:1]),
    Leaf("shoulder-bags", "Shoulder Bags", "bags", ("shoulder bag", "hobo bag", "crossbody bag"),
         ("adjustable strap", "shoulder strap", "crossbody"), 0.7, LEATHERS + BRIGHTS[:1]),
    Leaf("backpacks", "Backpacks", "bags", ("backpack", "mini backpack", "rucksack"),
         ("padded straps", "drawstring top", "top handle"), 0.9, NEUTRALS[1:3] + DARKS[2:] + BRIGHTS[2:3]),
)

COLOURS = ("black", "white", "navy", "red", "blush", "ivory", "olive", "camel", "grey", "blue", "burgundy", "tan")
STYLE_WORDS = ("classic", "essential", "vintage", "modern", "relaxed", "slim", "luxe", "soft", "easy", "chic")
BRANDS = ("Alder & Finch", "Maison Rue", "Northwind", "Lumi", "Coastline Co.", "Vera Blanc", "Ardent",
          "Juniper Lane", "Osaka Mode", "Hollis", "Strand", "Petal & Pine")
RETAILERS = ("Nordline", "Shopbop Lane", "Bloomfield's", "Saks Avenue", "Revolve House", "Netloft")
CARE = ("Machine wash cold.", "Dry clean only.", "Imported.", "Hand wash.", "Spot clean.", "Made in Italy.")


def _tree() -> list[Category]:
    categories = {ROOT_ID: Category(ROOT_ID, ROOT_NAME, None), "women": Category("women", "Women", ROOT_ID)}
    parent_names = {"womens-clothes": "Women's Clothes", "womens-shoes": "Women's Shoes", "handbags": "Handbags"}
    for group in GROUPS.values():
        for parent, category_id in zip(group.path, group.path[1:], strict=False):
            name = group.name if category_id == group.path[-1] else parent_names[category_id]
            categories.setdefault(category_id, Category(category_id, name, parent))
    for leaf in LEAVES:
        categories[leaf.id] = Category(leaf.id, leaf.name, GROUPS[leaf.group].path[-1])
    return list(categories.values())


def _siblings(leaf: Leaf) -> list[Leaf]:
    return [other for other in LEAVES if other.group == leaf.group and other is not leaf]


def _name(rng: random.Random, leaf: Leaf, brand: str) -> str:
    roll = rng.random()
    if roll < 0.78:
        noun = rng.choice(leaf.nouns)
    elif roll < 0.90:
        noun = rng.choice(rng.choice(_siblings(leaf)).nouns)  # a name that points at a sibling
    else:
        noun = GROUPS[leaf.group].noun  # a name that only says the parent
    words = []
    if rng.random() < 0.6:
        words.append(rng.choice(STYLE_WORDS))
    if rng.random() < 0.7:
        words.append(rng.choice(COLOURS))
    words.append(noun)
    return f"{brand} {' '.join(words).capitalize()}"


def _description(rng: random.Random, leaf: Leaf) -> str:
    group = GROUPS[leaf.group]
    sentences = []
    if rng.random() < 0.75:
        sentences.append(f"{rng.choice(leaf.traits).capitalize()}.")
    if rng.random() < 0.25:
        sentences.append(f"{rng.choice(rng.choice(_siblings(leaf)).traits).capitalize()}.")
    first, second = rng.sample(group.words, 2)
    sentences.append(f"{first.capitalize()} &amp; {second}.")
    rng.shuffle(sentences)
    care = rng.sample(CARE, 2)
    # Real ShopStyle descriptions carry HTML: line breaks, lists and entities.
    if rng.random() < 0.5:
        return " ".join(sentences) + "<br><ul><li>" + "</li><li>".join(care) + "</li></ul>"
    return " ".join(sentences) + "<br>" + " ".join(care)


# How many colours a product carries, and how often: as on the real API some carry none and some several, so that
# the colour histogram's counts overlap (a product of two colours is counted under both).
COLOUR_COUNTS = ((0, 0.10), (1, 0.60), (2, 0.22), (3, 0.08))


def _colours(rng: random.Random, name: str) -> tuple[str, ...]:
    """The product's colours: the one its name says first, if it says one."""
    count = rng.choices([n for n, _ in COLOUR_COUNTS], weights=[w for _, w in COLOUR_COUNTS])[0]
    named = [colour for colour in COLOURS if colour in name.lower().split()]
    others = rng.sample([colour for colour in COLOURS if colour not in named], 3)
    return tuple((named + others)[:count])


def generate(seed: int = 0, products_per_category: int = 60, gaps: Gaps | None = None) -> Catalog:
    """The catalog of ``seed``: ``products_per_category`` products in each leaf, incomplete as ``gaps`` (default
    ``Gaps()``) says."""
    gaps = gaps or Gaps()
    rng = random.Random(seed)
    drafts = []
    for leaf in LEAVES:
        for _ in range(products_per_category):
            brand = rng.choice(BRANDS)
            name = _name(rng, leaf, brand)
            price = round(GROUPS[leaf.group].price * rng.lognormvariate(0, 0.4), 2)
            drafts.append(dict(name=name, branded_name=name, unbranded_name=name.removeprefix(brand).strip(),
                               brand=brand, retailer=rng.choice(RETAILERS), price=price, currency="USD",
                               in_stock=rng.random() < 0.9, description=_description(rng, leaf),
                               category_id=leaf.id))
    rng.shuffle(drafts)  # ids interleave categories, as a real catalog's do
    products, next_id, broken = [], FIRST_PRODUCT_ID, set()
    gap_rng = random.Random(f"{seed}:gaps")  # its own stream: the shares change nothing else
    colour_rng = random.Random(f"{seed}:colours")  # so does this one
    for draft in drafts:
        next_id += rng.randint(1, 40)
        photo_roll, description_roll = gap_rng.random(), gap_rng.random()
        if photo_roll < gaps.no_photo + gaps.broken_photo and photo_roll >= gaps.no_photo:
            broken.add(next_id)
        if description_roll < gaps.no_description:
            draft["description"] = None
        products.append(Product(id=next_id, has_image=photo_roll >= gaps.no_photo,
                                colors=_colours(colour_rng, draft["name"]), **draft))
    photos = {product.id: product.category_id for product in products
              if product.has_image and product.id not in broken}
    return Catalog("synthetic", _tree(), products, SyntheticImages(seed, photos))


class SyntheticImages:
    """A photo per product of ``leaves`` (id -> leaf), drawn on demand: the silhouette says the parent, its
    proportions and colours the leaf. Any other product's photo is gone (its URLs answer 404)."""

    def __init__(self, seed: int, leaves: dict[int, str]):
        self.seed = seed
        self.leaves = leaves
        self._by_id = {leaf.id: leaf for leaf in LEAVES}

    def dimensions(self, product_id: int) -> tuple[int, int] | None:
        return IMAGE_SIZE if product_id in self.leaves else None

    def original(self, product_id: int) -> bytes | None:
        if product_id not in self.leaves:
            return None
        return _draw(self.seed, product_id, self._by_id[self.leaves[product_id]])


@lru_cache(maxsize=4096)
def _draw(seed: int, product_id: int, leaf: Leaf) -> bytes:
    rng = random.Random(f"{seed}:{product_id}")
    if rng.random() < 0.12:  # a photo that looks like a sibling's: image signal stays imperfect
        leaf = rng.choice(_siblings(leaf))
    width, height = IMAGE_SIZE
    background = tuple(rng.randint(215, 255) for _ in range(3))
    image = Image.new("RGB", IMAGE_SIZE, background)
    draw = ImageDraw.Draw(image)
    colour = tuple(max(0, min(255, c + rng.randint(-30, 30))) for c in rng.choice(leaf.palette))
    scale = rng.uniform(0.8, 1.05)
    cx, cy = width / 2 + rng.uniform(-15, 15), height / 2 + rng.uniform(-15, 15)

    def box(x0: float, y0: float, x1: float, y1: float) -> list[float]:
        """Unit-square coordinates (centre 0, 0; extent -1..1) to pixels."""
        return [cx + x0 * width * 0.4 * scale, cy + y0 * height * 0.4 * scale,
                cx + x1 * width * 0.4 * scale, cy + y1 * height * 0.4 * scale]

    def polygon(points: list[tuple[float, float]], fill=colour) -> None:
        draw.polygon([(cx + x * width * 0.4 * scale, cy + y * height * 0.4 * scale) for x, y in points], fill=fill)

    s = leaf.shape + rng.uniform(-0.08, 0.08)
    group = leaf.group
    if group == "jeans":
        hem = 0.12 + 0.35 * s
        polygon([(-0.5, -0.9), (0.5, -0.9), (0.5, -0.5), (0.05 + hem, 1.0), (0.05, 1.0), (0, -0.3),
                 (-0.05, 1.0), (-0.05 - hem, 1.0), (-0.5, -0.5)])
        if leaf.id == "distressed-jeans":
            for _ in range(rng.randint(3, 6)):
                x, y = rng.uniform(-0.4, 0.4), rng.uniform(-0.2, 0.8)
                draw.ellipse(box(x - 0.06, y - 0.03, x + 0.06, y + 0.03), fill=(235, 235, 235))
    elif group == "dresses":
        length = 0.1 + 0.9 * s
        polygon([(-0.3, -0.9), (0.3, -0.9), (0.25, -0.3), (0.35 + 0.4 * length, -0.3 + 1.3 * length),
                 (-0.35 - 0.4 * length, -0.3 + 1.3 * length), (-0.25, -0.3)])
    elif group in ("tops", "sweaters"):
        sleeve = s if group == "tops" else 1.0
        body = 0.6 + (0.5 * s if group == "tops" else 0.3)
        polygon([(-0.45, -0.8), (0.45, -0.8), (0.45, -0.8 + body * 1.4), (-0.45, -0.8 + body * 1.4)])
        if sleeve > 0.1:
            polygon([(0.45, -0.8), (0.45 + 0.5 * sleeve, -0.8 + 1.0 * sleeve),
                     (0.3 + 0.5 * sleeve, -0.7 + 1.0 * sleeve), (0.45, -0.45)])
            polygon([(-0.45, -0.8), (-0.45 - 0.5 * sleeve, -0.8 + 1.0 * sleeve),
                     (-0.3 - 0.5 * sleeve, -0.7 + 1.0 * sleeve), (-0.45, -0.45)])
        if group == "sweaters":
            for y in range(8):
                stripe = tuple(c // 2 + 60 for c in colour)
                draw.line(box(-0.45, -0.6 + y * 0.15, 0.45, -0.6 + y * 0.15), fill=stripe)
        if leaf.id in ("v-neck-sweaters", "cardigan-sweaters"):
            depth = 0.3 if leaf.id == "v-neck-sweaters" else 1.0
            polygon([(-0.15, -0.8), (0.15, -0.8), (0, -0.8 + depth * 1.4)], fill=background)
        if leaf.id == "button-front-tops":
            for y in range(5):
                draw.ellipse(box(-0.03, -0.6 + y * 0.25, 0.03, -0.56 + y * 0.25), fill=(250, 250, 250))
    elif group == "skirts":
        length = 0.2 + 0.8 * s
        polygon([(-0.35, -0.7), (0.35, -0.7), (0.4 + 0.3 * length, -0.7 + 1.6 * length),
                 (-0.4 - 0.3 * length, -0.7 + 1.6 * length)])
    elif group == "shoes":
        shaft = 1.2 * max(0.0, s - 0.5)
        heel = 0.5 * s if leaf.id != "womens-sneakers" else 0.05
        polygon([(-0.8, 0.3), (0.2, 0.3 - shaft), (0.5, 0.3 - shaft), (0.6, 0.6 - heel), (0.6, 0.6),
                 (-0.8, 0.6)])
        if leaf.id == "womens-sneakers":
            draw.rectangle(box(-0.85, 0.55, 0.65, 0.7), fill=(245, 245, 245))
        if leaf.id == "sandals":
            for x in (-0.5, -0.2, 0.1):
                draw.rectangle(box(x, 0.2, x + 0.12, 0.6), fill=background)
    elif group == "bags":
        height_ratio = 0.35 + 0.6 * s
        draw.rounded_rectangle(box(-0.6, 0.8 - height_ratio * 1.4, 0.6, 0.8), radius=8, fill=colour)
        top = 0.8 - height_ratio * 1.4
        if leaf.id == "tote-bags":
            for x in (-0.35, 0.15):
                draw.arc(box(x, top - 0.4, x + 0.2, top + 0.2), 180, 360, fill=colour, width=6)
        elif leaf.id in ("shoulder-bags", "backpacks"):
            draw.arc(box(-0.5, top - 0.8, 0.5, top + 0.3), 180, 360, fill=colour, width=5)
    else:  # jewelry
        metal = colour
        if leaf.id == "earrings":
            for x in (-0.35, 0.35):
                draw.ellipse(box(x - 0.12, -0.1, x + 0.12, 0.25), outline=metal, width=6)
        elif leaf.id == "necklaces":
            draw.arc(box(-0.7, -0.9, 0.7, 0.5), 0, 180, fill=metal, width=4)
            draw.ellipse(box(-0.1, 0.45, 0.1, 0.7), fill=metal)
        else:
            draw.ellipse(box(-0.5, -0.35, 0.5, 0.35), outline=metal, width=12)

    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.2)))
    # Noise from the product's own generator: Pillow's effect_noise draws from C's global rand(), which made a
    # photo depend on which photos the process had drawn before it.
    noise = Image.frombytes("L", IMAGE_SIZE, rng.randbytes(IMAGE_SIZE[0] * IMAGE_SIZE[1])).convert("RGB")
    image = Image.blend(image, noise, rng.uniform(0.03, 0.08))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=88)
    return buffer.getvalue()

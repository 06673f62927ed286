"""Reading a photo into pixels and embedding a batch of them: what training here and a cluster worker both run.

Its own module so that ``cluster`` (the workers' side) and ``image`` (which hands work to the cluster) both import
it instead of each other.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from .runtime import Network

__all__ = ["MAX_PIXELS", "embed_batch", "read_photo"]

# A photo larger than this many pixels is refused before it is decoded (a decompression bomb, or a mistake).
MAX_PIXELS = 40_000_000


def read_photo(path: str, size: int, content: bytes | None = None) -> np.ndarray:
    """RGB uint8 (size, size, 3): the photo padded to a square with white (product shots sit on white) and scaled.

    ``content`` is the file's bytes when they were read elsewhere (a cluster worker gets photos, not paths).
    Raises ``ValueError`` naming the file for anything that is not a decodable, reasonably sized image.
    """
    try:
        with Image.open(path if content is None else io.BytesIO(content)) as image:
            width, height = image.size
            if width * height > MAX_PIXELS:
                raise ValueError(f"{path}: {width}x{height} pixels is over the {MAX_PIXELS:,} allowed")
            image.draft("RGB", (size, size))  # JPEG: decode at a reduced scale when the photo is large
            rgb = image.convert("RGB")
            square = ImageOps.pad(rgb, (size, size), color=(255, 255, 255))
            return np.asarray(square, dtype=np.uint8)
    except (OSError, UnidentifiedImageError, Image.DecompressionBombError, SyntaxError) as error:
        raise ValueError(f"{path}: not a usable image ({error})") from error


def embed_batch(network: Network, photos: Iterable[tuple[str, Callable[[], np.ndarray]]],
                pad_to: int | None = None) -> tuple[dict[str, np.ndarray], list[str]]:
    """({key: vector}, problems): one network call for the photos whose ``decode()`` succeeds, and the reason of
    each that does not (``read_photo``'s ValueError). Used here and on cluster workers alike.

    The call is padded with blank images to ``pad_to`` rows (default: the photos offered), so a failed photo or a
    short last batch does not hand the runtime a new input shape: each new shape costs Keras a retrace of the network
    (0.6 s for MobileNetV2 on two cores, more than embedding the blank rows) and OpenVINO a new plan.
    """
    pixels, keys, problems = [], [], []
    for key, decode in photos:
        try:
            pixels.append(decode())
            keys.append(key)
        except ValueError as error:
            problems.append(str(error))
    if not pixels:
        return {}, problems
    batch = np.stack(pixels)
    blank = max(0, (pad_to or len(keys) + len(problems)) - len(batch))
    if blank:
        batch = np.concatenate([batch, np.zeros((blank, *batch.shape[1:]), dtype=batch.dtype)])
    vectors = np.asarray(network.embed(batch), dtype=np.float32)[:len(keys)]
    return dict(zip(keys, vectors, strict=True)), problems

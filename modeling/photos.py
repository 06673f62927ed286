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

__all__ = ["MAX_PIXELS", "decode_into", "decoded_rows", "embed_batch", "new_batch", "read_photo"]

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


def new_batch(network: Network, rows: int) -> np.ndarray:
    """A blank (rows, S, S, 3) float32 batch for ``network``: photos are decoded into its rows (``decode_into``) and
    the rows left blank pad it, so a failed photo or a short last batch does not hand the runtime a new input shape
    (each new shape costs Keras a retrace of the network, 0.6 s for MobileNetV2 on two cores, and OpenVINO a new
    plan)."""
    return np.zeros((rows, network.input_size, network.input_size, 3), dtype=np.float32)


def decode_into(batch: np.ndarray, row: int, path: str, content: bytes | None = None) -> None:
    """``read_photo`` into ``batch[row]``. Run by the decoding threads, so the copy and the conversion to float32
    happen there, overlapped with the network, instead of in the thread that feeds it."""
    batch[row] = read_photo(path, batch.shape[1], content)


def decoded_rows(photos: Iterable[tuple[str, Callable[[], object]]]) -> tuple[list[str], list[int], list[str]]:
    """(keys, rows, problems) of a batch whose i-th photo is decoded into row i (``new_batch``).

    Each photo comes as (key, ``done``): ``done()`` returns once its row holds its pixels (a decoding thread's
    future, or ``decode_into`` itself) or raises ``read_photo``'s ValueError, whose reason is reported and whose
    row stays blank.
    """
    keys, rows, problems = [], [], []
    for row, (key, done) in enumerate(photos):
        try:
            done()
        except ValueError as error:
            problems.append(str(error))
        else:
            keys.append(key)
            rows.append(row)
    return keys, rows, problems


def embed_batch(network: Network, batch: np.ndarray,
                photos: Iterable[tuple[str, Callable[[], object]]]) -> tuple[dict[str, np.ndarray], list[str]]:
    """({key: vector}, problems): ``decoded_rows``, then one network call on ``batch`` if any photo was usable."""
    keys, rows, problems = decoded_rows(photos)
    if not keys:
        return {}, problems
    vectors = np.asarray(network.embed(batch), dtype=np.float32)[rows]
    return dict(zip(keys, vectors, strict=True)), problems

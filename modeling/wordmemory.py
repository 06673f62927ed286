"""The text branch's memory of the words it has met, each part bounded in bytes, all in one place.

A catalog repeats a small vocabulary, so the text branch remembers per distinct word what it costs to work out: its
Snowball stem (``text.StemmingTokenizer``), its character n-grams (``text.WordCharNgrams``) and its features
(``tfidf.FastTfidfVectorizer``'s word table). Bounded by a count of words, five product names of one
200,000-letter word each kept about 250 MB in the review app and a few 2 MB requests ended it. Every such memory
is bounded here by the bytes it holds (words, results and bookkeeping counted); a word whose entry alone is over the
bound is worked out and not kept. The bounds below hold a large catalog's vocabulary, and what a model remembers
beyond its training texts' words (which it pickles: 7.6 MB over its three word tables for the fashion catalog)
stays under 100 MB in all: two stem memories, one of n-grams and three word tables' growth.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable
from typing import TypeVar

from cachetools import LRUCache, cached

__all__ = ["CHAR_NGRAMS_BYTES", "ENTRY_OVERHEAD", "STEMS_BYTES", "WORD_TABLE_BYTES", "remembered", "size_of"]

STEMS_BYTES = 8 << 20  # a StemmingTokenizer's (two in a model): about 40,000 words with their stems
CHAR_NGRAMS_BYTES = 24 << 20  # a WordCharNgrams' (one in a model): about 20,000 words' n-grams
WORD_TABLE_BYTES = 16 << 20  # what a FastTfidfVectorizer's word table adds to its training words (three in a model)
ENTRY_OVERHEAD = 200  # an entry's share of the dicts that hold it (the cache's and its LRU order's)

Result = TypeVar("Result")


def size_of(value: str | tuple[str, ...]) -> int:
    """The bytes a word, or a tuple of them, holds, object headers included.

    >>> size_of("silk") < size_of("silk" * 100), size_of(("si", "il")) > 2 * size_of("si")
    (True, True)
    """
    if isinstance(value, tuple):
        return sys.getsizeof(value) + sum(map(sys.getsizeof, value))
    return sys.getsizeof(value)


def remembered(function: Callable[[str], Result], max_bytes: int) -> Callable[[str], Result]:
    """``function`` of a word, remembered for the words least recently seen last, in at most ``max_bytes``
    (cachetools' ``LRUCache`` sized by each entry's bytes; a lock makes it safe for a server's threads).

    >>> stem = remembered(lambda word: word[:4], 10_000)
    >>> stem("dresses"), stem("x" * 20_000)  # the second is over the bound: returned, never kept
    ('dres', 'xxxx')
    """
    memory: LRUCache = LRUCache(max_bytes, getsizeof=lambda entry: size_of(entry[0]) + size_of(entry[1])
                                + ENTRY_OVERHEAD)
    # the entry holds the word itself, so the key's bytes are counted (cachetools sizes values only)
    entry = cached(memory, key=lambda word: word, lock=threading.Lock())(lambda word: (word, function(word)))

    def recall(word: str) -> Result:
        return entry(word)[1]

    recall.memory = memory  # for tests and diagnostics: its currsize in bytes
    return recall

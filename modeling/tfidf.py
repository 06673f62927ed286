"""A TF-IDF vectorizer that transforms a word at a time: scikit-learn's features, assembled by NumPy.

``TfidfVectorizer.transform`` runs Python for every feature of every product: it builds each word bigram and each
character n-gram as a string and looks it up in the vocabulary. A catalog repeats a small vocabulary, so
``FastTfidfVectorizer`` looks each distinct *word* up once (its stem's or its n-grams' feature indices, and an id
for pairing it with its neighbour), remembers that, and turns a batch of products into counts with array operations.
Fitting is scikit-learn's own, and the transform gives the same matrix, entry for entry (tested on the fashion
catalog), so a model trained with either vectorizer predicts the same.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterable, Iterator
from itertools import chain, compress, repeat

import numpy as np
import scipy.sparse as sp
from sklearn import get_config
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.preprocessing import normalize
from sklearn.utils.validation import check_is_fitted

from . import wordmemory

__all__ = ["FastTfidfVectorizer"]


class _WordTable:
    """What each word seen so far contributes: its features' indices (``features[pointers[i]:pointers[i + 1]]`` for
    word ``i``) and, for word n-grams, the id of its term among the terms that occur in bigram features (-1: in
    none). Built from the fitted vocabulary, seeded with the training texts' words and grown a batch at a time;
    ``lock`` serialises growth, so threads of a server may share one vectorizer. ``bytes`` counts what the words
    hold (``wordmemory.size_of`` of each word, its features, its bookkeeping); the first ``seeded`` words (holding
    ``seed_bytes``) are the training texts', part of the fitted model. Pickles without its lock."""

    def __init__(self, vocabulary: dict[str, int], pairs: bool):
        self.vocabulary = vocabulary
        self.index: dict[str, int] = {}
        self.bytes = self.seed_bytes = self.seeded = 0
        self.pointers = np.zeros(1, dtype=np.int64)
        self.features = self.pair_ids = np.zeros(0, dtype=np.int64)
        self.lock = threading.Lock()
        self.term_ids: dict[str, int] = {}
        self.pair_keys = self.pair_features = np.zeros(0, dtype=np.int64)
        if pairs:  # every term that is half of a bigram feature gets an id; the bigram a key of the two ids
            bigrams = [(parts, column) for term, column in vocabulary.items() if len(parts := term.split(" ")) == 2]
            for (first, second), _ in bigrams:
                self.term_ids.setdefault(first, len(self.term_ids))
                self.term_ids.setdefault(second, len(self.term_ids))
            keys = np.asarray([self.term_ids[a] * len(self.term_ids) + self.term_ids[b] for (a, b), _ in bigrams],
                              dtype=np.int64)
            order = np.argsort(keys)
            self.pair_keys = keys[order]
            self.pair_features = np.asarray([column for _, column in bigrams], dtype=np.int64)[order]

    def add(self, words: Iterable[str], terms_of: Callable[[str], Iterable[str]]) -> None:
        """Note each new word's features (its terms that are in the vocabulary, repeats kept) and its pairing id.
        The arrays are replaced, never changed in place, so a transform's snapshot of them stays whole."""
        vocabulary, term_ids, index = self.vocabulary, self.term_ids, self.index
        lengths, features, pair_ids = [], [], []
        for word in words:
            if word in index:
                continue
            terms = tuple(terms_of(word))
            index[word] = len(index)
            columns = [vocabulary[t] for t in terms if t in vocabulary]
            self.bytes += wordmemory.size_of(word) + wordmemory.ENTRY_OVERHEAD + 8 * (len(columns) + 2)
            features.extend(columns)
            lengths.append(len(columns))
            pair_ids.append(term_ids.get(terms[0], -1) if len(terms) == 1 else -1)
        if lengths:
            self.pointers = np.concatenate([self.pointers, self.pointers[-1] + np.cumsum(lengths)])
            self.features = np.concatenate([self.features, np.asarray(features, dtype=np.int64)])
            self.pair_ids = np.concatenate([self.pair_ids, np.asarray(pair_ids, dtype=np.int64)])

    def seal_seed(self) -> None:
        """Mark every word so far as the training texts': what ``seed_only`` keeps."""
        self.seeded, self.seed_bytes = len(self.index), self.bytes

    def seed_only(self) -> _WordTable:
        """A new table holding the seed's words only (ids and arrays are prefixes: the seed's words came first)."""
        table = _WordTable.__new__(_WordTable)
        table.__dict__.update(self.__getstate__(), lock=threading.Lock(), bytes=self.seed_bytes,
                              index={word: i for word, i in self.index.items() if i < self.seeded},
                              pointers=self.pointers[:self.seeded + 1], pair_ids=self.pair_ids[:self.seeded],
                              features=self.features[:self.pointers[self.seeded]])
        return table

    def __getstate__(self) -> dict:
        return {name: value for name, value in self.__dict__.items() if name != "lock"}

    def __setstate__(self, state: dict) -> None:
        """A table pickled before its bytes were counted (a model saved by an earlier release) keeps every word it
        holds as its seed and counts what it grows by from there."""
        self.__dict__.update({"bytes": 0, "seed_bytes": 0, "seeded": len(state["index"])}, lock=threading.Lock())
        self.__dict__.update(state)


class FastTfidfVectorizer(TfidfVectorizer):
    """``TfidfVectorizer`` with a transform that looks each distinct word up once (see the module's docstring).

    Takes ``TfidfVectorizer``'s parameters, in the configurations whose features are a function of each word (and,
    for bigrams, of each pair of neighbouring words):

    - ``analyzer="word"``, ``ngram_range`` (1, 1) or (1, 2), no stop words, and either ``token_pattern`` (words as
      the pattern finds them in the preprocessed text) or a ``tokenizer`` with ``words(text)`` and
      ``terms_of(word)`` returning one term per word (``modeling.text.StemmingTokenizer``);
    - ``analyzer`` a callable with ``words(text)`` and ``terms_of(word)`` whose result on a text is its words'
      terms in order (``modeling.text.WordCharNgrams``).

    Others are refused when fitting. The training texts' words are remembered from the start and pickled with the
    vectorizer (2-3.5 MB each for the fashion catalog's 36,000 products), so a reloaded model transforms at full
    speed at once. Words met later add at most ``wordmemory.WORD_TABLE_BYTES`` between transforms: a batch that
    takes them past the bound is transformed, then the memory starts again from the training texts' words.
    """

    def fit(self, raw_documents, y=None) -> FastTfidfVectorizer:
        self.fit_transform(raw_documents, y)
        return self

    def fit_transform(self, raw_documents, y=None):
        self._check_wordwise()
        self.__dict__.pop("_word_table", None)  # the memory of a previous fit's vocabulary
        if isinstance(raw_documents, Iterator):  # read twice below
            raw_documents = list(raw_documents)
        matrix = super().fit_transform(raw_documents, y)
        self._freeze_weighting()
        self._remember_words(raw_documents)
        return matrix

    def _remember_words(self, raw_documents: Iterable) -> None:
        """Seed the memory with every word of the training texts, so that a fitted (or reloaded) vectorizer is as
        fast on the first batch it sees as on later ones: a catalog's new products mostly reuse its words."""
        words_of, terms_of = self._words_and_terms()
        if hasattr(raw_documents, "tolist"):
            raw_documents = raw_documents.tolist()
        words = dict.fromkeys(chain.from_iterable(words_of(self.decode(document)) for document in raw_documents))
        table = self._table()
        with table.lock:
            table.add(words, terms_of)
            table.seal_seed()

    def _freeze_weighting(self) -> None:
        """The TF-IDF weighting as fitted: like scikit-learn's, a transform keeps it whatever ``set_params`` changes
        later (``binary`` is the counting's, read at transform time by scikit-learn as here)."""
        self.weighting_ = {"sublinear_tf": self.sublinear_tf, "use_idf": self.use_idf, "norm": self.norm}

    def _check_wordwise(self) -> None:
        if callable(self.analyzer):
            if not (hasattr(self.analyzer, "words") and hasattr(self.analyzer, "terms_of")):
                raise ValueError("FastTfidfVectorizer: a callable analyzer needs words(text) and terms_of(word), "
                                 f"which {self.analyzer!r} lacks")
            return
        problems = []
        if self.analyzer != "word":
            problems.append(f"analyzer={self.analyzer!r} (use a callable such as modeling.text.WordCharNgrams)")
        if self.ngram_range[0] != 1 or self.ngram_range[1] not in (1, 2):
            problems.append(f"ngram_range={self.ngram_range!r} (1-1 or 1-2 only)")
        if self.stop_words is not None or self.preprocessor is not None or self.strip_accents is not None:
            problems.append("stop words, a preprocessor or accent stripping")
        if self.tokenizer is None and any(any(c.isspace() for c in token) for token in
                                          re.findall(self.token_pattern, "a b\tc\nd e  f")):
            problems.append(f"token_pattern={self.token_pattern!r}, which matches white space (a word of two parts "
                            "would read as a bigram)")
        if self.tokenizer is not None and not (hasattr(self.tokenizer, "words") and
                                               hasattr(self.tokenizer, "terms_of")):
            problems.append(f"tokenizer {self.tokenizer!r} without words(text) and terms_of(word)")
        if problems:
            raise ValueError("FastTfidfVectorizer cannot transform word by word with " + "; ".join(problems))

    def _words_and_terms(self) -> tuple[Callable[[str], list[str]], Callable[[str], Iterable[str]]]:
        """How a (decoded) text splits into words, and the terms one word contributes."""
        if callable(self.analyzer):
            return self.analyzer.words, self.analyzer.terms_of
        if self.tokenizer is not None:
            if self.lowercase:  # scikit-learn lower-cases before its tokenizer
                return (lambda text: self.tokenizer.words(text.lower())), self.tokenizer.terms_of
            return self.tokenizer.words, self.tokenizer.terms_of
        pattern = re.compile(self.token_pattern)
        if self.lowercase:
            return (lambda text: pattern.findall(text.lower())), (lambda word: (word,))
        return pattern.findall, (lambda word: (word,))

    def _table(self) -> _WordTable:
        table = self.__dict__.get("_word_table")
        if table is None or table.vocabulary is not self.vocabulary_:
            table = self._word_table = _WordTable(self.vocabulary_, pairs=self.analyzer == "word"
                                                  and self.ngram_range[1] == 2)
        return table

    def transform(self, raw_documents):
        """The TF-IDF matrix of ``raw_documents``, as ``TfidfVectorizer.transform`` gives it."""
        check_is_fitted(self, ["vocabulary_", "weighting_"], msg="The TF-IDF vectorizer is not fitted")
        if isinstance(raw_documents, str):
            raise ValueError("Iterable over raw text documents expected, string object received.")
        words_of, terms_of = self._words_and_terms()
        if hasattr(raw_documents, "tolist"):  # a pandas Series or NumPy array: a list iterates far faster
            raw_documents = raw_documents.tolist()
        decode = self.decode
        per_document = [words_of(document if type(document) is str and self.input == "content" else decode(document))
                        for document in raw_documents]
        lengths = np.fromiter(map(len, per_document), dtype=np.int64, count=len(per_document))
        words = list(chain.from_iterable(per_document))
        table = self._table()
        with table.lock:
            ids = np.fromiter(map(table.index.get, words, repeat(-1)), dtype=np.int64, count=len(words))
            new = ids < 0
            if new.any():
                table.add(compress(words, new), terms_of)
                ids[new] = np.fromiter(map(table.index.__getitem__, compress(words, new)), dtype=np.int64)
            pointers, features, pair_ids = table.pointers, table.features, table.pair_ids
            if table.bytes - table.seed_bytes > wordmemory.WORD_TABLE_BYTES:  # this batch reads its snapshot
                self._word_table = table.seed_only()
        document = np.repeat(np.arange(len(per_document)), lengths)
        starts, counts = pointers[ids], pointers[ids + 1] - pointers[ids]
        # each word's run of features, laid end to end: feature k of the output is features[start of its word + j]
        offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
        rows, columns = np.repeat(document, counts), features[np.repeat(starts, counts) + offsets]
        if len(table.pair_keys):
            first, second = pair_ids[ids[:-1]], pair_ids[ids[1:]]
            paired = (document[1:] == document[:-1]) & (first >= 0) & (second >= 0)
            keys = first[paired] * len(table.term_ids) + second[paired]
            found = np.minimum(np.searchsorted(table.pair_keys, keys), len(table.pair_keys) - 1)
            hit = table.pair_keys[found] == keys
            rows = np.concatenate([rows, document[1:][paired][hit]])
            columns = np.concatenate([columns, table.pair_features[found[hit]]])
        dtype = self.dtype if np.dtype(self.dtype).kind == "f" else np.float64  # as TfidfTransformer converts
        counts_matrix = sp.csr_matrix((np.ones(len(rows), dtype=dtype), (rows, columns)),
                                      shape=(len(per_document), len(self.vocabulary_)), dtype=dtype)
        counts_matrix.sum_duplicates()
        return self._weighted(counts_matrix)

    def _weighted(self, counts: sp.csr_matrix):
        """Counts -> TF-IDF, the steps of ``CountVectorizer.transform`` (``binary``) and of
        ``TfidfTransformer.transform`` with the weighting and ``idf_`` as fitted."""
        weighting = self.weighting_
        if self.binary:
            counts.data.fill(1)
        if weighting["sublinear_tf"]:
            np.log(counts.data, counts.data)
            counts.data += 1.0
        if weighting["use_idf"]:
            counts.data *= self.idf_[counts.indices]
        if weighting["norm"] is not None:
            counts = normalize(counts, norm=weighting["norm"], copy=False)
        return sp.csr_array(counts) if get_config().get("sparse_interface") == "sparray" else counts


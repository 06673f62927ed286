"""FastTfidfVectorizer gives scikit-learn's TfidfVectorizer matrix, entry for entry, on real catalog text."""

from __future__ import annotations

import csv
import json
import pickle
import re
import warnings
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from nltk.stem.snowball import SnowballStemmer
from sklearn.base import clone
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import SGDClassifier

from modeling import wordmemory
from modeling.text import TextSGDClassifier, clean_text, make_text_pipeline
from modeling.tfidf import FastTfidfVectorizer

HOSTILE = ["", "   ", "x", "T-shirt t t T", "Ünïcode\tTABS  and ﬁ ligatures", "a_b __ 12 1 2", "e\u0301clair éclair",
           "\u00a0nbsp\u2003em\u3000ideographic", "日本語のテキスト 漢字", "x" * 300, "dress dress dress dress"]


@pytest.fixture(scope="module")
def catalog_text(fashion_dir, sample_dir):
    """Names of the shared fashion catalog and real ShopStyle names with descriptions, cleaned: some to fit on
    (with the fashion names' kinds), others held out with hostile text."""
    with open(fashion_dir / "styles.csv", encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))[:20_000]
    records = [json.loads(line) for line in (sample_dir / "products.jsonl").read_text(encoding="utf-8").splitlines()]
    shopstyle = [clean_text(f"{r['name']} {r.get('description') or ''}") for r in records]
    names = [clean_text(row["productDisplayName"]) for row in rows]
    fitted_on, held_out = names[:10_000] + shopstyle[:600], names[10_000:] + shopstyle[600:] + HOSTILE
    return fitted_on, held_out, [row["articleType"] for row in rows[:10_000]]


def assert_same_matrix(ours, reference):
    assert type(ours) is type(reference) and ours.dtype == reference.dtype and ours.shape == reference.shape
    reference.sort_indices()
    assert np.array_equal(ours.indptr, reference.indptr) and np.array_equal(ours.indices, reference.indices)
    assert np.array_equal(ours.data, reference.data)  # to the bit, not approximately


@pytest.mark.parametrize("stem", [True, False], ids=["stemmed", "plain words"])
def test_every_vectorizer_of_the_text_branch_gives_scikit_learns_matrix(catalog_text, stem):
    fitted_on, held_out, _ = catalog_text
    features = make_text_pipeline(stem=stem).named_steps["features"]
    for name, fast, _ in features.transformers:
        assert isinstance(fast, FastTfidfVectorizer)
        reference = TfidfVectorizer(**fast.get_params()).fit(fitted_on)
        fast.fit(fitted_on)
        assert fast.vocabulary_ == reference.vocabulary_, name
        for documents in (held_out, fitted_on[:3000], held_out):  # the second pass reads words remembered
            assert_same_matrix(fast.transform(documents), reference.transform(documents))
        restored = pickle.loads(pickle.dumps(fast))  # the training texts' words come along, the lock does not
        assert restored.__dict__["_word_table"].index.keys() == fast.__dict__["_word_table"].index.keys()
        assert_same_matrix(restored.transform(held_out[::-1]), reference.transform(held_out[::-1]))


def test_threads_sharing_one_vectorizer_each_get_their_own_rows(catalog_text):
    fitted_on, held_out, _ = catalog_text
    fast = FastTfidfVectorizer(analyzer=make_text_pipeline().named_steps["features"].transformers[1][1].analyzer,
                               min_df=2, sublinear_tf=True).fit(fitted_on)
    expected = TfidfVectorizer(**fast.get_params()).fit(fitted_on).transform(held_out)
    chunks = [held_out[start:start + 50] for start in range(0, len(held_out), 50)]
    with ThreadPoolExecutor(4) as pool:  # words the training texts lacked are new: the table grows meanwhile
        results = list(pool.map(fast.transform, chunks))
    for start, result in zip(range(0, len(held_out), 50), results, strict=True):
        assert (result != expected[start:start + 50]).nnz == 0


def test_the_word_memory_starts_again_past_its_bytes(catalog_text, monkeypatch):
    fitted_on, held_out, _ = catalog_text
    fast = clone(make_text_pipeline().named_steps["features"].transformers[0][1]).fit(fitted_on)
    reference = TfidfVectorizer(**fast.get_params()).fit(fitted_on)
    seeded = fast.__dict__["_word_table"]
    assert len(seeded.index) > 100 and seeded.bytes == seeded.seed_bytes  # the training texts' words
    training_words = set(seeded.index)
    monkeypatch.setattr(wordmemory, "WORD_TABLE_BYTES", 10_000)
    huge = ["x" * 200_000 + str(i) for i in range(3)]  # over the bound: transformed, then forgotten
    assert_same_matrix(fast.transform(held_out + huge), reference.transform(held_out + huge))
    again = fast.__dict__["_word_table"]
    assert again is not seeded and set(again.index) == training_words and again.bytes == seeded.seed_bytes
    assert_same_matrix(fast.transform(held_out[::-1]), reference.transform(held_out[::-1]))  # from the seed again
    assert fast.__dict__["_word_table"].bytes - seeded.seed_bytes <= wordmemory.WORD_TABLE_BYTES


def test_configurations_that_are_not_word_by_word_are_refused():
    texts = ["silk dress", "maxi dress"]
    for params, reason in (({"analyzer": "char_wb"}, "analyzer='char_wb'"), ({"stop_words": "english"}, "stop words"),
                           ({"ngram_range": (1, 3)}, r"ngram_range=\(1, 3\)"),
                           ({"analyzer": str.split}, r"words\(text\)"), ({"tokenizer": str.split}, r"words\(text\)"),
                           ({"token_pattern": r"\S+ \S+|\S+"}, "matches white space")):
        with pytest.raises(ValueError, match=reason):
            FastTfidfVectorizer(**params).fit(texts)
    with pytest.raises(ValueError, match="string object received"):
        FastTfidfVectorizer().fit(texts).transform("silk dress")


def test_the_text_classifier_keeps_its_coefficients_column_major_and_predicts_as_scikit_learns(catalog_text):
    fitted_on, held_out, kinds = catalog_text
    common = {kind for kind, _ in Counter(kinds).most_common(8)}
    texts, labels = zip(*[(text, kind) for text, kind in zip(fitted_on[:len(kinds)], kinds, strict=True)
                            if kind in common], strict=True)
    vectorizer = FastTfidfVectorizer(sublinear_tf=True).fit(texts)
    x, x_new = vectorizer.transform(texts), vectorizer.transform(held_out)
    ours = make_text_pipeline().named_steps["classifier"].set_params(n_jobs=1)
    reference = SGDClassifier(**ours.get_params())
    assert isinstance(ours, TextSGDClassifier) and ours.fit(x, labels).coef_.flags["F_CONTIGUOUS"]
    assert not reference.fit(x, labels).coef_.flags["F_CONTIGUOUS"]
    assert np.array_equal(ours.coef_, reference.coef_)
    assert np.array_equal(ours.predict_proba(x_new), reference.predict_proba(x_new))
    ours.partial_fit(x_new[:50], labels[:50])  # SGD learns on in C order and hands back column-major coefficients
    reference.partial_fit(x_new[:50], labels[:50])
    assert ours.coef_.flags["F_CONTIGUOUS"] and np.array_equal(ours.coef_, reference.coef_)


@pytest.mark.parametrize("params", [{"binary": True}, {"max_df": 0.05, "ngram_range": (1, 2)},
                                    {"max_features": 500, "ngram_range": (1, 2)}, {"norm": "l1", "use_idf": False},
                                    {"smooth_idf": False, "norm": None}, {"dtype": np.int64}],
                         ids=["binary", "max_df", "max_features", "l1 no idf", "no smoothing no norm", "int dtype"])
def test_other_tfidf_settings_give_scikit_learns_matrix_too(catalog_text, params):
    fitted_on, held_out, _ = catalog_text
    fast = FastTfidfVectorizer(**params)
    with warnings.catch_warnings():  # scikit-learn warns about an integer dtype, and so does the subclass
        warnings.simplefilter("ignore", UserWarning)
        fast.fit(fitted_on)
        reference = TfidfVectorizer(**params).fit(fitted_on)
        assert_same_matrix(fast.transform(held_out), reference.transform(held_out))


def test_a_refit_or_a_later_set_params_changes_nothing_scikit_learn_would_not(catalog_text):
    fitted_on, held_out, _ = catalog_text
    fast = FastTfidfVectorizer(ngram_range=(1, 2)).fit(fitted_on[:3000])
    fast.transform(held_out)  # remembers words with the first vocabulary's columns
    fast.fit(fitted_on[3000:])
    reference = TfidfVectorizer(ngram_range=(1, 2)).fit(fitted_on[3000:])
    assert_same_matrix(fast.transform(held_out), reference.transform(held_out))
    fast.set_params(sublinear_tf=True, norm=None, binary=True)  # as scikit-learn: the fitted weighting stays
    reference.set_params(sublinear_tf=True, norm=None, binary=True)
    assert_same_matrix(fast.transform(held_out), reference.transform(held_out))


def test_a_tokenizer_reads_lower_cased_text_when_lowercase_is_on(catalog_text):
    fitted_on, held_out, _ = catalog_text

    class CaseKeeping:  # words as written: only the vectorizer's lowercase can fold them
        def __call__(self, text):
            return self.words(text)

        def words(self, text):
            return re.findall(r"\w\w+", text)

        def terms_of(self, word):
            return (word,)

    for lowercase in (True, False):
        params = {"tokenizer": CaseKeeping(), "token_pattern": None, "lowercase": lowercase}
        fast, reference = FastTfidfVectorizer(**params).fit(fitted_on), TfidfVectorizer(**params).fit(fitted_on)
        assert_same_matrix(fast.transform(held_out), reference.transform(held_out))


def test_the_per_word_memories_keep_long_words_within_their_bytes(monkeypatch):
    """Long words, each new: their stems and n-grams are returned as before, but what the memories keep stays within
    their bounds in bytes (measured by tracemalloc; a memory bounded in words kept them all)."""
    import tracemalloc

    from modeling.text import StemmingTokenizer, WordCharNgrams

    monkeypatch.setattr(wordmemory, "STEMS_BYTES", 100_000)
    monkeypatch.setattr(wordmemory, "CHAR_NGRAMS_BYTES", 2_000_000)
    stems, ngrams = StemmingTokenizer(), WordCharNgrams((2, 5))
    words = [f"{i:04d}" + "abcdefghij" * 500 for i in range(10)]  # ~1.2 MB of n-grams each, ~10 KB of stems
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        for word in words * 2:
            assert stems.terms_of(word) == (SnowballStemmer("english").stem(word),)
            assert len(ngrams.terms_of(word)) == 4 * len(word) - 2
        kept = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert kept <= wordmemory.STEMS_BYTES + wordmemory.CHAR_NGRAMS_BYTES, kept  # bounded in words: ~11 MB
    assert stems.terms_of("dresses") == ("dress",) and ngrams.terms_of("ab") == (" a", "ab", "b ", " ab", "ab ", " ab ")

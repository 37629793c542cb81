"""Readable cluster labels from each cluster's distinctive terms (class-based TF-IDF, as in BERTopic).

c-TF-IDF treats all texts of a cluster as one document: a term's weight is its frequency in the cluster
(normalised by the cluster's length) times log(1 + A / f), where A is the mean number of words per
cluster and f the term's frequency across all clusters. Terms common everywhere sink; terms that mark a
cluster rise.

Only words can be terms: a token starts with a letter and has at least two characters, so numbers,
punctuation, ``_`` and template markers such as ``###`` never are. English stop words, the words of prompt
templates (``### Instruction:`` ... ``### Response:``) and tokens that look like code rather than words
(``x1``, ``x_1``, hashes, base64) are no terms either, nor is a bigram holding one. A cluster left without
terms is labelled ``cluster N``.

A cluster's label is read from at most ``TEXTS_PER_CLUSTER`` of its texts (``labels_by_k``): one seeded random
order of the rows is drawn, and each cluster of each k takes its first texts in that order, so the k values share
most of the texts read and a sweep at a million rows counts terms in a fraction of them. Smaller clusters use
every text, so up to that size labels are exactly those of all texts.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

_TOKEN_PATTERN = r"(?u)\b[a-zA-Z][a-zA-Z0-9_+#]{1,}\b"  # a letter, then letters, digits, _ + or # (c++, c#)
# The section names of the usual prompt templates (Alpaca's "### Instruction:", "### Input:", "### Response:"):
# when the embedded text carries one, every cluster has it, and it names none of them.
TEMPLATE_WORDS = frozenset({"instruction", "instructions", "input", "output", "response"})
# A token this long with a digit in it is an id (a hash, a base64 run), while shorter ones are names (sha256,
# python3, word2vec); longer than _LONGEST_WORD, a token is glued-together code or data, rarely a word.
_LONG_CODE_TOKEN = 16
_LONGEST_WORD = 30
TEXTS_PER_CLUSTER = 1_000  # c-TF-IDF's top terms of a cluster are stable long before (a few hundred texts)


def term_counts(texts: Sequence[str]) -> tuple[Any, np.ndarray]:
    """Sparse (N, V) word and bigram counts over ``texts`` and the vocabulary; fit once, reused for every k."""
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS, CountVectorizer

    vectorizer = CountVectorizer(
        stop_words=sorted(ENGLISH_STOP_WORDS | TEMPLATE_WORDS),
        ngram_range=(1, 2),
        min_df=2,
        max_features=50_000,
        token_pattern=_TOKEN_PATTERN,
    )
    try:
        counts = vectorizer.fit_transform(texts)
    except ValueError:  # every text is empty or made of stop words
        return None, np.array([], dtype=object)
    vocabulary = vectorizer.get_feature_names_out()
    # Junk is dropped from the vocabulary, not by a tokenizer of ours: a Python call per token took prepare's
    # term counting from 6 s to 10 s on 52k texts, a pass over the distinct terms costs nothing.
    keep = np.flatnonzero([not any(_is_junk(word) for word in term.split()) for term in vocabulary])
    return counts[:, keep], vocabulary[keep]


@functools.lru_cache(maxsize=200_000)  # a word recurs in many bigrams and, in the app, in every relabel
def _is_junk(token: str) -> bool:
    """True for a token that reads as code or data, not as a word: a variable (``x1``, ``x_1``, ``a__``: under
    two letters once digits and ``_`` are taken away), a long token with a digit (a hash, base64), or a very
    long one."""
    letters = sum(char.isalpha() for char in token)
    if letters < 2:
        return True
    has_digit = any(char.isdigit() for char in token)
    return (has_digit and len(token) >= _LONG_CODE_TOKEN) or len(token) > _LONGEST_WORD


def labels_by_k(
    texts: Sequence[str] | Callable[[np.ndarray], list[str]],
    found_by_k: dict[int, np.ndarray],
    *,
    per_cluster: int = TEXTS_PER_CLUSTER,
    seed: int = 0,
) -> dict[int, list[dict[str, Any]]]:
    """``cluster_terms`` for every k of a sweep (``found_by_k``: a cluster id 0..k'-1 per row), each cluster read
    from at most ``per_cluster`` of its texts, drawn in one seeded order shared by every k; sizes count every row.
    ``texts`` is every row's text, or a function giving the texts of sorted rows (so only the sample is read)."""
    if not found_by_k:
        return {}
    order = np.random.default_rng(seed).permutation(len(next(iter(found_by_k.values()))))
    rows_by_k = {k: _first_per_cluster(found, order, per_cluster) for k, found in found_by_k.items()}
    union = np.unique(np.concatenate(list(rows_by_k.values())))
    counts, vocabulary = term_counts(texts(union) if callable(texts) else [texts[i] for i in union])
    result = {}
    for k, found in found_by_k.items():
        rows, n_clusters = rows_by_k[k], int(found.max()) + 1
        picked = None if counts is None else counts[np.searchsorted(union, rows)]
        sizes = np.bincount(found, minlength=n_clusters)
        result[k] = cluster_terms(picked, vocabulary, found[rows], n_clusters, sizes=sizes)
    return result


def _first_per_cluster(found: np.ndarray, order: np.ndarray, per_cluster: int) -> np.ndarray:
    """The sorted rows that come among the first ``per_cluster`` of their cluster in the random ``order``."""
    n_clusters = int(found.max()) + 1 if len(found) else 0
    return _first_per_cluster_capped(found, order, np.full(n_clusters, per_cluster, dtype=np.int64))


def cluster_terms(
    counts: Any, vocabulary: np.ndarray, labels: np.ndarray, k: int, top: int = 5, sizes: np.ndarray | None = None
) -> list[dict[str, Any]]:
    """For each cluster 0..k-1: its size (``sizes`` when the rows given are a sample, else counted), its ``top``
    distinctive terms, and a label made of the first three."""
    import scipy.sparse as sp

    sizes = np.bincount(labels, minlength=k) if sizes is None else sizes
    if counts is None or counts.shape[1] == 0:
        return [_item(c, [], int(sizes[c])) for c in range(k)]
    membership = sp.csr_matrix((np.ones(len(labels)), (labels, np.arange(len(labels)))), shape=(k, len(labels)))
    scores = _ctfidf(np.asarray((membership @ counts).todense(), dtype=np.float64))
    result = []
    for cluster in range(k):
        best = np.argsort(-scores[cluster], kind="stable")[:top]
        result.append(_item(cluster, [str(vocabulary[i]) for i in best if scores[cluster, i] > 0], int(sizes[cluster])))
    return result


def _drop_contained(terms: list[str]) -> list[str]:
    """Drop a unigram when a kept bigram already contains it, so labels do not repeat words."""
    kept: list[str] = []
    for term in terms:
        words = set(term.split())
        if any(words <= set(other.split()) or set(other.split()) <= words for other in kept):
            continue
        kept.append(term)
    return kept


BACKGROUND_TEXTS = 100  # texts read from each cluster an edit leaves alone: they only weigh the terms' rarity


def labels_for_clusters(
    texts: Callable[[np.ndarray], list[str]],
    found: np.ndarray,
    wanted: Sequence[int],
    *,
    seed: int = 0,
    per_cluster: int = TEXTS_PER_CLUSTER,
    background: int = BACKGROUND_TEXTS,
) -> list[dict[str, Any]]:
    """The labels of the ``wanted`` clusters of ``found`` (a cluster id per row; ids may have gaps), after an
    edit moved rows: each wanted cluster read from at most ``per_cluster`` texts, every other cluster from
    ``background`` texts, drawn in the sweep's seeded order. Each cluster's counts are scaled up to its size,
    so a term's rarity across clusters is weighed as if every text were read; only the wanted clusters' labels
    are made, so an edit costs the texts it touched, not the dataset's."""
    import scipy.sparse as sp

    found = np.asarray(found, dtype=np.int64)
    n_clusters = int(found.max()) + 1 if len(found) else 0
    sizes = np.bincount(found, minlength=n_clusters)
    caps = np.full(n_clusters, background, dtype=np.int64)
    caps[[int(c) for c in wanted]] = per_cluster
    order = np.random.default_rng(seed).permutation(len(found))
    rows = _first_per_cluster_capped(found, order, caps)
    counts, vocabulary = term_counts(texts(rows))
    read = np.bincount(found[rows], minlength=n_clusters)
    if counts is None or counts.shape[1] == 0:
        return [_item(int(c), [], int(sizes[c])) for c in wanted]
    scale = sizes[found[rows]] / np.maximum(read[found[rows]], 1)
    membership = sp.csr_matrix((scale, (found[rows], np.arange(len(rows)))), shape=(n_clusters, len(rows)))
    per_cluster_counts = (membership @ counts).tocsr()  # sparse: only the wanted rows are made dense
    words = np.asarray(per_cluster_counts.sum(axis=1)).ravel()
    # c-TF-IDF as _ctfidf computes it, the mean words per cluster taken over the non-empty clusters
    idf = np.log1p(words[sizes > 0].mean() / np.maximum(np.asarray(per_cluster_counts.sum(axis=0)).ravel(), 1.0))
    chosen = [int(c) for c in wanted]
    tf = np.asarray(per_cluster_counts[chosen].todense(), dtype=np.float64) / np.maximum(words[chosen], 1.0)[:, None]
    scores = tf * idf
    items = []
    for index, cluster in enumerate(chosen):
        row = scores[index]
        best = np.argsort(-row, kind="stable")[:5]
        items.append(_item(cluster, [str(vocabulary[i]) for i in best if row[i] > 0], int(sizes[cluster])))
    return items


def _ctfidf(per_cluster: np.ndarray) -> np.ndarray:
    """c-TF-IDF scores of (clusters x terms) counts (see the module docstring)."""
    words_per_cluster = per_cluster.sum(axis=1, keepdims=True)
    tf = per_cluster / np.maximum(words_per_cluster, 1.0)
    idf = np.log1p(words_per_cluster.mean() / np.maximum(per_cluster.sum(axis=0), 1.0))
    return tf * idf


def _item(cluster: int, terms: list[str], size: int) -> dict[str, Any]:
    label = " · ".join(_drop_contained(terms)[:3]) or f"cluster {cluster}"
    return {"cluster_id": cluster, "terms": terms, "label": label, "size": size}


def _first_per_cluster_capped(found: np.ndarray, order: np.ndarray, caps: np.ndarray) -> np.ndarray:
    """The sorted rows among the first ``caps[c]`` of their cluster ``c`` in the random ``order``."""
    rank = np.empty(len(order), dtype=np.int64)
    rank[order] = np.arange(len(order))
    by_cluster = np.lexsort((rank, found))
    groups = found[by_cluster]
    starts = np.searchsorted(groups, groups, side="left")
    return np.sort(by_cluster[np.arange(len(by_cluster)) - starts < caps[groups]])

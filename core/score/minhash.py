"""Near-duplicate groups by MinHash and LSH over word shingles (docs/algorithms.md 1.12).

A row's text is normalised (lower case, every run of punctuation and white space one space), cut into word
n-grams (shingles) and each shingle hashed to 64 bits, all in numpy over a batch of rows at once. rensa's
Rust MinHash turns each row's shingle hashes into a ``num_perm`` x uint32 signature, kept in one numpy
array (1M rows x 128 = 512 MB, no Python object per row). LSH splits the signature into bands; rows equal
on a whole band are candidates, every candidate pair is verified by its estimated Jaccard similarity (the
share of equal signature slots) and the verified pairs are joined into groups (connected components). Each
group keeps one row by the ``keep`` rule; the others are its near duplicates.

A row with fewer words than one shingle has no signature: it is a group of its own.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from typing import Literal

import numpy as np
import pandas as pd

Field = Literal["instruction", "response", "both"]
Keep = Literal["first", "longest", "quality"]
SEED = 20261204  # the permutations' seed: equal texts give equal signatures in every run and process
BATCH_ROWS = 8192  # rows hashed at once: about 6 MB of text and 60 MB of numpy temporaries
PAIR_CHUNK = 65536  # candidate pairs compared at once (65,536 x 128 x 4 B x 2 = 64 MB)
GROUPS_SHOWN = 200  # the tables of groups (Quality page, CLI) list at most the biggest this many
MISS_WEIGHT = 0.75  # how much a missed pair weighs against a candidate in the choice of bands (see bands_for)

_SEP = "\x00"  # between rows in a batch (a NUL inside a text becomes a space)
_NOT_WORD = re.compile(r"\W+")
# letters, digits and underscore (Python's \w in ASCII), and every byte of a multi-byte UTF-8 character
_WORD_BYTES = np.zeros(256, dtype=bool)
_WORD_BYTES[[*b"0123456789_abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"]] = True
_WORD_BYTES[128:] = True
_MASK = (1 << 64) - 1
_BASE = 0x100000001B3  # odd: invertible modulo 2**64, so a word's hash does not depend on where it starts
_BASE_INVERSE = pow(_BASE, -1, 1 << 64)
# one odd multiplier per position in a shingle, so "a b" and "b a" hash apart
_POSITION = np.random.default_rng(SEED).integers(1, 2**62, size=64, dtype=np.uint64) * np.uint64(2) + np.uint64(1)


@dataclasses.dataclass(frozen=True)
class Groups:
    """Per row: ``group`` (the position of the row its group keeps), ``similarity`` (estimated Jaccard to that
    row; 1 for the kept row), ``duplicate`` (True for every row but the kept one), ``too_short``."""

    group: np.ndarray
    similarity: np.ndarray
    duplicate: np.ndarray
    too_short: np.ndarray


def row_texts(instruction: Sequence[str], input_: Sequence[str], output: Sequence[str], field: Field) -> list[str]:
    """What is shingled: the instruction with its input, the response, or all three."""
    if field == "response":
        return [str(o) for o in output]
    prompts = [f"{i} {x}" for i, x in zip(instruction, input_, strict=True)]
    if field == "instruction":
        return prompts
    if field == "both":
        return [f"{p} {o}" for p, o in zip(prompts, output, strict=True)]
    raise ValueError(f"field must be instruction, response or both, not {field!r}")


def normalised_batch(texts: Sequence[str]) -> bytes:
    """The texts lower-cased and joined by NUL, as UTF-8. A word is a run of :data:`_WORD_BYTES`; a text with
    characters beyond ASCII has its non-word characters (Unicode punctuation) made spaces first, by a regular
    expression that would take 10x as long on every text (most are ASCII)."""
    rows = [text.lower() if text.isascii() else _NOT_WORD.sub(" ", text.lower()) for text in texts]
    joined = _SEP.join(rows)
    if joined.count(_SEP) != max(len(rows) - 1, 0):  # a text held a NUL of its own: it must not split a row
        joined = _SEP.join(row.replace(_SEP, " ") for row in rows)
    return joined.encode("utf-8")


def words(text: str) -> list[str]:
    """The words of one text as :func:`word_hashes` cuts them, as strings: for reference implementations."""
    return _NOT_WORD.sub(" ", text.lower()).replace(_SEP, " ").split()


def _mix(values: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: every input bit moves every output bit (wrapping uint64 arithmetic)."""
    values = values ^ (values >> np.uint64(30))
    values = values * np.uint64(0xBF58476D1CE4E5B9)
    values = values ^ (values >> np.uint64(27))
    values = values * np.uint64(0x94D049BB133111EB)
    return values ^ (values >> np.uint64(31))


def _powers(base: int, n: int) -> np.ndarray:
    """base**0 .. base**(n-1) modulo 2**64."""
    powers = np.full(n, base, dtype=np.uint64)
    powers[0] = 1
    return np.cumprod(powers, dtype=np.uint64)


def word_hashes(buffer: bytes) -> tuple[np.ndarray, np.ndarray]:
    """(a 64-bit hash of every word of a :func:`normalised_batch`, the row each word is in).

    A word's hash is the polynomial sum of its bytes, computed for all words at once from one running sum
    (its difference over the word, shifted back to the word's start by the base's inverse), then mixed.
    """
    data = np.frombuffer(buffer, dtype=np.uint8)
    with np.errstate(over="ignore"):
        running = np.cumsum(data.astype(np.uint64) * _powers(_BASE, len(data)), dtype=np.uint64)
        inside = _WORD_BYTES[data]
        edges = np.diff(np.concatenate(([0], inside.view(np.int8), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        before = np.where(starts > 0, running[np.maximum(starts - 1, 0)], np.uint64(0))
        sums = (running[stops - 1] - before) * _powers(_BASE_INVERSE, len(data))[starts]
        hashes = _mix(sums ^ (stops - starts).astype(np.uint64) << np.uint64(56))
    rows = np.searchsorted(np.flatnonzero(data == 0), starts)
    return hashes, rows


def shingle_hashes(texts: Sequence[str], size: int) -> tuple[np.ndarray, np.ndarray]:
    """(the hashes of every row's word ``size``-grams, row after row; offsets: row i's are [o[i], o[i+1]))."""
    if not 1 <= size <= len(_POSITION):
        raise ValueError(f"shingle must be between 1 and {len(_POSITION)} words, not {size}")
    words, rows = word_hashes(normalised_batch(texts))
    count = max(len(words) - size + 1, 0)
    valid = rows[:count] == rows[size - 1 : size - 1 + count]  # a shingle never spans two rows
    with np.errstate(over="ignore"):
        combined = np.zeros(count, dtype=np.uint64)
        for position in range(size):
            combined += words[position : position + count] * _POSITION[position]
        hashes = _mix(combined[valid]) if size > 1 else words[:count][valid]
    per_row = np.bincount(rows[:count][valid], minlength=len(texts))
    return hashes, np.concatenate(([0], np.cumsum(per_row))).astype(np.uint64)


def signatures(
    texts: Sequence[str],
    size: int,
    num_perm: int,
    progress: Callable[[int], None] | None = None,
    batch: int = BATCH_ROWS,
) -> tuple[np.ndarray, np.ndarray]:
    """(rows x ``num_perm`` uint32 MinHash signatures, too-short mask: rows with no shingle at all)."""
    from rensa import RMinHash

    result = np.empty((len(texts), num_perm), dtype=np.uint32)
    too_short = np.zeros(len(texts), dtype=bool)
    for start in range(0, len(texts), batch):
        part = texts[start : start + batch]
        hashes, offsets = shingle_hashes(part, size)
        digests = RMinHash.digest_matrix_from_flat_token_hashes(hashes, offsets, num_perm, SEED)
        result[start : start + len(part)] = np.asarray(digests.to_rows(), dtype=np.uint32)
        too_short[start : start + len(part)] = np.diff(offsets) == 0
        if progress:
            progress(len(part))
    return result, too_short


def bands_for(threshold: float, num_perm: int) -> tuple[int, int]:
    """(bands, rows per band), bands x rows <= ``num_perm``, minimising the weighted area of missed pairs above
    ``threshold`` and of candidates below it. Candidates are verified afterwards, so a candidate costs only
    time while a miss loses a duplicate: misses weigh ``MISS_WEIGHT``."""
    similarity = np.linspace(0.0, 1.0, 1001)
    best, choice = np.inf, (1, num_perm)
    for rows in range(1, num_perm + 1):
        bands = num_perm // rows
        caught = 1.0 - (1.0 - similarity**rows) ** bands
        below = similarity < threshold
        false_candidates = float(np.trapezoid(caught[below], similarity[below]))
        misses = float(np.trapezoid(1.0 - caught[~below], similarity[~below]))
        cost = (1 - MISS_WEIGHT) * false_candidates + MISS_WEIGHT * misses
        if cost < best:
            best, choice = cost, (bands, rows)
    return choice


def candidate_pairs(sig: np.ndarray, eligible: np.ndarray, bands: int, rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs of rows equal on at least one band: within a bucket each member with the first and with the next
    (linear in the bucket's size, where all pairs would be quadratic); distinct, first < second."""
    ids = np.flatnonzero(eligible)
    firsts, seconds = [], []
    for band in range(bands):
        with np.errstate(over="ignore"):
            key = np.zeros(len(ids), dtype=np.uint64)
            for column in sig[ids, band * rows : (band + 1) * rows].T:
                key = _mix(key ^ column.astype(np.uint64))
        order = np.argsort(key, kind="stable")
        ordered = key[order]
        same = np.flatnonzero(ordered[1:] == ordered[:-1]) + 1  # positions whose bucket began before them
        if not len(same):
            continue
        bucket_start = np.maximum.accumulate(
            np.where(np.concatenate(([True], ordered[1:] != ordered[:-1])), np.arange(len(ordered)), 0)
        )
        firsts += [ids[order[bucket_start[same]]], ids[order[same - 1]]]
        seconds += [ids[order[same]], ids[order[same]]]
    if not firsts:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64)
    left, right = np.concatenate(firsts).astype(np.int64), np.concatenate(seconds).astype(np.int64)
    low, high = np.minimum(left, right), np.maximum(left, right)
    pairs = np.unique(low * len(sig) + high)
    return pairs // len(sig), pairs % len(sig)


def estimated_jaccard(sig: np.ndarray, left: np.ndarray, right: np.ndarray) -> np.ndarray:
    """The share of equal signature slots of each pair (left[i], right[i]), in chunks of ``PAIR_CHUNK``."""
    result = np.empty(len(left), dtype=np.float64)
    for start in range(0, len(left), PAIR_CHUNK):
        stop = start + PAIR_CHUNK
        result[start:stop] = (sig[left[start:stop]] == sig[right[start:stop]]).mean(axis=1)
    return result


def keep_order(keep: Keep, lengths: np.ndarray | None, quality: np.ndarray | None) -> np.ndarray:
    """A rank per row, lower is kept first: ``first`` dataset order; ``longest`` the longest response;
    ``quality`` the highest quality, a row without one (NaN) after every row with one. Ties: dataset order."""
    n = len(lengths) if lengths is not None else len(quality) if quality is not None else 0
    position = np.arange(n)
    if keep == "first":
        return position
    if keep == "longest" and lengths is not None:
        return np.lexsort((position, -np.asarray(lengths, dtype=np.float64))).argsort()
    if keep == "quality" and quality is not None:
        score = np.asarray(quality, dtype=np.float64)
        return np.lexsort((position, np.where(np.isnan(score), np.inf, -score))).argsort()
    raise ValueError(f"keep must be first, longest or quality (with its values), not {keep!r}")


def group_rows(sig: np.ndarray, too_short: np.ndarray, threshold: float, rank: np.ndarray) -> Groups:
    """Groups of rows linked by verified candidate pairs (estimated Jaccard >= ``threshold``); each group keeps
    its row of lowest ``rank`` (:func:`keep_order`)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(sig)
    bands, rows = bands_for(threshold, sig.shape[1])
    left, right = candidate_pairs(sig, ~too_short, bands, rows)
    close = estimated_jaccard(sig, left, right) >= threshold
    graph = coo_matrix((np.ones(int(close.sum()), dtype=np.int8), (left[close], right[close])), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    by_rank = np.lexsort((rank, labels))  # each label's rows, the one to keep first
    first_of_label = np.ones(n, dtype=bool)
    first_of_label[1:] = labels[by_rank][1:] != labels[by_rank][:-1]
    kept_of_label = np.empty(labels.max() + 1 if n else 0, dtype=np.int64)
    kept_of_label[labels[by_rank][first_of_label]] = by_rank[first_of_label]
    group = kept_of_label[labels] if n else np.zeros(0, dtype=np.int64)
    duplicate = group != np.arange(n)
    similarity = np.ones(n, dtype=np.float64)
    members = np.flatnonzero(duplicate)
    similarity[members] = estimated_jaccard(sig, members, group[members])
    return Groups(group, similarity, duplicate, too_short)


def group_table(raw: pd.DataFrame, limit: int = GROUPS_SHOWN) -> pd.DataFrame:
    """The groups of two or more rows in the stored scores (``raw``: :func:`core.score.quality.raw_signals`),
    biggest first (ties: by group id): group (the kept row's number), size, lowest similarity to the kept row."""
    if "minhash_group" not in raw or raw.minhash_group.isna().all():
        return pd.DataFrame(columns=["group", "size", "lowest_similarity"])
    frame = pd.DataFrame({"group": raw.minhash_group, "similarity": raw.get("minhash_similarity")}).dropna(
        subset=["group"]
    )
    table = frame.groupby("group").agg(size=("group", "size"), lowest_similarity=("similarity", "min")).reset_index()
    table = table[table["size"] > 1].sort_values(["size", "group"], ascending=[False, True]).head(limit)
    return table.assign(group=table.group.astype(int), lowest_similarity=table.lowest_similarity.round(3))


def duplicate_summary(raw: pd.DataFrame) -> tuple[int, int] | None:
    """(groups of two or more rows, rows flagged ``minhash_duplicate``) in the stored scores; None before the
    minhash scorer has run on the dataset."""
    if "minhash_group" not in raw or raw.minhash_group.isna().all():
        return None
    sizes = raw.minhash_group.value_counts()
    return int((sizes > 1).sum()), int(raw.minhash_duplicate.fillna(0).sum())


def group_members(raw: pd.DataFrame, group: int) -> pd.DataFrame:
    """One group's rows: row_idx, similarity, kept; the kept row first, then by similarity, highest first."""
    rows = raw.index[raw.minhash_group == group]
    members = pd.DataFrame(
        {
            "row_idx": rows.astype(int),
            "similarity": raw.loc[rows, "minhash_similarity"].round(3).to_numpy(),
            "kept": (rows == group),
        }
    )
    return members.sort_values(["kept", "similarity", "row_idx"], ascending=[False, False, True]).reset_index(drop=True)

"""Which voices are one speaker: agglomerative clustering of L2-normalised embeddings (scipy's
average linkage on cosine distance), cut at a distance threshold or at a number of clusters, and
the clusters' centroids."""

from __future__ import annotations

from typing import Optional, Sequence

import numpy as np


def cluster(
    embeddings: np.ndarray,
    threshold: float,
    num: int = 0,
    min_clusters: int = 1,
    max_clusters: Optional[int] = None,
) -> np.ndarray:
    """Cluster labels ``0..k-1`` (numbered by first appearance) of ``embeddings`` ``[n, d]``:
    ``num`` clusters when given (at most ``n``), else the clusters of the average-linkage tree cut
    at cosine distance ``threshold``, their number brought into ``[min_clusters, max_clusters]``."""
    n = len(embeddings)
    if n == 0:
        return np.zeros(0, dtype=int)
    if n == 1:
        return np.zeros(1, dtype=int)
    from scipy.cluster.hierarchy import fcluster, linkage

    x = np.asarray(embeddings, dtype=np.float64)
    x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-12)
    tree = linkage(x, method="average", metric="cosine")
    if num > 0:
        raw = fcluster(tree, t=min(num, n), criterion="maxclust")
    else:
        raw = fcluster(tree, t=threshold, criterion="distance")
        k = len(set(raw.tolist()))
        lo, hi = min(min_clusters, n), min(max_clusters or n, n)
        if k < lo or k > hi:
            raw = fcluster(tree, t=max(lo, min(k, hi)), criterion="maxclust")
    return first_appearance(raw)


def first_appearance(labels: Sequence[int]) -> np.ndarray:
    """``labels`` renumbered ``0, 1, ...`` in order of first appearance."""
    order = {}
    for x in labels:
        order.setdefault(int(x), len(order))
    return np.array([order[int(x)] for x in labels], dtype=int)


def centroids(embeddings: np.ndarray, labels: np.ndarray, weights: Optional[np.ndarray] = None) -> np.ndarray:
    """``[k, d]`` L2-normalised weighted means of each cluster's embeddings (``k = labels.max() + 1``)."""
    k = int(labels.max()) + 1 if len(labels) else 0
    w = np.ones(len(labels)) if weights is None else np.asarray(weights, dtype=np.float64)
    out = np.zeros((k, embeddings.shape[1]), dtype=np.float64)
    np.add.at(out, labels, embeddings * w[:, None])
    return (out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)).astype(np.float32)


def nearest(embeddings: np.ndarray, centres: np.ndarray) -> np.ndarray:
    """Index of the most similar (cosine) centre of each embedding."""
    return np.argmax(np.asarray(embeddings) @ np.asarray(centres).T, axis=1)

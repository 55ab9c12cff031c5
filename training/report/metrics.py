"""The report's numbers on latent codes, and the PCA baseline (scikit-learn).

How well a code separates the digits is measured three ways on the test codes: the
accuracy of a k-NN classifier that looks the codes up among the training codes, the
silhouette of the true labels, and how well k-means (k = 10), which never sees a label,
agrees with them (adjusted Rand index). The PCA baseline is the best reconstruction any
linear autoencoder can reach with p numbers (Eckart-Young): the line to beat.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.metrics import adjusted_rand_score, confusion_matrix, silhouette_score
from sklearn.neighbors import KNeighborsClassifier
from threadpoolctl import threadpool_limits

CLASSES = 10  # digits 0-9 (Fashion-MNIST has ten classes too)
KNN_NEIGHBOURS = 5
SILHOUETTE_SAMPLE = 4000  # silhouette costs O(n^2) in pairs of codes: a fixed, seeded sample bounds it
KMEANS_RESTARTS = 4  # the best of a few seeded starts guards against one poor initialisation
SEED = 0


@dataclass(frozen=True)
class LatentScores:
    knn_accuracy: float  # fraction of test codes whose k nearest training codes vote for the right digit
    silhouette: float  # of the true labels, in [-1, 1]; near 1 when digits form tight, distant clusters
    ari: float  # k-means clusters against the labels; 1 is a perfect match, about 0 is chance
    confusion: np.ndarray  # (CLASSES, CLASSES) counts: true digit by k-NN prediction


@dataclass(frozen=True)
class ConfusedPair:
    a: int  # the smaller digit
    b: int
    a_as_b: int  # test images of digit a that k-NN called b
    b_as_a: int
    rate: float  # (a_as_b + b_as_a) over the number of test images of a and b

    @property
    def count(self) -> int:
        return self.a_as_b + self.b_as_a


def latent_scores(
    train_codes: np.ndarray, train_labels: np.ndarray, test_codes: np.ndarray, test_labels: np.ndarray
) -> LatentScores:
    """k-NN accuracy and confusions, silhouette and k-means ARI; seeded, so repeatable."""
    # torch and scikit-learn each bring their own OpenMP runtime; run side by side, their spinning
    # threads fight for the cores and k-means slows down many times over: scikit-learn gets one.
    with threadpool_limits(limits=1, user_api="openmp"):
        knn = KNeighborsClassifier(n_neighbors=min(KNN_NEIGHBOURS, len(train_codes))).fit(train_codes, train_labels)
        predicted = knn.predict(test_codes)
        clusters = KMeans(n_clusters=CLASSES, n_init=KMEANS_RESTARTS, random_state=SEED).fit_predict(test_codes)
        sample = SILHOUETTE_SAMPLE if len(test_codes) > SILHOUETTE_SAMPLE else None
        silhouette = (
            float(silhouette_score(test_codes, test_labels, sample_size=sample, random_state=SEED))
            if len(np.unique(test_labels)) > 1
            else float("nan")  # undefined for a single class
        )
    return LatentScores(
        knn_accuracy=float(np.mean(predicted == test_labels)),
        silhouette=silhouette,
        ari=float(adjusted_rand_score(test_labels, clusters)),
        confusion=confusion_matrix(test_labels, predicted, labels=np.arange(CLASSES)),
    )


def confused_pairs(confusion: np.ndarray, top: int = 3) -> list[ConfusedPair]:
    """The `top` unordered pairs with the most mistakes either way; pairs never confused are left out."""
    support = confusion.sum(axis=1)
    pairs = []
    for a in range(len(confusion)):
        for b in range(a + 1, len(confusion)):
            a_as_b, b_as_a = int(confusion[a, b]), int(confusion[b, a])
            if a_as_b + b_as_a:
                rate = (a_as_b + b_as_a) / max(int(support[a] + support[b]), 1)
                pairs.append(ConfusedPair(a, b, a_as_b, b_as_a, rate))
    # Ties go to the lower digits, so the order never depends on anything but the counts.
    pairs.sort(key=lambda pair: (-pair.count, pair.a, pair.b))
    return pairs[:top]


class LinearAutoencoder:
    """PCA with p components, used like the models: encode to p numbers, decode back."""

    def __init__(self, pca: PCA, p: int) -> None:
        # The first p components of a PCA are the PCA with p components, so one fit serves every p.
        self.p = p
        self.mean = pca.mean_.astype(np.float32)
        self.components = pca.components_[:p].astype(np.float32)

    def encode(self, images: np.ndarray) -> np.ndarray:
        return (images - self.mean) @ self.components.T

    def decode(self, codes: np.ndarray) -> np.ndarray:
        # Unclipped: a linear decoder has no Sigmoid, and clipping would flatter the baseline.
        return codes @ self.components + self.mean


def fit_linear_autoencoders(train_images: np.ndarray, sizes: list[int]) -> dict[int, LinearAutoencoder]:
    """One PCA fit on the training images, truncated to each p in `sizes`."""
    # The covariance solver decomposes the 784 x 784 covariance, not all the images: far less work.
    pca = PCA(n_components=max(sizes), svd_solver="covariance_eigh").fit(train_images)
    return {p: LinearAutoencoder(pca, p) for p in sorted(set(sizes))}

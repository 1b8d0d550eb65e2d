"""Evaluation of learned features: k-NN and linear-probe accuracy, reconstruction error, splits.

Nothing here imports training code, so evaluation can run on saved features alone.  Every function
takes torch tensors or numpy arrays and returns plain Python numbers (or tensors where documented).
"""

from .classifier import ClassifierError, DomainClassifier, load_classifier, save_classifier, train_classifier
from .fid import FeatureStats, domain_fid, feature_stats_of, frechet_distance, kernel_distance, sample_batches
from .knn import knn_accuracy, nearest_neighbours
from .probe import bn_crelu, feature_stats, linear_probe
from .recon import random_derangement, reconstruction_errors
from .splits import VAL_SPLITS, train_val_split

__all__ = [
    "ClassifierError",
    "DomainClassifier",
    "sample_batches",
    "FeatureStats",
    "domain_fid",
    "feature_stats_of",
    "frechet_distance",
    "kernel_distance",
    "load_classifier",
    "save_classifier",
    "train_classifier",
    "bn_crelu",
    "feature_stats",
    "knn_accuracy",
    "linear_probe",
    "nearest_neighbours",
    "random_derangement",
    "reconstruction_errors",
    "train_val_split",
    "VAL_SPLITS",
]

"""Metrics from predictions (scikit-learn), shared by training, cross-validation and predict."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


def summary(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, float]:
    return {
        "accuracy": float(accuracy_score(y_true, y_pred)),
        "f1_macro": float(f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }


def confusion(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """Rows: true class, columns: predicted class (sklearn's convention)."""
    return confusion_matrix(y_true, y_pred, labels=list(range(num_classes)))


def per_class_table(y_true: np.ndarray, y_pred: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=list(range(len(class_names))), zero_division=0
    )
    return pd.DataFrame({"class": class_names, "precision": precision.round(4), "recall": recall.round(4),
                         "f1": f1.round(4), "support": support})


def confusion_frame(matrix: np.ndarray, class_names: list[str]) -> pd.DataFrame:
    """The matrix as a labelled table for CSV: index = true class, columns = predicted class."""
    frame = pd.DataFrame(matrix, index=class_names, columns=class_names)
    frame.index.name = "true \\ predicted"
    return frame

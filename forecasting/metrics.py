"""Forecast metrics on masked entries (`mask` True = hidden = scored): RMSE, MAE, JSD, CRPS.

Pure functions, plus `MetricAccumulator` that pools them over chunks of windows. This is the one CRPS
of the toolkit (the unbiased "fair" ensemble form); the benchmark, the calibration and the bench
scripts all use it.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

JSD_BINS = 50


def _masked_errors(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    pred, truth, mask = np.asarray(pred), np.asarray(truth), np.asarray(mask, dtype=bool)
    if pred.shape != truth.shape or mask.shape != truth.shape:
        raise ValueError(f"shapes differ: pred {pred.shape}, truth {truth.shape}, mask {mask.shape}")
    if not mask.any():
        raise ValueError("the mask hides no entry: nothing to score")
    return pred[mask].astype(np.float64) - truth[mask].astype(np.float64)


def rmse(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """sqrt(mean over hidden entries of (pred - truth)^2)."""
    return float(np.sqrt(np.mean(_masked_errors(pred, truth, mask) ** 2)))


def mae(pred: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """mean over hidden entries of |pred - truth|."""
    return float(np.mean(np.abs(_masked_errors(pred, truth, mask))))


def histogram(values: np.ndarray, bins: int = JSD_BINS) -> np.ndarray:
    """Counts of `values` clipped to [0, 1] in `bins` equal bins on [0, 1] (float64)."""
    v = np.clip(np.asarray(values, dtype=np.float64).ravel(), 0.0, 1.0)
    return np.histogram(v, bins=bins, range=(0.0, 1.0))[0].astype(np.float64)


def jsd_from_counts(p: np.ndarray, q: np.ndarray) -> float:
    """Jensen-Shannon divergence (base 2, in [0, 1]) of two histograms given as counts.

    JSD(P, Q) = 1/2 KL(P || M) + 1/2 KL(Q || M),  M = (P + Q) / 2,  KL(P || M) = sum_i p_i log2(p_i / m_i).

    Written out rather than `scipy.spatial.distance.jensenshannon(p, q, base=2) ** 2`: scipy returns the
    square root of the divergence, and squaring it differs from this sum in the last bits (~1e-16) for
    most histograms, so the committed benchmark values would not be reproduced exactly.
    """
    p, q = np.asarray(p, dtype=np.float64), np.asarray(q, dtype=np.float64)
    if p.shape != q.shape or p.sum() <= 0 or q.sum() <= 0:
        raise ValueError("JSD needs two non-empty histograms of the same bins")
    p, q = p / p.sum(), q / q.sum()
    m = 0.5 * (p + q)

    def kl(a: np.ndarray) -> float:
        nz = a > 0
        return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

    return float(min(max(0.5 * kl(p) + 0.5 * kl(q), 0.0), 1.0))


def jsd(generated: np.ndarray, real: np.ndarray, bins: int = JSD_BINS) -> float:
    """JSD (base 2) between the `bins`-bin histograms on [0, 1] of generated and real values."""
    return jsd_from_counts(histogram(generated, bins), histogram(real, bins))


def crps_sum(samples: np.ndarray, truth: np.ndarray) -> float:
    """Sum over entries of the unbiased sample CRPS (energy form) of S samples per entry.

        CRPS(F, y) = E|X - y| - 1/2 E|X - X'|
                   ~ 1/S sum_i |x_i - y| - 1 / (2 S (S - 1)) sum_{i != j} |x_i - x_j|

    samples (S, M), truth (M,). The second (spread) term uses the unbiased pair average ("fair" CRPS),
    so a forecast whose samples all equal one value scores exactly its absolute error; with S = 1 the
    spread term is 0. sum_{i<j} |x_i - x_j| = sum_k (2k - S + 1) x_(k) over sorted samples x_(0..S-1).
    """
    samples = np.asarray(samples, dtype=np.float64)
    truth = np.asarray(truth, dtype=np.float64)
    S = samples.shape[0]
    accuracy = np.abs(samples - truth[None]).mean(axis=0)
    if S < 2:
        return float(accuracy.sum())
    ordered = np.sort(samples, axis=0)
    k = np.arange(S, dtype=np.float64).reshape(-1, *([1] * (samples.ndim - 1)))
    pair_sum = ((2 * k - S + 1) * ordered).sum(axis=0)  # sum_{i<j} |x_i - x_j|
    spread = pair_sum / (S * (S - 1))  # = 1/(2 S (S-1)) * sum_{i != j}
    return float((accuracy - spread).sum())


def crps(samples: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean CRPS over hidden entries; samples (S, *truth.shape)."""
    samples, mask = np.asarray(samples), np.asarray(mask, dtype=bool)
    if samples.shape[1:] != np.shape(truth) or mask.shape != np.shape(truth):
        raise ValueError(f"samples {samples.shape} must be (S, *{np.shape(truth)}) like the mask {mask.shape}")
    if not mask.any():
        raise ValueError("the mask hides no entry: nothing to score")
    return crps_sum(samples[:, mask], np.asarray(truth)[mask]) / int(mask.sum())


@dataclass
class MetricAccumulator:
    """Pooled metrics over chunks: sums of squared/absolute errors, histograms and CRPS over hidden entries."""

    bins: int = JSD_BINS
    n: int = 0
    sq: float = 0.0
    abs: float = 0.0
    crps: float = 0.0
    crps_n: int = 0
    hist_pred: np.ndarray = field(default=None)  # type: ignore[assignment]
    hist_true: np.ndarray = field(default=None)  # type: ignore[assignment]

    def __post_init__(self) -> None:
        self.hist_pred = np.zeros(self.bins)
        self.hist_true = np.zeros(self.bins)

    def update(self, pred: np.ndarray, truth: np.ndarray, mask: np.ndarray, samples: np.ndarray | None = None) -> None:
        err = _masked_errors(pred, truth, mask)
        self.n += err.size
        self.sq += float(np.sum(err**2))
        self.abs += float(np.sum(np.abs(err)))
        self.hist_pred += histogram(np.asarray(pred)[mask], self.bins)
        self.hist_true += histogram(np.asarray(truth)[mask], self.bins)
        if samples is not None:
            self.crps += crps_sum(np.asarray(samples)[:, mask], np.asarray(truth)[mask])
            self.crps_n += err.size

    def result(self, with_jsd: bool) -> dict[str, float | None]:
        if self.n == 0:
            return {"rmse": None, "mae": None, "jsd": None, "crps": None}
        return {
            "rmse": float(np.sqrt(self.sq / self.n)),
            "mae": self.abs / self.n,
            "jsd": jsd_from_counts(self.hist_pred, self.hist_true) if with_jsd else None,
            "crps": self.crps / self.crps_n if self.crps_n else None,
        }

"""Detection metrics in pure numpy: EER from a DET curve, ROC AUC, and threshold metrics.

Convention everywhere: label 1 = fake (spoof, the positive class), label 0 = real (bona fide); a higher score
means "more likely fake", and a clip is called fake when score >= threshold.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import rankdata


def _split_scores(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    if labels.shape != scores.shape:
        raise ValueError(f"{labels.size} labels but {scores.size} scores")
    return np.sort(scores[labels == 1]), np.sort(scores[labels == 0])


def det_curve(labels, scores) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fnr, fpr, thresholds) for every distinct score used as threshold, plus +inf (everything real)."""
    fake_scores, real_scores = _split_scores(labels, scores)
    if len(fake_scores) == 0 or len(real_scores) == 0:
        raise ValueError("a DET curve needs both real and fake examples")
    thresholds = np.append(np.unique(np.concatenate([fake_scores, real_scores])), np.inf)
    # Fakes scored below the threshold are misses; reals at or above it are false alarms.
    fnr = np.searchsorted(fake_scores, thresholds, side="left") / len(fake_scores)
    fpr = 1.0 - np.searchsorted(real_scores, thresholds, side="left") / len(real_scores)
    return fnr, fpr, thresholds


def compute_eer(labels, scores) -> tuple[float, float]:
    """Equal error rate and the threshold where miss and false-alarm rates are closest."""
    fnr, fpr, thresholds = det_curve(labels, scores)
    best = int(np.argmin(np.abs(fnr - fpr)))
    return float((fnr[best] + fpr[best]) / 2.0), float(thresholds[best])


def roc_auc(labels, scores) -> float:
    """Probability that a random fake scores above a random real (ties count one half)."""
    labels = np.asarray(labels).astype(int).ravel()
    n_fake, n_real = int(labels.sum()), int(len(labels) - labels.sum())
    if n_fake == 0 or n_real == 0:
        raise ValueError("ROC AUC needs both real and fake examples")
    ranks = rankdata(np.asarray(scores, dtype=np.float64).ravel())
    return float((ranks[labels == 1].sum() - n_fake * (n_fake + 1) / 2.0) / (n_fake * n_real))


def threshold_metrics(labels, scores, threshold: float) -> dict:
    """Accuracy, precision, recall, F1, balanced accuracy, per-class accuracy and confusion at `threshold`."""
    labels = np.asarray(labels).astype(int).ravel()
    predicted = (np.asarray(scores, dtype=np.float64).ravel() >= threshold).astype(int)
    true_pos = int(np.sum((predicted == 1) & (labels == 1)))
    true_neg = int(np.sum((predicted == 0) & (labels == 0)))
    false_pos = int(np.sum((predicted == 1) & (labels == 0)))
    false_neg = int(np.sum((predicted == 0) & (labels == 1)))
    n_fake, n_real = true_pos + false_neg, true_neg + false_pos
    precision = true_pos / (true_pos + false_pos) if true_pos + false_pos else 0.0
    recall = true_pos / n_fake if n_fake else 0.0
    real_accuracy = true_neg / n_real if n_real else float("nan")
    return {
        "threshold": float(threshold),
        "accuracy": (true_pos + true_neg) / max(len(labels), 1),
        "balanced_accuracy": float(np.nanmean([real_accuracy, recall if n_fake else float("nan")])),
        "precision": precision,
        "recall": recall,
        "f1": 2 * precision * recall / (precision + recall) if precision + recall else 0.0,
        "per_class_accuracy": {"real": real_accuracy, "fake": recall if n_fake else float("nan")},
        # Rows are the true class, columns the predicted class, both in the order [real, fake].
        "confusion_matrix": [[true_neg, false_pos], [false_neg, true_pos]],
        # A model that calls every clip the same class looks trained but is not (PITFALLS 1).
        "single_class_predictions": bool(predicted.min() == predicted.max()),
    }


def bootstrap_interval(labels, scores, statistic, n_resamples: int = 1000, seed: int = 0,
                       level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval of statistic(labels, scores), resampling each class separately.

    Small test sets make single numbers misleading (PITFALLS 2); the interval says how far they could move.
    """
    labels = np.asarray(labels).astype(int).ravel()
    scores = np.asarray(scores, dtype=np.float64).ravel()
    fake, real = np.flatnonzero(labels == 1), np.flatnonzero(labels == 0)
    rng = np.random.default_rng(seed)
    values = []
    for _ in range(n_resamples):
        sample = np.concatenate([rng.choice(fake, len(fake)), rng.choice(real, len(real))])
        values.append(statistic(labels[sample], scores[sample]))
    tail = (1.0 - level) / 2.0 * 100.0
    low, high = np.percentile(values, [tail, 100.0 - tail])
    return float(low), float(high)


def summarise(labels, scores, threshold: float) -> dict:
    """All metrics for one scored set: ranking metrics, and threshold metrics at the given and the EER point."""
    labels = np.asarray(labels).astype(int).ravel()
    summary = {"n": int(len(labels)), "n_real": int((labels == 0).sum()), "n_fake": int((labels == 1).sum())}
    if summary["n_real"] and summary["n_fake"]:
        eer, eer_threshold = compute_eer(labels, scores)
        summary.update(roc_auc=roc_auc(labels, scores), eer=eer, eer_threshold=eer_threshold,
                       at_eer_threshold=threshold_metrics(labels, scores, eer_threshold),
                       roc_auc_95ci=list(bootstrap_interval(labels, scores, roc_auc)),
                       eer_95ci=list(bootstrap_interval(labels, scores, lambda *data: compute_eer(*data)[0])))
    summary["at_threshold"] = threshold_metrics(labels, scores, threshold)
    return summary


# Cost models of the tandem detection cost function, as in the organisers' evaluation packages: prior of a spoof
# trial, and the costs of ASV and countermeasure (CM) errors. 2019 uses the legacy t-DCF; 2021 the revised one of
# Kinnunen et al. 2020 (TASLP, "Tandem assessment ... Fundamentals"), whose costs are those of the tandem system.
TDCF_2019_COSTS = {"p_spoof": 0.05, "p_target": 0.95 * 0.99, "p_nontarget": 0.95 * 0.01,
                   "c_miss_asv": 1.0, "c_fa_asv": 10.0, "c_miss_cm": 1.0, "c_fa_cm": 10.0}
TDCF_2021_COSTS = {"p_spoof": 0.05, "p_target": 0.95 * 0.99, "p_nontarget": 0.95 * 0.01,
                   "c_miss": 1.0, "c_fa": 10.0, "c_fa_spoof": 10.0}


def asv_error_rates(asv_keys, asv_scores) -> tuple[float, float, float]:
    """(P_miss, P_fa, P_miss_spoof) of a fixed ASV system at its EER threshold on target vs nontarget trials,
    as both ASVspoof packages compute them; `asv_keys` holds 'target', 'nontarget' or 'spoof' per score."""
    asv_keys = np.asarray(asv_keys).astype(str)
    asv_scores = np.asarray(asv_scores, dtype=np.float64)
    target, nontarget, spoof = (asv_scores[asv_keys == key] for key in ("target", "nontarget", "spoof"))
    if not (len(target) and len(nontarget) and len(spoof)):
        raise ValueError("ASV scores need target, nontarget and spoof trials")
    asv_labels = np.concatenate([np.ones(len(target)), np.zeros(len(nontarget))])
    _, asv_threshold = compute_eer(asv_labels, np.concatenate([target, nontarget]))
    return (float(np.mean(target < asv_threshold)), float(np.mean(nontarget >= asv_threshold)),
            float(np.mean(spoof < asv_threshold)))


def _cm_error_rates(labels, scores) -> tuple[np.ndarray, np.ndarray]:
    """(P_miss_cm, P_fa_cm) over every CM threshold. A CM miss is a bona fide trial rejected, our false positive;
    a CM false alarm is a spoof accepted, our miss (our labels/scores: 1 = fake, higher = more fake)."""
    fake_missed, real_flagged, _ = det_curve(labels, scores)
    return real_flagged, fake_missed


def min_tdcf(labels, scores, asv_keys, asv_scores, costs: dict = TDCF_2019_COSTS) -> float:
    """Normalised minimum legacy t-DCF (ASVspoof 2019) of a countermeasure in tandem with a fixed ASV system
    given by its scores on target, nontarget and spoof trials (`asv_keys`): over every CM threshold
    t-DCF = C1 * P_miss_cm + C2 * P_fa_cm, normalised by min(C1, C2)."""
    p_miss_asv, p_fa_asv, p_miss_spoof_asv = asv_error_rates(asv_keys, asv_scores)
    c1 = costs["p_target"] * (costs["c_miss_cm"] - costs["c_miss_asv"] * p_miss_asv) \
        - costs["p_nontarget"] * costs["c_fa_asv"] * p_fa_asv
    c2 = costs["c_fa_cm"] * costs["p_spoof"] * (1.0 - p_miss_spoof_asv)
    if c1 <= 0 or c2 <= 0:
        raise ValueError(f"t-DCF undefined for this ASV system (C1={c1:.4g}, C2={c2:.4g})")
    p_miss_cm, p_fa_cm = _cm_error_rates(labels, scores)
    return float(np.min(c1 * p_miss_cm + c2 * p_fa_cm) / min(c1, c2))


def min_tdcf_revised(labels, scores, asv_keys, asv_scores, costs: dict = TDCF_2021_COSTS) -> float:
    """Normalised minimum revised t-DCF (ASVspoof 2021 LA): over every CM threshold
    t-DCF = C0 + C1 * P_miss_cm + C2 * P_fa_cm, normalised by C0 + min(C1, C2), the cost of a CM that accepts or
    rejects everything. C0 is the cost the ASV system incurs on its own, so unlike the legacy form the ASV's
    errors raise the floor instead of shrinking C1."""
    p_miss_asv, p_fa_asv, p_miss_spoof_asv = asv_error_rates(asv_keys, asv_scores)
    c0 = costs["p_target"] * costs["c_miss"] * p_miss_asv + costs["p_nontarget"] * costs["c_fa"] * p_fa_asv
    c1 = costs["p_target"] * costs["c_miss"] - c0
    c2 = costs["p_spoof"] * costs["c_fa_spoof"] * (1.0 - p_miss_spoof_asv)
    if c1 < 0 or c2 < 0 or c0 + min(c1, c2) <= 0:
        raise ValueError(f"t-DCF undefined for this ASV system (C0={c0:.4g}, C1={c1:.4g}, C2={c2:.4g})")
    p_miss_cm, p_fa_cm = _cm_error_rates(labels, scores)
    return float(np.min(c0 + c1 * p_miss_cm + c2 * p_fa_cm) / (c0 + min(c1, c2)))


# Cost model name (AsvScores.cost_model) -> (function, how reports name it).
MIN_TDCF = {"asvspoof2019": (min_tdcf, "ASVspoof 2019 cost model, legacy t-DCF"),
            "asvspoof2021": (min_tdcf_revised, "ASVspoof 2021 cost model, revised t-DCF")}

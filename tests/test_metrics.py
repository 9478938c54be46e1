"""EER, AUC and threshold metrics against hand-worked values and scikit-learn."""
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score, roc_curve

from deepfake_detector.report import metrics
from deepfake_detector.report.metrics import bootstrap_interval, compute_eer, roc_auc, summarise, threshold_metrics


def test_perfect_separation_gives_zero_eer_and_unit_auc():
    labels = [0, 0, 0, 1, 1, 1]
    scores = [0.1, 0.2, 0.3, 0.7, 0.8, 0.9]
    eer, threshold = compute_eer(labels, scores)
    assert eer == 0.0
    assert 0.3 < threshold <= 0.7
    assert roc_auc(labels, scores) == 1.0


def test_reversed_scores_give_eer_one_and_auc_zero():
    labels = [0, 0, 1, 1]
    assert compute_eer(labels, [0.9, 0.8, 0.2, 0.1])[0] == 1.0
    assert roc_auc(labels, [0.9, 0.8, 0.2, 0.1]) == 0.0


def test_identical_score_sets_give_eer_near_half():
    rng = np.random.default_rng(0)
    scores = rng.random(2000)
    labels = np.r_[np.zeros(1000), np.ones(1000)]
    eer, _ = compute_eer(labels, np.r_[scores[:1000], scores[:1000]])
    assert eer == pytest.approx(0.5, abs=0.01)


def test_hand_worked_eer():
    # reals 0.1 0.4 0.6 0.2, fakes 0.3 0.7 0.8 0.9. At threshold 0.6: misses {0.3} = 1/4, false alarms {0.6} = 1/4.
    labels = [0, 0, 0, 0, 1, 1, 1, 1]
    scores = [0.1, 0.4, 0.6, 0.2, 0.3, 0.7, 0.8, 0.9]
    eer, threshold = compute_eer(labels, scores)
    assert eer == 0.25
    assert threshold == 0.6
    # 14 of the 16 (fake, real) pairs are ordered correctly: only fake 0.3 loses, to reals 0.4 and 0.6.
    assert roc_auc(labels, scores) == pytest.approx(14 / 16)


def test_agrees_with_sklearn_on_random_scores():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 500)
    scores = rng.random(500) + 0.3 * labels
    assert roc_auc(labels, scores) == pytest.approx(roc_auc_score(labels, scores))
    fpr, tpr, _ = roc_curve(labels, scores)
    fnr = 1 - tpr
    sklearn_eer = fpr[np.nanargmin(np.abs(fnr - fpr))]
    assert compute_eer(labels, scores)[0] == pytest.approx(sklearn_eer, abs=0.01)


def test_threshold_metrics_hand_computed():
    labels = [0, 0, 0, 1, 1, 1, 1]
    scores = [0.2, 0.6, 0.1, 0.9, 0.4, 0.7, 0.8]
    result = threshold_metrics(labels, scores, 0.5)
    assert result["confusion_matrix"] == [[2, 1], [1, 3]]
    assert result["accuracy"] == pytest.approx(5 / 7)
    assert result["precision"] == pytest.approx(3 / 4)
    assert result["recall"] == pytest.approx(3 / 4)
    assert result["f1"] == pytest.approx(3 / 4)
    assert result["per_class_accuracy"] == {"real": pytest.approx(2 / 3), "fake": pytest.approx(3 / 4)}
    assert result["balanced_accuracy"] == pytest.approx((2 / 3 + 3 / 4) / 2)
    assert not result["single_class_predictions"]


def test_constant_predictor_is_flagged():
    summary = summarise([0, 0, 1, 1], [0.3, 0.3, 0.3, 0.3], 0.5)
    assert summary["at_threshold"]["single_class_predictions"]
    assert summary["roc_auc"] == 0.5


def test_bootstrap_interval_brackets_the_estimate_and_narrows_with_more_data():
    rng = np.random.default_rng(2)

    def scored(n):
        labels = np.r_[np.zeros(n), np.ones(n)]
        return labels, rng.normal(size=2 * n) + labels

    small_labels, small_scores = scored(30)
    low, high = bootstrap_interval(small_labels, small_scores, roc_auc)
    assert low <= roc_auc(small_labels, small_scores) <= high
    big_low, big_high = bootstrap_interval(*scored(1000), roc_auc)
    assert big_high - big_low < (high - low) / 3
    assert big_low < 0.76 < big_high  # AUC of two unit normals one standard deviation apart: Phi(1 / sqrt 2)


def test_summary_reports_intervals_for_auc_and_eer():
    summary = summarise([0, 0, 0, 1, 1, 1], [0.1, 0.5, 0.3, 0.4, 0.8, 0.9], 0.5)
    low, high = summary["roc_auc_95ci"]
    assert low <= summary["roc_auc"] <= high
    low, high = summary["eer_95ci"]
    assert 0.0 <= low <= summary["eer"] <= high <= 1.0


def test_min_tdcf_matches_the_hand_computed_asvspoof_2019_value():
    # ASV: target 2 3, nontarget 0 1 -> EER threshold 2 with no ASV error; spoof 0.5 2.5 -> half pass the ASV.
    # C1 = 0.95*0.99*(1 - 0) - 0 = 0.9405; C2 = 10*0.05*(1 - 0.5) = 0.25.
    # CM (p_fake): real 0.1 0.4, fake 0.3 0.9. Per threshold t-DCF = C1*P(real flagged) + C2*P(fake passed):
    # 0.1: 0.9405; 0.3: 0.4703; 0.4: 0.5953; 0.9: 0.125; inf: 0.25 -> min 0.125, normalised by 0.25 -> 0.5.
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.3, 0.9]
    asv_keys = ["target", "target", "nontarget", "nontarget", "spoof", "spoof"]
    asv_scores = [2.0, 3.0, 0.0, 1.0, 0.5, 2.5]
    assert metrics.min_tdcf(labels, scores, asv_keys, asv_scores) == pytest.approx(0.5)
    # A perfect countermeasure leaves only the cost of no error: 0.
    assert metrics.min_tdcf([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], asv_keys, asv_scores) == pytest.approx(0.0)
    with pytest.raises(ValueError, match="target, nontarget and spoof"):
        metrics.min_tdcf(labels, scores, asv_keys[:4], asv_scores[:4])


def test_revised_min_tdcf_of_asvspoof_2021_matches_the_hand_computed_value():
    # ASV: target 1 3, nontarget 0 2 -> EER threshold 2: P_miss_asv 0.5, P_fa_asv 0.5; spoof 0.5 2.5 -> half pass.
    # C0 = 0.9405*1*0.5 + 0.0095*10*0.5 = 0.51775; C1 = 0.9405 - C0 = 0.42275; C2 = 0.05*10*0.5 = 0.25.
    # CM as above: min over thresholds of C1*P(real flagged) + C2*P(fake passed) = 0.125 (at 0.9), so
    # (C0 + 0.125) / (C0 + min(C1, C2)) = 0.64275 / 0.76775. The legacy form on the same ASV gives 0.125 / 0.25.
    labels, scores = [0, 0, 1, 1], [0.1, 0.4, 0.3, 0.9]
    asv_keys = ["target", "target", "nontarget", "nontarget", "spoof", "spoof"]
    asv_scores = [1.0, 3.0, 0.0, 2.0, 0.5, 2.5]
    assert metrics.asv_error_rates(asv_keys, asv_scores) == (0.5, 0.5, 0.5)
    assert metrics.min_tdcf_revised(labels, scores, asv_keys, asv_scores) == pytest.approx(0.64275 / 0.76775)
    assert metrics.min_tdcf(labels, scores, asv_keys, asv_scores) == pytest.approx(0.5)
    # A perfect CM leaves only the ASV's own cost C0, so the revised form stays above 0 when the ASV errs.
    assert metrics.min_tdcf_revised([0, 0, 1, 1], [0.1, 0.2, 0.8, 0.9], asv_keys, asv_scores) == pytest.approx(
        0.51775 / 0.76775)

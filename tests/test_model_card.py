"""Model cards: written from the metadata, and rewritten by evaluate with this model's own reports only."""
import json

from conftest import write_tone
from deepfake_detector.cli import evaluate
from deepfake_detector.report import model_card
from tiny_detector import save_tiny_detector


def labelled_folder(root):
    for index in range(2):
        write_tone(root / "real" / f"tone{index}.wav", 1.5, frequency=200.0 + 150 * index)
        write_tone(root / "fake" / f"noise{index}.wav", 1.5, amplitude=0.05, noise=0.2, seed=index)
    return root


def test_a_model_without_training_figures_still_gets_an_honest_card(tmp_path):
    model = save_tiny_detector(tmp_path / "models", name="bare")
    card = model_card.write_model_card(model, tmp_path / "reports").read_text()
    assert card.startswith("# Model card: bare") and card == (tmp_path / "models" / "bare.md").read_text()
    assert "No in-domain figures" in card and "None yet" in card
    assert "p(fake) >= **0.5**" in card
    # The failure cases carry the model's own limits, not defaults: tiny models use 1 s windows.
    assert "shorter than one window (1 s)" in card


def test_evaluate_adds_its_report_to_the_card_of_that_training_run_only(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = save_tiny_detector(tmp_path / "models", name="m")
    data = labelled_folder(tmp_path / "heldout")
    assert evaluate.main([str(data), "--model", str(model)]) == 0
    report = json.loads((tmp_path / "reports" / "m_heldout" / "metrics.json").read_text())
    card = (tmp_path / "models" / "m.md").read_text()
    low, high = report["eer_95ci"]
    assert f"| heldout ([report](../reports/m_heldout/report.md)) | 2/2 | {report['eer']:.3f} ({low:.3f}-{high:.3f}) |" \
        in card
    assert "None yet" not in card

    # Retrained under the same name: the old report measured another network and must not appear.
    json_path = tmp_path / "models" / "m.json"
    metadata = json.loads(json_path.read_text())
    json_path.write_text(json.dumps({**metadata, "trained_at": "2099-01-01T00:00:00+00:00"}))
    assert "None yet" in model_card.write_model_card(model, tmp_path / "reports").read_text()

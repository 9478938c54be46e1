"""Every registry model maps uint8 pictures to p(fake) in [0, 1]; the compact model is small and trains."""
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from deepfake_detector.model import model_store, models
from deepfake_detector.params import Params

SCRIPT = Path(__file__).resolve().parent / "mirrored_fit_script.py"


def random_pictures(params: Params, n: int = 3) -> np.ndarray:
    return np.random.default_rng(0).integers(0, 256, size=(n, *params.png_shape), dtype=np.uint8)


@pytest.mark.parametrize("name", sorted(models.MODELS))
def test_every_model_scores_uint8_pictures_in_unit_interval(name):
    params = Params()
    model = models.build_model(name, params)
    scores = model.predict(random_pictures(params), verbose=0)
    assert scores.shape == (3, 1) and np.all((scores >= 0) & (scores <= 1))
    assert tuple(model.input_shape[1:]) == params.png_shape


def test_compact_has_under_a_tenth_of_the_baseline_parameters():
    params = Params()
    baseline, compact = models.build_baseline(params), models.build_compact(params)
    assert compact.count_params() * 10 < baseline.count_params()


@pytest.mark.parametrize("name", ["compact", "compact_cmn"])
def test_compact_survives_the_model_store_round_trip(tmp_path, name):
    params = Params(window_s=1.0, hop_s=1.0)
    model = models.build_model(name, params)
    model_path = tmp_path / f"{name}.keras"
    model_store.save_detector(model, model_path, params, threshold=0.5)
    detector = model_store.load_detector(model_path)
    pictures = random_pictures(params)
    np.testing.assert_allclose(detector.model.predict(pictures, verbose=0), model.predict(pictures, verbose=0),
                               rtol=1e-5, atol=1e-6)


def test_time_mean_normalised_compact_ignores_a_fixed_colouring_per_band():
    params = Params(window_s=1.0, hop_s=1.0)
    pictures = np.random.default_rng(1).integers(40, 200, size=(2, *params.png_shape), dtype=np.uint8)
    # A constant offset per (band, colour channel), the same in every frame: what a recording chain adds.
    colouring = np.random.default_rng(2).integers(-40, 40, size=(1, params.png_shape[0], 1, 3))
    coloured = (pictures.astype(int) + colouring).astype(np.uint8)
    normalised, plain = models.build_model("compact_cmn", params), models.build_model("compact", params)
    np.testing.assert_allclose(normalised.predict(coloured, verbose=0), normalised.predict(pictures, verbose=0),
                               atol=1e-5)
    assert np.abs(plain.predict(coloured, verbose=0) - plain.predict(pictures, verbose=0)).max() > 1e-4


def test_unknown_model_name_is_refused():
    with pytest.raises(ValueError, match="compact"):
        models.build_model("resnet9000", Params())


@pytest.mark.slow
def test_compact_trains_under_mirrored_strategy_on_two_logical_cpus():
    # Logical devices must be set before TensorFlow initialises, so the fit runs in a fresh interpreter.
    result = subprocess.run([sys.executable, str(SCRIPT), "compact"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])
    assert report["replicas"] == 2
    assert report["losses"][-1] < 0.5 * report["losses"][0]


def test_a_fresh_process_loads_a_saved_compact_cmn_model(tmp_path):
    # predict/evaluate/serve import only model_store: it must register the custom layer itself.
    params = Params(window_s=1.0, hop_s=1.0)
    model_path = tmp_path / "compact_cmn.keras"
    model_store.save_detector(models.build_model("compact_cmn", params), model_path, params, threshold=0.5)
    code = (f"from deepfake_detector.model import model_store\n"
            f"print(model_store.load_detector({str(model_path)!r}).model.name)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            cwd=Path(__file__).resolve().parents[1] / "src")
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().splitlines()[-1] == "compact_cmn"

"""The bundled model tracks: on held-out generated sequences it beats OpenCV CSRT in colour and
keeps up with it in grey (scenes drawn for a mono camera, frames as a mono8 camera gives them).

Ten sequences, 60 frames each: the model card's full-set figures come from `fartrack-eval`.
"""

import pytest

from fartrack_ros.data.synthetic import EVAL_SEED_BASE, SyntheticConfig, generate_sequence
from fartrack_ros.evaluation.report import evaluate_trackers
from fartrack_ros.evaluation.runners import make_runner
from fartrack_ros.model import DEFAULT_WEIGHTS_PATH

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not DEFAULT_WEIGHTS_PATH.is_file(), reason="the bundled model is not trained yet")]

SEQUENCES = 10
MAX_FRAMES = 60


def held_out_ao(grey: bool, variant: str | None = None) -> dict[str, float]:
    """AO of the bundled model (cut to ``variant``) and of CSRT on the first held-out sequences, in
    colour or grey."""
    config = SyntheticConfig(luma_contrast=grey)
    sequences = (generate_sequence(EVAL_SEED_BASE + k, config, lazy=True) for k in range(SEQUENCES))
    if grey:
        sequences = (sequence.as_grey() for sequence in sequences)
    runners = [make_runner("fartrack", variant=variant), make_runner("csrt")]
    scores, _ = evaluate_trackers(runners, sequences, MAX_FRAMES)
    return {name: score.ao for name, score in scores.items()}


def test_in_colour_the_bundled_model_tracks_and_beats_csrt():
    ao = held_out_ao(grey=False)
    assert ao["fartrack"] >= 0.75 and ao["fartrack"] > ao["csrt"] + 0.1, ao


def test_in_grey_the_bundled_model_tracks_about_as_well_as_csrt():
    ao = held_out_ao(grey=True)
    assert ao["fartrack"] >= 0.6 and ao["fartrack"] > ao["csrt"] - 0.05, ao


def test_the_bundled_model_cut_to_its_first_3_layers_still_tracks_and_beats_csrt():
    """It was trained with self-distillation from layer 3 (model card): variant 3 runs about a
    quarter faster and still tracks; cut so, a model trained without it scored AO 0.16."""
    ao = held_out_ao(grey=False, variant="3")
    assert ao["fartrack"] >= 0.65 and ao["fartrack"] > ao["csrt"] + 0.05, ao

"""tutorlib.evaluation: predict, evaluate, features and probes keep the model as they found it."""
import pytest
from helpers import GOOD, IMAGES, tiny_cnn

from tutorlib import evaluation


def test_evaluate_rejects_a_wrong_channel_count():
    with pytest.raises(ValueError, match="in_channels=1"):
        evaluation.evaluate(tiny_cnn(in_channels=3), GOOD)


def test_predict_and_extract_features_keep_format_and_mode():
    model = tiny_cnn().train()
    evaluation.predict(model, IMAGES)
    evaluation.extract_features(model, IMAGES, layer="block1", pool="flatten")
    assert model.training and all(p.is_contiguous() for p in model.parameters())

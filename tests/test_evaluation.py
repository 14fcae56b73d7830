"""tutorlib.evaluation: predict, evaluate, features and probes keep the model as they found it."""
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
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


def test_extract_features_and_linear_probe(blobs):
    model = tiny_cnn()
    feats = evaluation.extract_features(model, blobs)
    assert feats.shape == (90, 4)
    block = evaluation.extract_features(model, blobs, layer="block1")
    assert block.shape == (90, 4)
    flat = evaluation.extract_features(model, blobs, layer="block1", pool="flatten")
    assert flat.shape == (90, 4 * 6 * 6)
    with pytest.raises(ValueError, match="Layer groups"):
        evaluation.extract_features(model, blobs, layer="block9")
    probe = evaluation.linear_probe(flat, blobs[1])
    assert probe.score(flat, blobs[1]) >= 0.95
    with torch.no_grad():
        assert torch.allclose(probe.as_linear()(flat), probe(flat), atol=1e-4)


def test_extracted_features_can_train_a_head(blobs):
    feats = evaluation.extract_features(tiny_cnn(), blobs)
    head = nn.Linear(feats.shape[1], 3)
    F.cross_entropy(head(feats), blobs[1]).backward()  # inference-mode tensors would refuse this
    assert head.weight.grad is not None and not feats.is_inference()

"""tutorlib.analysis: CKA invariances, LogME against brute force, FLOPs, latency, per-class accuracy."""
import math

import pytest
import torch
import torch.nn as nn
from helpers import tiny_cnn

from tutorlib import analysis, models, surgery


def test_linear_cka_invariances():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 10, generator=g)
    q, _ = torch.linalg.qr(torch.randn(10, 10, generator=g))
    assert analysis.linear_cka(x, x) == pytest.approx(1.0)
    assert analysis.linear_cka(x, 3.0 * x @ q + 1.0) == pytest.approx(1.0)  # rotation, scale, shift
    assert analysis.linear_cka(x, torch.randn(200, 10, generator=g)) < 0.2
    wide, wider = torch.randn(20, 50, generator=g), torch.randn(20, 70, generator=g)
    narrow_form = analysis.linear_cka(wide[:, :15], wider[:, :15])  # D < N: the D x D form
    x15, y15 = wide[:, :15].double(), wider[:, :15].double()
    x15, y15 = x15 - x15.mean(0), y15 - y15.mean(0)
    assert narrow_form == pytest.approx(float((y15.T @ x15).square().sum() / ((x15.T @ x15).norm() * (y15.T @ y15).norm())))
    wx, wy = wide.double() - wide.double().mean(0), wider.double() - wider.double().mean(0)
    direct = float((wy.T @ wx).square().sum() / ((wx.T @ wx).norm() * (wy.T @ wy).norm()))
    assert analysis.linear_cka(wide, wider) == pytest.approx(direct)  # D > N: the Gram form agrees
    with pytest.raises(ValueError, match="same N"):
        analysis.linear_cka(x, x[:10])


def _brute_force_evidence(f, y, alpha, beta):
    """log N(y; 0, I/beta + F F^T/alpha): the evidence LogME maximises, computed directly."""
    n = len(y)
    cov = torch.eye(n, dtype=torch.float64) / beta + f @ f.T / alpha
    return float(torch.distributions.MultivariateNormal(torch.zeros(n, dtype=torch.float64), cov).log_prob(y)) / n


def test_logme_matches_brute_force_evidence_maximisation():
    g = torch.Generator().manual_seed(0)
    f = torch.randn(40, 5, generator=g, dtype=torch.float64)
    y = f @ torch.randn(5, generator=g, dtype=torch.float64) + 0.5 * torch.randn(40, generator=g, dtype=torch.float64)
    sigma, v = torch.linalg.eigh(f.T @ f)
    score, alpha, beta = analysis._logme_one(f, y, sigma, v)
    assert score == pytest.approx(_brute_force_evidence(f, y, alpha, beta), abs=1e-8)  # closed form is exact
    grid = torch.logspace(-3, 3, 61, dtype=torch.float64)
    best = max(_brute_force_evidence(f, y, float(a), float(b)) for a in grid for b in grid)
    assert score >= best - 1e-6  # the fixed point is at least as good as any grid point
    assert score == pytest.approx(best, abs=0.02)


def test_logme_prefers_informative_features():
    g = torch.Generator().manual_seed(1)
    labels = torch.arange(4).repeat(50)
    good = torch.nn.functional.one_hot(labels, 4).double() * 3 + 0.3 * torch.randn(200, 4, generator=g)
    bad = torch.randn(200, 4, generator=g)
    assert analysis.logme(good, labels) > analysis.logme(bad, labels)


def test_count_flops_of_a_linear_layer():
    assert analysis.count_flops(nn.Linear(10, 3), (4, 10)) == 2 * 4 * 10 * 3
    small, big = models.small_cnn(8), models.small_cnn(32)
    assert analysis.count_flops(big, (1, 28, 28)) > 4 * analysis.count_flops(small, (1, 28, 28))


def test_latency_reports_median_min_max():
    result = analysis.latency(models.small_cnn(8), (1, 28, 28), batch_size=4, repeats=5)
    assert result["min_s"] <= result["median_s"] <= result["max_s"] and result["batch_size"] == 4
    assert result["threads"] == torch.get_num_threads()


def test_gradient_norms_per_layer_input_first():
    model = models.small_cnn(8, 3, 4)
    model(torch.rand(8, 1, 28, 28)).sum().backward()
    norms = analysis.gradient_norms(model)
    assert list(norms.index) == ["features.block1.conv", "features.block2.conv", "features.block3.conv", "head"]
    assert (norms > 0).all()


def test_per_class_accuracy_and_weight_distance(blobs):
    model = models.small_cnn(4, 2, 3)
    acc = analysis.per_class_accuracy(model, blobs, class_names=["a", "b", "c"])
    assert list(acc.index) == ["a", "b", "c"] and ((acc >= 0) & (acc <= 1)).all()
    reference = {k: v.clone() for k, v in model.state_dict().items()}
    assert (analysis.weight_distance(model, reference) == 0).all()
    with torch.no_grad():
        model.head.weight.add_(1.0)
    dist = analysis.weight_distance(model, reference)
    assert dist["head"] == pytest.approx(math.sqrt(model.head.weight.numel())) and dist["block1"] == 0


def test_pareto_front():
    assert analysis.pareto_front([1, 2, 3, 4], [0.5, 0.7, 0.6, 0.9]) == [True, True, False, True]


# ----------------------------------------------------------------------------- bad input and faults
def test_latency_and_count_flops_keep_every_mode():
    model = surgery.freeze(tiny_cnn().train(), 1)
    modes = [m.training for m in model.modules()]
    analysis.latency(model, (1, 12, 12), repeats=1, warmup=0)
    analysis.count_flops(model, (1, 12, 12))
    assert [m.training for m in model.modules()] == modes
    assert model.training and not model.features.block1.bn.training

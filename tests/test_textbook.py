"""Facts of initialisation that theory fixes, checked here rather than decided as chapter 3's verdicts.

Chapter 3 shows them (sections 4.1-4.2) and reports their numbers; they are not the article's key point (that
is about fine-tuning a pretrained network), so they are unit tests: one seed, the thresholds chapter 3 once
asserted, and each would fail if `models.init_weights` or `plain_net` got the scheme wrong.
"""
import numpy as np
import pytest
import torch.nn.functional as F

from tutorlib import analysis, data, models, train
from tutorlib.seeds import seed_everything


@pytest.fixture(scope="module")
def pool():
    images, labels = data.load_fashion_mnist("train")
    return data.take((images, labels), data.few_shot(labels, 300, seed=0))


def log10_gradients(depth: int, init: str, batch) -> np.ndarray:
    """log10 of each layer's weight-gradient norm at step 0 (an underflow to 0 counts as 1e-300)."""
    seed_everything(0)
    net = models.plain_net(depth, init=init)
    F.cross_entropy(net(batch[0]), batch[1]).backward()
    return np.log10(analysis.gradient_norms(net).clip(lower=1e-300).to_numpy())


def test_he_init_keeps_gradients_a_million_times_larger_than_small_normal_weights(pool):
    """Glorot & Bengio 2010: with badly scaled weights (N(0, 0.01)) gradients vanish with depth."""
    batch = (pool[0][:128], pool[1][:128])
    assert log10_gradients(20, "he", batch).min() - log10_gradients(20, "normal0.01", batch).max() > 6


def test_xavier_loses_over_100x_more_gradient_scale_than_he_from_10_to_30_layers(pool):
    """He et al. 2015: with ReLU, Xavier init halves the signal variance per layer; He init keeps it."""
    batch = (pool[0][:128], pool[1][:128])
    drop = {init: np.median(log10_gradients(10, init, batch)) - np.median(log10_gradients(30, init, batch))
            for init in ("xavier", "he")}
    assert drop["xavier"] - drop["he"] > 2


def final_loss(pool, init: str, batchnorm: bool = False) -> float:
    seed_everything(0)
    net = models.plain_net(30, init=init, batchnorm=batchnorm)
    history = train.fit(net, pool, epochs=3, lr=0.02, batch_size=64, optimizer="sgd", seed=0, progress=False)
    return history.train_loss[-1]


def test_a_30_layer_relu_net_learns_with_he_init_and_not_with_xavier_unless_batchnorm_rescues_it(pool):
    """He et al. 2015, Figure 3 (30 plain ReLU layers), and Ioffe & Szegedy 2015 (BatchNorm)."""
    xavier = final_loss(pool, "xavier")
    assert xavier > 2.0  # chance on 10 classes is ln 10 = 2.30
    assert xavier - final_loss(pool, "he") > 0.3
    assert xavier - final_loss(pool, "xavier", batchnorm=True) > 0.3

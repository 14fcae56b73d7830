"""The one seed helper: the same seed gives the same run."""
import torch
from helpers import tiny_cnn

from tutorlib import train


def test_same_seed_gives_an_identical_history(blobs):
    runs = []
    for _ in range(2):
        model = tiny_cnn()
        history = train.fit(model, blobs, blobs, epochs=3, lr=1e-2, batch_size=16, seed=7, progress=False)
        runs.append((history.train_loss, history.val_loss, history.grad_norm, history.lr, model.state_dict()))
    assert runs[0][:4] == runs[1][:4]  # exact equality, not approx
    assert all(torch.equal(runs[0][4][k], runs[1][4][k]) for k in runs[0][4])

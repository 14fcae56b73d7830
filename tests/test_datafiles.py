"""tutorlib.datafiles: the IDX format read and written exactly, and a broken file named with the fix."""
import gzip

import numpy as np
import pytest

from tutorlib import datafiles



def test_idx_round_trip(tmp_path):
    array = np.random.default_rng(0).integers(0, 256, (5, 7, 3), dtype=np.uint8)
    datafiles.write_idx(array, tmp_path / "x.gz")
    np.testing.assert_array_equal(datafiles.read_idx(tmp_path / "x.gz"), array)


def test_truncated_idx_is_reported(tmp_path):
    import gzip
    datafiles.write_idx(np.zeros((4, 3, 3), np.uint8), tmp_path / "x.gz")
    raw = gzip.open(tmp_path / "x.gz").read()[:-5]
    (tmp_path / "y").write_bytes(raw)
    with pytest.raises(ValueError, match="truncated"):
        datafiles.read_idx(tmp_path / "y")


def test_a_truncated_gz_names_the_file(tmp_path):
    path = tmp_path / "t10k-labels-idx1-ubyte.gz"
    with gzip.open(path, "wb") as f:
        f.write(bytes([0, 0, 8, 1]) + (100).to_bytes(4, "big") + bytes(100))
    path.write_bytes(path.read_bytes()[:-12])
    with pytest.raises(ValueError, match="t10k-labels"):
        datafiles.read_idx(path)

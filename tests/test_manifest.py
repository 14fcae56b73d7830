"""tutorlib.manifest: the one reader and writer of data/manifest.json, and the hash every bundled file is checked by."""
import hashlib
import json

import pytest

from tutorlib import manifest


@pytest.fixture
def private_manifest(tmp_path, monkeypatch):
    monkeypatch.setattr(manifest, "PATH", tmp_path / "manifest.json")
    return tmp_path / "manifest.json"


def test_sha256_is_the_files_own_hash(tmp_path):
    path = tmp_path / "x.bin"
    path.write_bytes(b"pretrained" * 1000)
    assert manifest.sha256(path) == hashlib.sha256(b"pretrained" * 1000).hexdigest()


def test_record_writes_a_section_or_one_key_and_keeps_the_rest(private_manifest):
    assert manifest.read() == {} and manifest.section("checkpoints") == {}
    manifest.record("checkpoints", {"sha256": "a"}, key="A_w16")
    manifest.record("checkpoints", {"sha256": "b"}, key="A_w8")
    manifest.record("fashion_mnist_small", {"per_class": {"train": 3}})
    assert json.loads(private_manifest.read_text()) == {
        "checkpoints": {"A_w16": {"sha256": "a"}, "A_w8": {"sha256": "b"}},
        "fashion_mnist_small": {"per_class": {"train": 3}}}
    assert manifest.section("checkpoints")["A_w8"] == {"sha256": "b"}


def test_the_committed_manifest_names_every_checkpoint_file():
    checkpoints = manifest.section("checkpoints")
    assert checkpoints and all((manifest.DATA_DIR / info["file"]).exists() for info in checkpoints.values())


def test_a_merge_conflicted_manifest_names_the_file_and_the_fix(tmp_path, monkeypatch):
    conflicted = tmp_path / "manifest.json"
    conflicted.write_text('{\n<<<<<<< HEAD\n "a": 1\n=======\n "a": 2\n>>>>>>> other\n}\n')
    monkeypatch.setattr(manifest, "PATH", conflicted)
    with pytest.raises(ValueError, match="merge-conflict markers.*git checkout -- data/manifest.json"):
        manifest.read()

"""tutorlib.runtime: what a chapter starts from and ends with."""
from tutorlib import profile, runtime

def test_setup_reads_the_profile_loads_halves_and_starts_a_clock(monkeypatch, capsys):
    monkeypatch.setenv("TUTORLIB_SEEDS", "7,8")
    chapter = runtime.setup()
    assert chapter.profile.name == "quick" and chapter.seeds == (7, 8)
    assert len(chapter.halves.b_test[1]) == 5 * profile.current("quick").test_per_class
    assert "seeds=(7, 8)" in capsys.readouterr().out
    assert chapter.finish() is None and chapter.seconds >= 0 and "Chapter ran in" in capsys.readouterr().out
    assert runtime.setup(halves=False).halves is None

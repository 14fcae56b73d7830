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


def test_draws_are_every_seeds_draws_in_order_each_with_its_derived_seed(monkeypatch):
    from tutorlib import seeds
    monkeypatch.setenv("TUTORLIB_SEEDS", "3,5")
    chapter = runtime.setup(halves=False)
    units = list(chapter.draws(2))
    assert [(u.seed, u.k) for u in units] == [(3, 0), (3, 1), (5, 0), (5, 1)]
    assert [u.draw_seed for u in units] == [seeds.derive(s, f"draw {k}") for s, k in ((3, 0), (3, 1), (5, 0), (5, 1))]
    assert len({u.draw_seed for u in units}) == 4
    assert chapter.per_seed(8, quick=4) == (8 if chapter.profile.decides else 4) == 4  # the tests run quick

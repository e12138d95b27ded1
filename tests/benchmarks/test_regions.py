"""``python -m benchmarks.regions``: both ways timed, every row added to, the thread and
pool settings left as they were."""

from benchmarks import regions
from symgraph.backends.numba import pool, threads


def test_both_ways_are_timed_and_the_settings_restored(capsys):
    before = threads.get_threads(), pool.enabled()
    regions.main(["--parts", "2", "--regions", "20"])
    lines = capsys.readouterr().out.splitlines()
    assert [line.split()[0] for line in lines[-2:]] == ["pool", "threads"]
    assert all(float(line.split()[1]) > 0 for line in lines[-2:])
    assert (threads.get_threads(), pool.enabled()) == before

"""Seeds reveal nothing: each grading run derives its checks' seeds from a secret of its own (grader.judge.runner.
run_seed), recorded in the results so staff can replay the run; a check id cannot be read back from a seed."""

from __future__ import annotations

import zlib

import pytest

from grader.errors import GraderError
from grader.judge.runner import grade
from tests.conftest import copy_submission


def test_no_two_runs_share_seeds_and_a_secret_replays_a_run(tmp_path):
    sub = copy_submission(tmp_path / "sub")
    first = grade(sub, "a1_knn", device="cpu", parts=["warmup"])
    second = grade(sub, "a1_knn", device="cpu", parts=["warmup"])
    assert first.seed_secret and second.seed_secret and first.seed_secret != second.seed_secret
    seeds1, seeds2 = {c.id: c.seed for c in first.checks}, {c.id: c.seed for c in second.checks}
    assert set(seeds1.values()).isdisjoint(seeds2.values())
    assert len(set(seeds1.values())) == len(seeds1)  # and no two checks of a run share one
    # no seed is the one a check id used to give (crc32 of the id)
    assert all(seed != zlib.crc32(i.encode()) % 100_000 for i, seed in seeds1.items())
    replay = grade(sub, "a1_knn", device="cpu", parts=["warmup"], seed_secret=first.seed_secret)
    assert {c.id: c.seed for c in replay.checks} == seeds1
    assert replay.score == first.score


def test_a_bad_secret_is_named():
    with pytest.raises(GraderError, match="1 to 200 characters") as err:
        grade(".", "a1_knn", device="cpu", seed_secret="x" * 201)
    assert err.value.option == "seed_secret"

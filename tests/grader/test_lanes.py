"""A second worker beside the first (grader.judge.lanes): where the machine has room, the checks that train are
graded by a second sandboxed worker while the first grades the rest, and every check is judged as it would be
with one worker: the same statuses and scores, a composite whose block failed judged again with the course's
block in its turn, a refusal on either worker costing its whole file, a hang ending with the grading's budget, and
no worker outliving its grading. On A2, whose checks that train are find_best_net's."""

from __future__ import annotations

import json
import time

import pytest

from grader.errors import GraderError
from grader.judge import lanes
from grader.judge.runner import grade
from grader.sandbox.isolation import IsolationError, detect_isolation
from tests.conftest import copy_submission, processes_with, replace_function

pytestmark = pytest.mark.slow

FIND_BEST_NET = {"a2.two_layer.find_best_net", "a2.two_layer.find_best_net.two_hidden_sizes"}


@pytest.fixture(autouse=True)
def bwrap():
    try:
        detect_isolation(want="bwrap")
    except IsolationError as e:
        pytest.skip(f"a second worker runs under bubblewrap only: {e}")


@pytest.fixture
def seconds_workers(monkeypatch):
    """Every second worker made, to look for its processes and folder after the grading."""
    made: list[lanes.Beside] = []
    real = lanes.Beside.__init__

    def spy(self, *args, **kwargs):
        real(self, *args, **kwargs)
        made.append(self)

    monkeypatch.setattr(lanes.Beside, "__init__", spy)
    return made


def _gone(made: list[lanes.Beside]) -> None:
    assert made, "no second worker was made"
    for beside in made:
        folder = beside.sandbox._tmp.name
        deadline = time.monotonic() + 10
        while processes_with(folder) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not processes_with(folder), f"the second worker outlived its grading ({folder})"
        assert beside.sandbox.proc is None or beside.sandbox.proc.poll() is not None


def _outcome(result) -> list[tuple[str, str, float]]:
    return [(c.id, c.status, round(c.score, 6)) for c in result.checks]


def test_the_reference_scores_the_same_with_a_second_worker(tmp_path, seconds_workers):
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    two = grade(sub, "a2_linear", device="cpu", hidden=True, workers=2, seed_secret="lanes")
    assert two.score == pytest.approx(100)
    assert set(two.sandbox["beside"]["checks"]) == FIND_BEST_NET  # the second worker graded the training
    assert two.sandbox["beside"]["worker_starts"] == 1 and two.sandbox["worker_starts"] == 1
    assert [c.id for c in two.checks] == [c.id for c in grade(sub, "a2_linear", device="cpu", hidden=True).checks]
    taken = [c for c in two.checks if c.id in FIND_BEST_NET]
    assert all(c.passed and c.call_seconds > 0 and c.seconds >= c.call_seconds for c in taken)
    _gone(seconds_workers)


def test_a_broken_block_is_judged_in_the_composites_turn_as_with_one_worker(tmp_path, seconds_workers):
    """nn_train (a block of find_best_net) is not written: find_best_net, graded early on the second worker, fails,
    and is judged again in its turn with the course's nn_train: it keeps its points, nn_train loses its own; the
    same outcome, check by check, as with one worker."""
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    replace_function(
        sub / "a2_linear" / "two_layer_net.py",
        "nn_train",
        """
        def nn_train(*args, **kwargs):
            raise NotImplementedError
        """,
    )
    one = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=1, seed_secret="lanes")
    two = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=2, seed_secret="lanes")
    assert "beside" not in one.sandbox and set(two.sandbox["beside"]["checks"]) == FIND_BEST_NET - {
        "a2.two_layer.find_best_net.two_hidden_sizes"  # a hidden check: not in a public run
    }
    assert _outcome(two) == _outcome(one)
    assert two.sandbox["beside"]["graded_again"] == ["a2.two_layer.find_best_net"]  # it failed on the second
    best = next(c for c in two.checks if c.id == "a2.two_layer.find_best_net")
    assert best.passed and "judged with the course's own nn_train" in best.output, best.output
    assert all(not c.passed for c in two.checks if c.function == "nn_train")
    _gone(seconds_workers)


def test_a_refusal_on_the_second_worker_costs_every_function_of_its_file(tmp_path, monkeypatch):
    """What the second worker's audit hook refused (recorded by its sandbox, as grader.sandbox.host records it;
    code that would reach the hook is refused by the static scan first, test_audit.py) fails every check of the
    file, on either worker: two_layer_net.py's checks fail naming it; linear_classifier.py keeps its points."""
    real = lanes.Beside.__init__

    def refusing(self, *args, **kwargs):
        real(self, *args, **kwargs)
        self.sandbox.refusals.append(
            {
                "what": "the interpreter's frames (sys._getframe)",
                "file": "a2_linear/two_layer_net.py",
                "line": 300,
                "function": "find_best_net",
                "event": "sys._getframe",
            }
        )

    monkeypatch.setattr(lanes.Beside, "__init__", refusing)
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    result = grade(sub, "a2_linear", device="cpu", workers=2)
    assert set(result.sandbox["beside"]["checks"]) == {"a2.two_layer.find_best_net"}
    two_layer = [c for c in result.checks if c.part == "two_layer"]
    assert two_layer and all(not c.passed and c.score == 0 for c in two_layer)
    assert all("two_layer_net.py" in c.output for c in two_layer)
    assert all(c.passed for c in result.checks if c.part == "linear")


def test_a_hang_on_the_second_worker_ends_with_the_grading(tmp_path, seconds_workers):
    """find_best_net never returns: the grading ends with its budget, the other checks judged, find_best_net's
    failed, and the second worker's processes gone."""
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    replace_function(
        sub / "a2_linear" / "two_layer_net.py",
        "find_best_net",
        """
        def find_best_net(data_dict, get_param_set_fn):
            while True:
                pass
        """,
    )
    t0 = time.monotonic()
    result = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=2, time_budget=40)
    assert time.monotonic() - t0 < 40 + 30
    best = next(c for c in result.checks if c.id == "a2.two_layer.find_best_net")
    assert not best.passed and best.score == 0
    assert all(c.passed for c in result.checks if c.function != "find_best_net")
    _gone(seconds_workers)


def test_a_second_worker_that_cannot_work_costs_the_student_nothing(tmp_path, monkeypatch):
    """The second worker dies at every request (as it would when the machine ran out of memory, or it could not
    start): the checks it took fail there, are graded again on the first worker, and the reference keeps full
    marks."""
    from grader.sandbox.isolation import SandboxError

    class Dying(lanes.Sandbox):
        def _ensure(self):
            raise SandboxError("crash", "the worker died (test)")

    from grader.judge import runner

    monkeypatch.setattr(lanes, "Sandbox", Dying)
    made: list[lanes.Beside] = []
    real_init, real_body = lanes.Beside.__init__, runner._run_body
    alone: list[bool] = []

    def spy_init(self, *args, **kwargs):
        real_init(self, *args, **kwargs)
        made.append(self)

    def spy_body(run, spec):  # graded again on the first worker only once the second has ended
        if spec.function == "find_best_net" and not isinstance(run.sandbox, Dying):
            alone.append(made[0].sandbox._stopped and not made[0]._thread.is_alive())
        return real_body(run, spec)

    monkeypatch.setattr(lanes.Beside, "__init__", spy_init)
    monkeypatch.setattr(runner, "_run_body", spy_body)
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    result = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=2)
    assert result.score == pytest.approx(result.max_score)
    assert result.sandbox["beside"]["graded_again"] == ["a2.two_layer.find_best_net"]
    assert alone == [True]


def test_both_workers_share_one_budget_and_the_last_check_beside_is_waited_for(tmp_path, monkeypatch):
    """The second worker runs to the first worker's deadline, not one of its own started later; a slow last
    check on it is waited for and judged in its place."""
    real_init, real_run = lanes.Beside.__init__, lanes.run_early
    made: list[lanes.Beside] = []

    def spy_init(self, run, *args, **kwargs):
        real_init(self, run, *args, **kwargs)
        made.append(self)
        assert self.sandbox._deadline == run.sandbox._deadline is not None

    def slow(run_body, run, spec, catch=False):
        if catch:  # the second worker's thread: its check ends well after the first worker is done
            time.sleep(3)
        return real_run(run_body, run, spec, catch)

    monkeypatch.setattr(lanes.Beside, "__init__", spy_init)
    monkeypatch.setattr(lanes, "run_early", slow)
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    result = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=2, time_budget=600)
    assert made and result.score == pytest.approx(result.max_score)
    assert result.sandbox["beside"]["checks"] == ["a2.two_layer.find_best_net"]
    assert result.sandbox["beside"]["graded_again"] == []  # judged from what the second worker found
    assert [c.id for c in result.checks] == [
        c.id for c in grade(sub, "a2_linear", parts=["two_layer"], workers=1).checks
    ]


def test_an_interrupt_ends_the_second_worker(tmp_path, seconds_workers):
    sub = copy_submission(tmp_path / "sub", ("a2_linear",))

    def interrupt(_result):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=2, on_result=interrupt)
    _gone(seconds_workers)


def test_one_worker_where_there_is_no_room_for_two_or_one_is_asked_for(tmp_path, monkeypatch):
    """Gradescope's default container (half a CPU, 768 MB), or `workers=1`: every check on one worker, in order."""
    from grader.sandbox import process

    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    monkeypatch.setattr(process, "headroom", lambda: (0.5, 700.0))
    small = grade(sub, "a2_linear", device="cpu", parts=["two_layer"])
    assert "beside" not in small.sandbox and small.score == pytest.approx(small.max_score)
    monkeypatch.undo()
    asked = grade(sub, "a2_linear", device="cpu", parts=["two_layer"], workers=1)
    assert "beside" not in asked.sandbox
    with pytest.raises(GraderError, match="workers"):
        grade(sub, "a2_linear", device="cpu", workers=3)


def test_the_command_line_asks_for_one_worker_or_two(tmp_path, monkeypatch, capsys):
    """`grader grade --workers 1|2|auto`; `grader batch` grading several submissions at once asks each grading for
    one worker (its jobs fill the cores)."""
    from grader.classroom import batch
    from grader.cli import main

    sub = copy_submission(tmp_path / "sub", ("a2_linear",))
    monkeypatch.chdir(sub)
    for workers, beside in (("1", False), ("2", True)):
        out = tmp_path / f"out{workers}"
        code = main(["grade", ".", "-a", "a2_linear", "--part", "two_layer", "--workers", workers, "--out", str(out)])
        assert code == 0
        extra = json.loads((out / "results.json").read_text())["extra_data"]
        assert ("beside" in extra["sandbox"]) is beside, extra["sandbox"]
    with pytest.raises(SystemExit):
        main(["grade", ".", "-a", "a2_linear", "--workers", "3"])
    assert "--workers" in capsys.readouterr().err
    one = batch.Options(input=tmp_path, assignment="a2_linear", out=tmp_path / "book", kit=tmp_path)
    assert "--workers" not in batch.grade_args(one, jobs=1)
    assert batch.grade_args(one, jobs=2)[-2:] == ["--workers", "1"]
    cluster = batch.Options(
        input=tmp_path, assignment="a2_linear", out=tmp_path / "b", kit=tmp_path, scheduler="tcp://x:1"
    )
    assert batch.grade_args(cluster, jobs=1)[-2:] == ["--workers", "1"]


def test_the_data_set_and_cached_values_are_computed_once_for_both_threads(monkeypatch):
    """The second worker's thread works on a shallow copy of the run: the data set and Ctx.cache's values are
    computed once, under the run's lock, however the two threads meet."""
    import copy
    import threading
    from types import SimpleNamespace

    from grader.course import manifest as manifests
    from grader.judge import runner
    from tests.conftest import ROOT

    loads, built = [], []

    def load(_request):
        loads.append(1)
        time.sleep(0.2)
        return 1, 2, 3, 4, {"name": "digits"}

    def build():
        built.append(1)
        time.sleep(0.2)
        return object()

    monkeypatch.setattr(runner, "load_dataset", load)
    m = manifests.load("a2_linear", ROOT)
    staged = SimpleNamespace(sources={}, missing=[], rejected={}, syntax_errors={}, refused=None)
    first = runner.Run(m, staged, None, "cpu", None, ROOT)
    second = copy.copy(first)
    got: list = []
    threads = [
        threading.Thread(target=lambda r=r: got.append((r.dataset(), r.cached("k", build)))) for r in (first, second)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(loads) == 1 and len(built) == 1
    assert got[0][1] is got[1][1] and first.dataset_name == second.dataset_name == "digits"


def test_one_thread_blocks_of_both_threads_leave_each_threads_count_as_it_was():
    """The judge's one_thread() blocks may overlap (a check that trains in the judge on each thread). PyTorch's
    thread count is each thread's own (OpenMP's): a block on one thread neither sets nor restores the other's."""
    import threading

    import torch

    from grader.judge.judging import one_thread

    before = torch.get_num_threads()
    inside: list[int] = []

    def other():
        with one_thread():
            inside.append(torch.get_num_threads())
        inside.append(torch.get_num_threads())

    with one_thread():
        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert torch.get_num_threads() == 1
    assert inside[0] == 1 and torch.get_num_threads() == before

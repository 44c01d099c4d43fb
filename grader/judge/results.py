"""What a grading run produces. Renderers (grader.reports.formats) are separate functions over these."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class CheckResult:
    id: str
    title: str
    function: str
    part: str
    number: str
    score: float
    max_score: float
    status: str  # "passed" | "failed" | "error" (the check itself crashed: its points held out, max_score 0)
    visibility: str
    hidden: bool
    output: str
    seed: int
    seconds: float  # wall time of the check, the judge's work and every call into the sandbox
    # of which inside calls of student code (worker starts excluded), the part the student's code and the guard
    # around it decide
    call_seconds: float = 0.0
    out_of_time: bool = False  # it failed (or was not run) because the grading's time budget ran out
    held_out: float = 0.0  # status "error": the points it is worth, out of score and max_score until a regrade
    # what the feedback says, as data (a failed check only; readers use these, never the feedback's words):
    # the known mistakes it names ("Likely bug: ...", or several), each as the course describes it
    mistakes: list[str] = field(default_factory=list)
    # the check itself crashed ("TypeError: ..."): the course's fault, not the student's
    grader_errors: list[str] = field(default_factory=list)
    # the rules broken: {rule, name, file, line, function, found} (grader.judge.feedback.hit_record)
    rule_hits: list[dict] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


@dataclass
class PartResult:
    name: str
    title: str
    score: float
    max_score: float


@dataclass
class GradeResult:
    assignment: str
    title: str
    score: float
    max_score: float
    checks: list[CheckResult]
    parts: list[PartResult]
    execution_time: float
    dataset: str
    device: str
    hidden: bool
    submission: str
    digest: str
    problems: list[str] = field(default_factory=list)  # submission-level feedback (missing files, ...)
    sandbox: dict = field(default_factory=dict)  # worker starts, time split, isolation info
    notebooks: dict = field(default_factory=dict)  # grade --report: answers and notebook runs (grader.notebooks.report)
    grader_version: str = ""
    started_at: str = ""
    seed_secret: str = ""  # the run's secret its checks' seeds were derived from (`grader grade --seed-secret`)

    def to_dict(self) -> dict:
        return asdict(self)

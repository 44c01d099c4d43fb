"""The check-writing API: `check`, `variant`, `Ctx` and `CheckFailed` (see docs/writing-checks.md).

The implementation lives in `grader.judge.checks`; this name is the one check files import, and stays.
"""

import sys

from grader.judge import checks as _module

sys.modules[__name__] = _module

"""Errors a user can fix.

Every error raised for a user mistake (bad data, a bad spec, an unknown model) is a
:class:`LeadscoreError` whose message is a single line that names the problem and the fix.
The CLI prints that line and exits non-zero; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

from collections.abc import Sequence


class LeadscoreError(Exception):
    """Base class of errors caused by user input; ``str(err)`` is one line."""

    exit_code: int = 2
    #: Positions of the input rows the error is about, where the raiser knows them (a value
    #: that is no number): a caller that knows their leads names the first.
    rows: object = None

    def __init__(self, problem: str, fix: str | None = None) -> None:
        problem = " ".join(str(problem).split())
        message = problem if fix is None else f"{problem.rstrip('.')}. {' '.join(fix.split())}"
        super().__init__(message)
        self.problem = problem
        self.fix = fix


class DataError(LeadscoreError):
    """Input data breaks the data contract (missing column, wrong type, duplicate id, ...)."""


class SpecError(LeadscoreError):
    """A dataset spec or config file is invalid (unknown key, wrong value, missing file)."""


class ModelError(LeadscoreError):
    """A model cannot be trained, found or used as asked (cold start, unknown version, ...)."""


class UsageError(LeadscoreError, TypeError):
    """A Python API function was given the wrong kind of object (a file name where loaded
    data belongs, a single date where a list of dates does); a ``TypeError`` too, so that
    code catching Python's own error for this still does."""


def expect_type(value: object, expected: type | tuple[type, ...], what: str, fix: str) -> None:
    """Raise :class:`UsageError` when ``value`` is not an ``expected`` instance: the public
    functions' first check, so that a plausible mix-up (``train(table)``,
    ``build_features("data/", ...)``) reads as one line naming the argument and the call
    that makes the right object, not an ``AttributeError`` deep inside."""
    if not isinstance(value, expected):
        raise UsageError(f"{what} is a {type(value).__name__}", fix)


def shortened_list(values: Sequence[str], limit: int = 10) -> str:
    """The first ``limit`` values joined, with how many more, for a message that must stay
    one line: a campaign column or a stray table can hold hundreds."""
    head = ", ".join(values[:limit])
    return head if len(values) <= limit else f"{head}, ... ({len(values) - limit} more)"


def invalid_yaml(file: object, err: Exception) -> SpecError:
    """The one line for a YAML file that does not parse: where (line and column, as an editor
    shows them) and YAML's own problem, whose first line alone ("while scanning for the next
    token") says neither. A tab, the usual culprit in a hand-written file, is named."""
    mark = getattr(err, "problem_mark", None)
    problem = getattr(err, "problem", None) or str(err).splitlines()[0]
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    fix = (
        "Indent with spaces: YAML does not allow tabs."
        if "'\\t'" in problem  # YAML quotes the character it found: '\t'
        else "Fix the indentation or quoting there."
    )
    return SpecError(f"{file} is not valid YAML{where}: {problem}", fix)

"""The ``leadscore`` command line: a thin shell over the package.

Each subcommand lives in :mod:`leadscore.commands` as a module with ``register(subparsers)``,
which adds its parser and sets ``func`` to a handler taking the parsed arguments and returning
an exit code. User mistakes raise :class:`~leadscore.errors.LeadscoreError`; they are printed
as one line on stderr and exit non-zero, without a traceback.

Building the parser must stay cheap: every command registers its parser on every call (``leadscore
--help`` lists them all), so a command module imports the library (pandas, LightGBM, MLflow, ...)
inside its handler, and a default held by such a module is filled in by :func:`complete_later`
only when that command is used.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from tqdm.contrib.logging import logging_redirect_tqdm

from leadscore import __version__
from leadscore.errors import LeadscoreError

#: Subcommand modules under ``leadscore.commands``, in the order ``--help`` lists them.
COMMANDS: tuple[str, ...] = (
    "synth",
    "validate",
    "features",
    "train",
    "tune",
    "score",
    "explain",
    "report",
)

logger = logging.getLogger("leadscore")


class CommandParser(argparse.ArgumentParser):
    """The parser of one subcommand, which may finish its set-up when it is first used.

    Some options show a value held by a module that imports the whole stack (the scorer's
    chunk sizes, the default scored-leads target, the synthetic data's parameters, the tuning
    objectives). Their command hands a callback to :func:`complete_later`; it runs once, when
    this parser parses arguments or shows its usage or help, so that ``leadscore --help`` and
    the other commands never import those modules.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._completions: list[Callable[[], None]] = []

    def complete_with(self, completion: Callable[[], None]) -> None:
        """Run ``completion`` before this parser is first used."""
        self._completions.append(completion)

    def _complete(self) -> None:
        while self._completions:
            self._completions.pop(0)()

    def parse_known_args(  # type: ignore[override]
        self, args: Sequence[str] | None = None, namespace: argparse.Namespace | None = None
    ) -> tuple[argparse.Namespace, list[str]]:
        self._complete()
        return super().parse_known_args(args, namespace)

    def format_usage(self) -> str:
        self._complete()
        return super().format_usage()

    def format_help(self) -> str:
        self._complete()
        return super().format_help()


def complete_later(parser: argparse.ArgumentParser, completion: Callable[[], None]) -> None:
    """Fill in defaults, choices or help of ``parser`` with ``completion`` when the command is
    used (a :class:`CommandParser`, as :func:`build_parser` makes them), else at once."""
    if isinstance(parser, CommandParser):
        parser.complete_with(completion)
    else:
        completion()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="leadscore",
        description="Closed-loop lead scoring: learn from won and lost leads, score open ones.",
    )
    parser.add_argument("--version", action="version", version=f"leadscore {__version__}")
    add_logging_flags(parser, default_verbose=0, default_quiet=False)
    subparsers = parser.add_subparsers(
        dest="command", metavar="COMMAND", required=True, parser_class=CommandParser
    )
    for name in COMMANDS:
        importlib.import_module(f"leadscore.commands.{name}").register(subparsers)
    _add_logging_flags_to_commands(subparsers)
    return parser


def add_logging_flags(
    parser: argparse.ArgumentParser, *, default_verbose: object, default_quiet: object
) -> None:
    """``-v`` / ``-q`` on ``parser``, with the given defaults."""
    parser.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=default_verbose,
        help="add the logging of MLflow and the other libraries (-vv: debug)",
    )
    parser.add_argument(
        "-q",
        "--quiet",
        action="store_true",
        default=default_quiet,
        help="only warnings and errors, no progress bars",
    )


def _add_logging_flags_to_commands(subparsers: argparse._SubParsersAction) -> None:
    """Accept ``-v`` / ``-q`` after the subcommand too (``leadscore score -q ...``), as users
    type them, on every leaf command (``report channels`` included).

    The subcommand's copies default to :data:`argparse.SUPPRESS`: a subparser writes every
    default it has over the main parser's values, so a real default there would undo a
    ``-q`` given before the subcommand.
    """
    for sub in dict.fromkeys(subparsers.choices.values()):
        nested = [a for a in sub._actions if isinstance(a, argparse._SubParsersAction)]
        if nested:
            for action in nested:
                _add_logging_flags_to_commands(action)
        else:
            suppressed = argparse.SUPPRESS
            add_logging_flags(sub, default_verbose=suppressed, default_quiet=suppressed)


#: Libraries whose INFO lines drown leadscore's own unless ``-v`` is given.
NOISY_LOGGERS = ("mlflow", "alembic", "urllib3", "matplotlib", "numba", "shap")


def configure_logging(verbose: int, quiet: bool) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if verbose > 1 else logging.INFO
    logging.basicConfig(
        level=level,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    if verbose < 1:
        for noisy in NOISY_LOGGERS:
            logging.getLogger(noisy).setLevel(logging.WARNING)


@contextlib.contextmanager
def command_logging(verbose: int, quiet: bool) -> Iterator[None]:
    """:func:`configure_logging` for one command, undone when it returns: :func:`main` runs
    in-process too (a notebook's ``main(["validate", ...])``), where a root handler left
    behind would print every later log line of the kernel twice and keep MLflow and SHAP
    quiet for the rest of the session."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    levels = {name: logging.getLogger(name).level for name in NOISY_LOGGERS}
    configure_logging(verbose, quiet)
    try:
        yield
    finally:
        for handler in [h for h in root.handlers if h not in handlers]:
            root.removeHandler(handler)
            handler.close()
        root.setLevel(level)
        for name, was in levels.items():
            logging.getLogger(name).setLevel(was)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    """The command line as the commands read it: ``-q`` also hides progress bars (it asks for
    nothing but warnings and errors), as ``--no-progress`` does, and so does an error stream
    that is no terminal: in a log file or a CI log a bar's redraws are noise between the log
    lines, sometimes on the same line as one."""
    args = build_parser().parse_args(argv)
    if hasattr(args, "no_progress") and (args.quiet or not _is_terminal(sys.stderr)):
        args.no_progress = True
    return args


def _is_terminal(stream: object) -> bool:
    """Whether ``stream`` is a terminal; a replaced stream without ``isatty`` is not."""
    isatty = getattr(stream, "isatty", None)
    return bool(isatty()) if callable(isatty) else False


#: What DuckDB raises for a query stopped by Ctrl-C, where it has no InterruptException.
_QUERY_INTERRUPTED = "Query interrupted"


def _is_query_interrupt(err: BaseException) -> bool:
    """Whether ``err``, or an error it was raised from, is DuckDB stopping a query on Ctrl-C
    (``duckdb.InterruptException``, or a ``RuntimeError: Query interrupted`` from DuckDB
    versions without it). DuckDB is looked up among the loaded modules, not imported: a
    command that never loaded it cannot have raised its error."""
    duckdb = sys.modules.get("duckdb")
    interrupt = getattr(duckdb, "InterruptException", None)
    seen: BaseException | None = err
    for _ in range(16):  # a chain, not a cycle: __context__ can loop back
        if seen is None:
            return False
        if isinstance(interrupt, type) and isinstance(seen, interrupt):
            return True
        duckdb_error = duckdb is not None and isinstance(seen, getattr(duckdb, "Error", ()))
        if (duckdb_error or isinstance(seen, RuntimeError)) and (
            str(seen).strip() == _QUERY_INTERRUPTED
        ):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


#: Exit status of a command stopped by SIGTERM: 128 + 15, as a shell reports a process it
#: killed, so that a scheduler reads "terminated" and not a failure of the command's own.
TERMINATED_EXIT = 143


class Terminated(BaseException):
    """SIGTERM arrived while a command ran (a scheduler, ``kill``, a container stopping).

    Raised from the signal handler, so that it unwinds every ``with`` block as Ctrl-C's
    KeyboardInterrupt does: an open MLflow run ends FAILED instead of RUNNING for ever, and
    temporary files and half-written outputs are cleaned up. A ``BaseException``, not an
    ``Exception``, so that no ``except Exception`` on the way swallows it.
    """


class _SigtermState:
    """Whether :func:`sigterm_unwinds`'s handler ran (read where DuckDB turned the signal
    into its own "Query interrupted" error, which would otherwise read as Ctrl-C)."""

    received: bool = False


@contextlib.contextmanager
def sigterm_unwinds() -> Iterator[_SigtermState]:
    """While the block runs, SIGTERM raises :class:`Terminated` in the main thread; the
    handler that was there before is put back afterwards.

    Python's default for SIGTERM ends the process at once, leaving the MLflow run of a
    training RUNNING in its store for ever and its temporary files behind. A second SIGTERM
    during the unwinding is ignored, so that it cannot cut the clean-up short (SIGKILL still
    ends it). Outside the main thread (``main`` called from a worker thread) signals cannot
    be handled, and nothing changes.
    """
    state = _SigtermState()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return

    def stop(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        state.received = True
        raise Terminated

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        yield state
    finally:
        # None: a handler installed outside Python, which cannot be put back; the default
        signal.signal(signal.SIGTERM, signal.SIG_DFL if previous is None else previous)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # a command's options may import the library first (complete_later): seconds to stop in
        args = parse_args(argv)
    except KeyboardInterrupt:
        print("leadscore: interrupted", file=sys.stderr)
        return 130
    term = _SigtermState()
    try:
        # log lines go through tqdm, above the progress bar rather than glued to its end;
        # SIGTERM unwinds the command as Ctrl-C does (an open MLflow run ends FAILED)
        with (
            sigterm_unwinds() as term,
            command_logging(args.verbose, args.quiet),
            logging_redirect_tqdm(),
        ):
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except Terminated:
        return _stopped(args.command, terminated=True)
    except LeadscoreError as err:
        if _is_query_interrupt(err):  # a read's one-line error around an interrupted query
            return _stopped(args.command, terminated=term.received)
        print(f"leadscore {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        return _stopped(args.command, terminated=False)
    except BrokenPipeError:
        # the reader of a pipe (`| head`) has gone: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
    except Exception as err:
        # Ctrl-C while DuckDB runs a query reaches Python as DuckDB's own error, not as a
        # KeyboardInterrupt: it is the same interruption; anything else keeps its traceback
        if not _is_query_interrupt(err):
            raise
        return _stopped(args.command, terminated=term.received)


def _stopped(command: str, *, terminated: bool) -> int:
    """Say in one line that the command was stopped, and return its exit status: 130 for
    Ctrl-C, :data:`TERMINATED_EXIT` for SIGTERM (also where DuckDB reported either as its
    own "Query interrupted")."""
    if terminated:
        print(f"leadscore {command}: terminated", file=sys.stderr)
        return TERMINATED_EXIT
    print(f"leadscore {command}: interrupted", file=sys.stderr)
    return 130


if __name__ == "__main__":
    sys.exit(main())

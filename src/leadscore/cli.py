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
import sys
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


def main(argv: Sequence[str] | None = None) -> int:
    try:
        # a command's options may import the library first (complete_later): seconds to stop in
        args = parse_args(argv)
    except KeyboardInterrupt:
        print("leadscore: interrupted", file=sys.stderr)
        return 130
    try:
        # log lines go through tqdm, above the progress bar rather than glued to its end
        with command_logging(args.verbose, args.quiet), logging_redirect_tqdm():
            code = int(args.func(args) or 0)
        sys.stdout.flush()  # a closed pipe shows here, not at interpreter exit
        return code
    except LeadscoreError as err:
        print(f"leadscore {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"leadscore {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # the reader of a pipe (`| head`) has gone: stop quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141


if __name__ == "__main__":
    sys.exit(main())

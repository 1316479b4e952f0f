"""Subcommands of the ``leadscore`` CLI, one module each (see :mod:`leadscore.cli`)."""

from __future__ import annotations

from pathlib import Path


def optional_path(text: str) -> Path | None:
    """A path option's value, where empty text means "not given".

    The MLproject passes every parameter of an entry point, so a parameter that should leave
    the command's default in place (``--model-out``: ``models/<data set name>/``;
    ``--data-root``: the shared data folder found beside the checkout) defaults to ``""``.
    """
    return Path(text) if text.strip() else None

"""Subcommands of the ``leadscore`` CLI, one module each (see :mod:`leadscore.cli`)."""

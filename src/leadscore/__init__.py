"""leadscore: closed-loop lead scoring.

Learns from a company's history of won and lost leads, predicts how likely each open lead is
to convert, explains why, and sorts every lead into a funnel stage (lead, MQL, SQL).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("leadscore")
except PackageNotFoundError:  # pragma: no cover - running from a source tree
    __version__ = "0.0.0"

__all__ = ["__version__"]

"""Record every training in MLflow and fetch registered models back.

One training is one MLflow run: parameters, the data set's name and content hash, the git
commit, test metrics of the model and of each baseline, the spec and config, charts, and the
model itself as a pyfunc that loads without unpickling (see :mod:`leadscore.pyfunc`). The model
is registered under a name; the alias ``champion`` moves to it only when it beats the current
champion *on the same test rows, unseen by both*: the champion is loaded and scores the rows of
this run's test fold that it was never fitted, early-stopped or calibrated on either, so a
model trained on easier data cannot win on numbers measured elsewhere, and a champion is not
judged on its own training rows. Each run records which rows its model held out
(:data:`HOLDOUT_ARTIFACT`, see :class:`HoldoutRecord`); where those rows cannot be told apart
(a champion logged without that record, other data with random folds, or too few rows left),
the champion keeps the alias and a warning says how to promote the new version by hand.
The registry's alias is the source of truth for which version is champion; the runs'
``champion`` tags record what each training decided when it ran, and an alias moved by hand
leaves them as they were.

Where runs go (first that is set wins):

1. the ``tracking_uri`` argument (the CLI's ``--tracking-uri`` or config);
2. the ``MLFLOW_TRACKING_URI`` environment variable;
3. ``sqlite:///mlflow.db`` in the working directory, with artifacts in ``mlruns/`` beside it.

Browse them with ``mlflow ui --backend-store-uri sqlite:///mlflow.db``. The model registry
uses the same URI. MLflow's own logging and warnings are turned down while this module talks
to MLflow, so a training prints leadscore's lines, not database migrations.
"""

from __future__ import annotations

import base64
import contextlib
import enum
import hashlib
import io
import json
import logging
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
import zlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse, urlsplit, urlunsplit

import numpy as np
import pandas as pd
import yaml

from leadscore import plots
from leadscore.errors import LeadscoreError, ModelError, UsageError
from leadscore.io import error_reason, file_in_the_way, shown_url, sqlite_file

if TYPE_CHECKING:
    from matplotlib.figure import Figure
    from mlflow.models import ModelSignature

    from leadscore.config import MlflowConfig, TrainConfig
    from leadscore.folds import Folds
    from leadscore.model import LeadScoringModel
    from leadscore.schema import LabelledDataset
    from leadscore.specs import DatasetSpec
    from leadscore.training import TrainingResult

logger = logging.getLogger(__name__)

__all__ = [
    "CHAMPION_ALIAS",
    "DEFAULT_TRACKING_URI",
    "FROM_CONFIG",
    "HOLDOUT_ARTIFACT",
    "MODEL_ARTIFACT_PATH",
    "HoldoutRecord",
    "data_fingerprint",
    "dataset_fingerprint",
    "holdout_record",
    "input_example",
    "load_model",
    "log_training_run",
    "pyfunc_input",
    "registered_name",
    "resolve_run",
    "resolve_tracking_uri",
    "without_secrets",
]

#: Tracking URI used when neither the caller nor ``MLFLOW_TRACKING_URI`` names one.
DEFAULT_TRACKING_URI = "sqlite:///mlflow.db"
#: Alias of the registered model version that scoring uses by default.
CHAMPION_ALIAS = "champion"
#: Name of the logged model inside a run (``runs:/<run_id>/model``).
MODEL_ARTIFACT_PATH = "model"
#: Artifact of a run that records which rows its model held out (:class:`HoldoutRecord`).
HOLDOUT_ARTIFACT = "holdout.json"
#: Fewest test leads, unseen by both models, on which a champion and a challenger are
#: compared, and fewest leads among them that won and that did not: below that a ROC-AUC
#: difference is mostly noise. Leads, not rows: event data holds a lead once per as-of date,
#: and its rows share its outcome, so 100 rows may be 40 leads' worth of evidence.
MIN_COMPARED_LEADS = 100
MIN_COMPARED_PER_CLASS = 10

#: Short metric prefixes of the baselines (``lr_test_roc_auc``); other names are used as is.
BASELINE_PREFIXES: dict[str, str] = {"logistic_regression": "lr", "rule_points": "rules"}

_PYFUNC_FILE = Path(__file__).with_name("pyfunc.py")
_PACKAGE_DIR = Path(__file__).parent
_MODEL_FILES = ("booster.txt", "model.json")
_NOISY_LOGGERS = ("alembic", "mlflow", "sqlalchemy", "urllib3", "git")
_PROGRESS_BAR_ENV = "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"
_NOISY_WARNING_MODULES = r"(mlflow|alembic|sqlalchemy|pydantic|setuptools|pkg_resources)(\.|$)"


# --------------------------------------------------------------------------- small helpers


def resolve_tracking_uri(uri: str | None = None, *, cwd: Path | None = None) -> str:
    """The tracking URI to use: ``uri``, else ``MLFLOW_TRACKING_URI``, else a local SQLite file.

    The default ``sqlite:///mlflow.db`` is made absolute against ``cwd`` (the working
    directory by default) so that the runs do not move when the process changes directory.
    """
    if uri:
        return str(uri)
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return f"sqlite:///{((cwd or Path.cwd()) / 'mlflow.db').resolve()}"


def data_fingerprint(frame: pd.DataFrame) -> str:
    """A stable SHA-256 of a DataFrame's content, column names and dtypes, row order included.

    Two runs with the same fingerprint trained on the same data, whatever file or database
    it came from. The index is ignored (a reset index does not change the data); categorical
    columns hash their values, not their codes, so the order of categories does not matter.
    """
    digest = hashlib.sha256()
    digest.update(json.dumps([[str(c), str(t)] for c, t in frame.dtypes.items()]).encode())
    if len(frame.columns):
        hashed = pd.util.hash_pandas_object(frame, index=False, categorize=True)
        digest.update(hashed.to_numpy(dtype="uint64").tobytes())
    digest.update(str(len(frame)).encode())
    return digest.hexdigest()


def dataset_fingerprint(dataset: LabelledDataset) -> str:
    """The ``data_hash`` of a training run: :func:`data_fingerprint` of everything that decides
    the examples and their order (features, label, lead id, order).

    The command line and the notebooks hash with this one function: a run from a notebook and
    one from ``leadscore train`` on the same data must carry the same hash, or the registry
    cannot tell that they were tested on the same rows and never compares them.
    """
    frame = dataset.X.assign(
        __label__=np.asarray(dataset.y), __lead_id__=dataset.lead_id.to_numpy()
    )
    if dataset.order is not None:
        frame["__order__"] = pd.Series(dataset.order.to_numpy(), index=frame.index)
    return data_fingerprint(frame)


def _git(args: Sequence[str], path: Path | None) -> str | None:
    """The output of ``git ARGS`` run in ``path`` (default: the folder of this code), or
    ``None`` where git is missing or fails (not a repository)."""
    try:
        out = subprocess.run(
            ["git", *args],
            cwd=path or _PACKAGE_DIR,
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def git_commit(path: Path | None = None) -> str | None:
    """The git commit of the folder holding this code (or ``path``), or ``None`` outside git."""
    commit = (_git(["rev-parse", "HEAD"], path) or "").strip()
    return commit if re.fullmatch(r"[0-9a-f]{40}", commit) else None


def git_dirty(path: Path | None = None) -> bool | None:
    """Whether the package folder (or ``path``) differs from its commit: changed, staged or
    new files. The logged model bundles the code as it is on disk, so a commit alone would
    name code the model does not run. ``None`` outside git."""
    status = _git(["status", "--porcelain", "--", "."], path)
    return None if status is None else bool(status.strip())


class _FromConfig(enum.Enum):
    """The type of :data:`FROM_CONFIG`."""

    FROM_CONFIG = "from the config's mlflow section"


#: The default of :func:`log_training_run`'s ``registered_model``: the name the config's
#: ``mlflow.registered_model`` gives (``leadscore-<data set name>`` by default), as
#: ``leadscore train`` registers.
FROM_CONFIG = _FromConfig.FROM_CONFIG


def registered_name(base: str | None, dataset_name: str) -> str | None:
    """The registry name of a model: ``base-<data set name>`` (``leadscore-x_education`` for
    a spec, ``leadscore-crm`` for the event folder ``crm/``), so that each data set has its own
    champion: models of different data never compete, and scoring one data set never picks
    up another's model. ``train`` and ``tune`` register under it and ``score`` finds the
    champion by it. ``None`` (no registration) stays ``None``.
    """
    if base is None:
        return None
    return f"{base}-{dataset_name}"


def check_tracking_uri(uri: str, *, action: str = "log to") -> None:
    """A one-line :class:`ModelError` when the store at ``uri`` cannot take runs: a SQLite
    store that cannot be created where it points (a folder, a file where a folder goes, a
    folder that cannot be written), an existing file that is no database, a database
    server that refuses the connection or the credentials, a tracking server out of reach.

    Checked before training, once and without MLflow's retries: MLflow retries a store it
    cannot open for minutes (1 min 56 s for a wrong password, 4 min 21 s for a closed port),
    after the training time was spent. Nothing is created: a SQLite file that does not
    exist yet is left to MLflow, so a run that stops at the quality gate leaves no store.
    ``action`` says what the store was wanted for ("log to", "load models from").
    """
    if _is_file_store(uri):
        _check_file_store_allowed(uri)
        return
    shown = shown_url(uri)
    fix = "Check --tracking-uri (or mlflow.tracking_uri of the config), or use --no-mlflow."
    path = sqlite_file(uri)
    if path is not None:
        _check_sqlite_store(path, shown, action)
    elif uri.split(":", 1)[0].split("+", 1)[0] in _SERVER_DATABASES:
        import sqlalchemy as sa

        try:
            # a port that is no number (ValueError) or a driver not installed fail here
            engine = sa.create_engine(uri)
        except (sa.exc.ArgumentError, ModuleNotFoundError, ValueError) as err:
            reason = error_reason(err).replace(uri, shown)
            raise ModelError(f"cannot {action} MLflow at {shown}: {reason}", fix) from None
        try:
            with engine.connect():
                pass
        except sa.exc.SQLAlchemyError as err:
            reason = error_reason(err).replace(uri, shown)
            raise ModelError(f"cannot {action} MLflow at {shown}: {reason}", fix) from None
        finally:
            engine.dispose()
    elif uri.startswith(("http://", "https://")):
        import urllib.error
        import urllib.request

        url, headers = _health_request(uri)
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10):
                pass
        except urllib.error.HTTPError:
            pass  # it answered: an error status (a proxy, a login) is MLflow's to report
        except (urllib.error.URLError, OSError) as err:
            cause = err.reason if isinstance(err, urllib.error.URLError) else err
            raise ModelError(
                f"cannot reach the MLflow tracking server at {shown}: {cause}", fix
            ) from None


def _health_request(uri: str) -> tuple[str, dict[str, str]]:
    """The ``/health`` URL of the tracking server at ``uri`` and the headers to ask it with.

    urllib reads ``user:password@`` of a URL as part of the host name ("Name or service not
    known"), while MLflow sends it as basic authentication: the user info is taken out of the
    URL and sent as MLflow sends it, ``MLFLOW_TRACKING_USERNAME`` and ``_PASSWORD`` first
    when both are set (MLflow's explicit credentials win over the URL's too), else
    ``MLFLOW_TRACKING_TOKEN`` as a bearer token.
    """
    parts = urlsplit(uri)
    user, password = parts.username, parts.password
    env_user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    env_password = os.environ.get("MLFLOW_TRACKING_PASSWORD")
    if env_user and env_password:
        user, password = env_user, env_password
    elif user is not None:
        user, password = unquote(user), unquote(password or "")
    netloc = parts.netloc.rpartition("@")[2]
    url = urlunsplit(parts._replace(netloc=netloc)).rstrip("/") + "/health"
    if user is None:
        token = os.environ.get("MLFLOW_TRACKING_TOKEN")
        return url, {"Authorization": f"Bearer {token}"} if token else {}
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    return url, {"Authorization": f"Basic {token}"}


#: Database servers MLflow keeps runs in (the scheme of a tracking URI before any ``+driver``).
_SERVER_DATABASES = frozenset({"postgresql", "mysql", "mssql"})


def _check_sqlite_store(path: Path, shown: str, action: str) -> None:
    """Where a SQLite tracking store must go: a file in a writable folder, and a database
    if the file is there already."""
    import sqlite3

    fix = "Point --tracking-uri at a database file in a folder, e.g. sqlite:///mlflow.db."
    if path.is_dir():
        raise ModelError(f"tracking URI {shown}: {path} is a folder", fix)
    blocking = file_in_the_way(path)
    if blocking is not None:
        raise ModelError(f"tracking URI {shown}: {blocking} is a file, not a folder", fix)
    if not path.exists():
        folder = next((p for p in path.absolute().parents if p.exists()), None)
        if folder is not None and not os.access(folder, os.W_OK):
            raise ModelError(f"tracking URI {shown}: cannot write in {folder}", fix)
        return
    try:
        with contextlib.closing(sqlite3.connect(f"file:{path}?mode=rw", uri=True)) as con:
            con.execute("PRAGMA schema_version").fetchone()
    except sqlite3.Error as err:
        raise ModelError(
            f"cannot {action} MLflow at {shown}: {path} cannot be opened as a database ({err})",
            "Move the file away, or point --tracking-uri at another file, e.g. "
            "sqlite:///mlflow.db in another folder.",
        ) from None


def _first_line(text: str, uri: str) -> str:
    """``text``'s first line with ``uri`` written as :func:`~leadscore.io.shown_url` shows it:
    a driver's message may quote the URL, password and all."""
    first = (text.strip().splitlines() or [""])[0][:200]
    return first.replace(uri, shown_url(uri))


_FILE_STORE_OPT_IN = "MLFLOW_ALLOW_FILE_STORE"


def _is_file_store(uri: str) -> bool:
    """Whether MLflow reads ``uri`` as a folder of runs (``file:`` or a plain path)."""
    from urllib.parse import urlparse

    scheme = urlparse(uri).scheme
    return scheme in ("", "file") or len(scheme) == 1  # one letter: a Windows drive


def _check_file_store_allowed(uri: str) -> None:
    """MLflow 3 refuses a file store unless opted in: say so before training, not after."""
    from mlflow import MlflowClient

    with mlflow_errors(uri), quiet_mlflow():
        MlflowClient(uri).search_experiments(max_results=1)


@contextlib.contextmanager
def mlflow_errors(uri: str) -> Iterator[None]:
    """Turn MLflow, database and file-system errors of a logging step into one line."""
    import sqlalchemy as sa
    from mlflow.exceptions import MlflowException

    try:
        yield
    except (MlflowException, OSError, sa.exc.SQLAlchemyError) as err:
        if _FILE_STORE_OPT_IN in str(err):
            raise ModelError(
                f"tracking URI {shown_url(uri)} is a file store, which this MLflow refuses by "
                "default",
                f"Use a database such as sqlite:///mlflow.db (the default), or set "
                f"{_FILE_STORE_OPT_IN}=true to keep the file store.",
            ) from err
        first = _first_line(str(err), uri) or type(err).__name__
        raise ModelError(
            f"cannot log to MLflow at {shown_url(uri)}: {first}",
            "Check --tracking-uri (or mlflow.tracking_uri of the config), or use --no-mlflow.",
        ) from err


def champion_decision(run_id: str, tracking_uri: str) -> tuple[bool | None, str]:
    """Whether a logged training took the champion alias (None when it was not registered),
    and how that was decided (its ``champion_comparison`` tag, ``""`` when none)."""
    from mlflow import MlflowClient

    with quiet_mlflow():
        tags = MlflowClient(tracking_uri).get_run(run_id).data.tags
    tag = tags.get("champion")
    return (None if tag is None else tag == "true"), tags.get("champion_comparison", "")


@contextlib.contextmanager
def quiet_mlflow() -> Iterator[None]:
    """Keep MLflow's chatter off the terminal while it works, and restore everything after.

    MLflow prints registry events and download progress bars straight to ``sys.stderr``, and
    alembic logs every migration of a new SQLite store: none of it helps a marketer. Their
    loggers are turned down to errors, library warnings are ignored, and what MLflow writes to
    stderr is held back; if the block fails, the held-back text is written out after all, since
    it may explain the failure. leadscore's own log handlers keep the stream they were given.
    """
    saved = {name: logging.getLogger(name).level for name in _NOISY_LOGGERS}
    saved_bar = os.environ.get(_PROGRESS_BAR_ENV)
    held = io.StringIO()
    real_stderr = sys.stderr
    try:
        for name in _NOISY_LOGGERS:
            logging.getLogger(name).setLevel(logging.ERROR)
        os.environ[_PROGRESS_BAR_ENV] = "false"
        with warnings.catch_warnings(), contextlib.redirect_stderr(held):
            warnings.filterwarnings("ignore", module=_NOISY_WARNING_MODULES)
            yield
    except LeadscoreError:
        raise
    except BaseException:
        real_stderr.write(held.getvalue())
        raise
    finally:
        for name, level in saved.items():
            logging.getLogger(name).setLevel(level)
        if saved_bar is None:
            os.environ.pop(_PROGRESS_BAR_ENV, None)
        else:
            os.environ[_PROGRESS_BAR_ENV] = saved_bar


@contextlib.contextmanager
def using_tracking_uri(uri: str) -> Iterator[None]:
    """Point MLflow's fluent API (tracking and registry) at ``uri``, then restore it.

    ``mlflow.pyfunc.log_model`` only works through the fluent API, which reads a process-wide
    URI; scoping it here keeps a library call from changing where the caller's own runs go.
    """
    import mlflow
    from mlflow.tracking._model_registry import utils as registry_utils
    from mlflow.tracking._tracking_service import utils as tracking_utils

    env_names = ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI")
    saved_env = {name: os.environ.get(name) for name in env_names}
    saved = (
        getattr(tracking_utils, "_tracking_uri", None),
        getattr(registry_utils, "_registry_uri", None),
    )
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        yield
    finally:
        mlflow.set_tracking_uri(saved[0])  # type: ignore[arg-type]  # None: unset, as it was
        registry_utils._registry_uri = saved[1]
        for name, value in saved_env.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _ensure_experiment(client: Any, name: str, uri: str) -> str:
    """The id of experiment ``name``, created if needed with artifacts beside a SQLite file.

    Under ``mlflow run`` (``MLFLOW_RUN_ID`` set) the project's run already has its
    experiment, which ``mlflow run --experiment-name`` chose: runs of leadscore go there
    too, or a tuning's trials and its tuned model land in two experiments and the UI shows
    no nesting (and an empty ``leadscore`` experiment appears, or is restored)."""
    from mlflow.exceptions import MlflowException

    project_run = os.environ.get("MLFLOW_RUN_ID")
    if project_run:
        try:
            return str(client.get_run(project_run).info.experiment_id)
        except MlflowException:
            pass  # a run id of another store: the experiment by name, as outside a project
    existing = client.get_experiment_by_name(name)
    if existing is not None:
        if existing.lifecycle_stage == "deleted":
            client.restore_experiment(existing.experiment_id)
        return existing.experiment_id
    location = None
    db = sqlite_file(uri)
    if db is not None:
        location = (db.resolve().parent / "mlruns" / _safe_name(name)).as_uri()
    return client.create_experiment(name, artifact_location=location)


def _safe_name(name: str) -> str:
    """``name`` as an MLflow run name, metric-key part or artifact folder: every run of
    characters outside ``A-Za-z0-9_.-`` a ``_``.

    Not :func:`leadscore.specs._safe_name`, on purpose: that one proposes a name for the
    user to type and tidies it (accents folded, ``_`` stripped at the ends); this one names
    metrics and folders of runs already stored, so it must map a name as earlier runs did
    (a metric of a new run stays comparable with the same metric of older ones)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "experiment"


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested mappings as ``a.b.c`` keys; lists and other values are kept as they are."""
    flat: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, f"{name}."))
        else:
            flat[name] = value
    return flat


def without_secrets(value: Any) -> Any:
    """``value`` (a config or spec as plain data) with the password of every URL in it masked
    as :func:`~leadscore.io.shown_url` masks it (``postgresql://u:***@host/db``, a
    ``?password=`` too), mappings and lists walked; other values as they are.

    A run's params and artifacts are read by everyone with access to the tracking store,
    usually more people than hold the password of the tracking store or of a spec's database:
    ``mlflow.tracking_uri`` of a config, or a spec's ``source``, must not land there as typed.
    """
    if isinstance(value, str):
        return shown_url(value) if "://" in value else value
    if isinstance(value, Mapping):
        return {key: without_secrets(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [without_secrets(item) for item in value]
    return value


def _param_value(value: Any) -> str:
    if isinstance(value, list | tuple | set | frozenset):
        text = json.dumps(list(value), default=str)
    else:
        text = str(value)
    return text if len(text) <= 6000 else text[:5997] + "..."


def _finite(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# --------------------------------------------------------------------------- what is logged


def training_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Flat MLflow metric names of a training's metrics dict.

    The model's test metrics become ``test_<name>``, its metrics before calibration
    (``model_uncalibrated``) ``test_raw_<name>``, each baseline's ``<prefix>_test_<name>``
    (``lr_``, ``rules_``), each stage's ``stage_<stage>_<name>``, the bounds of the model's
    bootstrap intervals ``test_<name>_low``/``_high`` (and of its ROC-AUC gain over each
    baseline, ``test_roc_auc_gain_over_<prefix>_low``/``_high``), the ECE expected by chance
    ``test_ece_by_chance`` (its mean) and ``test_ece_by_chance_upper`` (what a perfectly
    calibrated model stays below 95% of the time, the band ``train`` prints), and counts
    such as ``n_train``, ``best_iteration`` (the round early stopping chose) and
    ``num_trees`` (the shipped booster's trees) keep their names.
    Missing or non-finite numbers are left out: MLflow would store them as NaN.
    """
    flat: dict[str, float] = {}

    def put(name: str, value: Any) -> None:
        number = _finite(value)
        if number is not None:
            flat[name] = number

    for key, value in (metrics.get("model") or {}).items():
        put(f"test_{key}", value)
    raw = metrics.get("model_uncalibrated") or metrics.get("model_raw") or {}
    for key, value in raw.items():
        put(f"test_raw_{key}", value)
    for name, values in (metrics.get("baselines") or {}).items():
        prefix = BASELINE_PREFIXES.get(name, _safe_name(name))
        for key, value in (values or {}).items():
            put(f"{prefix}_test_{key}", value)
    for stage, values in (metrics.get("stages") or {}).items():
        for key, value in (values or {}).items():
            put(f"stage_{stage}_{key}", value)
    uncertainty = metrics.get("uncertainty") or {}
    for key, (low, high) in ((uncertainty.get("intervals") or {}).get("model") or {}).items():
        put(f"test_{key}_low", low)
        put(f"test_{key}_high", high)
    for name, (low, high) in (uncertainty.get("roc_auc_gain") or {}).items():
        prefix = BASELINE_PREFIXES.get(name, _safe_name(name))
        put(f"test_roc_auc_gain_over_{prefix}_low", low)
        put(f"test_roc_auc_gain_over_{prefix}_high", high)
    chance = uncertainty.get("ece_by_chance") or {}
    put("test_ece_by_chance", chance.get("mean"))
    put("test_ece_by_chance_upper", chance.get("upper"))
    for key, value in metrics.items():
        if not isinstance(value, Mapping):
            put(key, value)
    return flat


def stage_table(metrics: Mapping[str, Any]) -> pd.DataFrame:
    """The per-stage table of a training's metrics, one row per stage, lead to SQL."""
    stages = metrics.get("stages") or {}
    table = pd.DataFrame.from_dict(dict(stages), orient="index")
    table.index.name = "stage"
    return table.reset_index()


def model_signature(model: LeadScoringModel) -> ModelSignature:
    """Input and output schema of the pyfunc, from the model's feature list.

    Built from the features, not inferred from a sample: a categorical column whose sample
    happens to hold only numbers, or only missing values, would otherwise be typed wrongly.
    Every input is optional (a missing value is "unknown" to the model) and of type ``any``:
    MLflow refuses int64 columns for a ``double`` input (it only widens integers of up to 6
    bytes), float columns for a ``long`` one, and category, float or integer columns for a
    ``string`` one, yet pandas reads a count without gaps as int64, a batch whose categorical
    column is empty as floats, and codes as numbers. The model types every column itself, as
    the batch scorer does (numbers parsed, categories matched in their canonical text).
    """
    from mlflow.models import ModelSignature
    from mlflow.types import ColSpec, Schema
    from mlflow.types.schema import AnyType

    inputs = Schema([ColSpec(AnyType(), f.name, required=False) for f in model.features])
    outputs = Schema(
        [
            ColSpec("double", "probability"),
            ColSpec("long", "score"),
            ColSpec("string", "stage"),
        ]
    )
    return ModelSignature(inputs=inputs, outputs=outputs)


def pyfunc_input(model: LeadScoringModel, X: pd.DataFrame) -> pd.DataFrame:
    """``X`` as a client sends it to the logged pyfunc: text and floats, no pandas categories.

    MLflow's schema enforcement refuses ``category`` columns for a ``string`` input, and a
    JSON request has no categories anyway; the model restores its own categories inside.
    """
    from leadscore.pyfunc import align_features

    frame = align_features(model, X).reset_index(drop=True)
    out: dict[str, pd.Series] = {}
    for feature in model.features:
        column = frame[feature.name]
        if feature.kind == "categorical":
            text = column.astype(object).where(column.notna(), None)
            out[feature.name] = text.map(lambda v: None if v is None else str(v)).astype(object)
        else:
            out[feature.name] = pd.to_numeric(column, errors="coerce").astype("float64")
    return pd.DataFrame(out)


def input_example(model: LeadScoringModel, X: pd.DataFrame) -> pd.DataFrame:
    """The input example logged with the pyfunc: :func:`pyfunc_input` with every missing
    value ``None``, in object columns.

    MLflow writes a DataFrame example (``input_example.json``, ``serving_input_example.json``)
    with ``json.dumps``, and its own clean-up, ``df.where(df.notnull(), None)``, leaves a
    float column float: a missing number is written as a bare ``NaN``, which is not JSON, and
    strict parsers (JavaScript's ``JSON.parse``, Java and Go decoders, Python's ``json`` with
    ``parse_constant``) refuse the whole file, the one a client copies its first request
    from. In an object column a missing value stays ``None`` and is written as ``null``,
    which is how a JSON request says "unknown" anyway. The rows are still the first of the
    test fold, missing values included, so the example shows that they are accepted. The
    signature is given explicitly (:func:`model_signature`, every input ``any``), so object
    columns change nothing in it, and the model parses numbers itself, as for any request.
    """
    frame = pyfunc_input(model, X)
    return frame.astype(object).where(frame.notna(), None)


def pip_requirements() -> list[str]:
    """Pinned packages the logged pyfunc needs: what loading a LeadScoringModel imports.

    Listed rather than inferred: MLflow's inference loads the model in a subprocess, which is
    slow and picks up whatever the training process had imported. A test loads and scores the
    logged model with imports limited to these packages and their own dependencies.
    """
    from importlib.metadata import PackageNotFoundError, version

    wanted = (
        *("mlflow", "lightgbm", "numpy", "pandas", "scikit-learn", "scipy", "pydantic"),
        "duckdb",  # leadscore.io, imported by the model module for its atomic writes
    )
    pins = []
    for name in wanted:
        try:
            pins.append(f"{name}=={version(name)}")
        except PackageNotFoundError:
            continue
    return pins


def training_figures(result: TrainingResult) -> dict[str, Figure]:
    """The charts of a training's test fold, by artifact file name (``roc.png``, ...)."""
    y = np.asarray(result.y)
    # event data holds a lead at several as-of dates: its rows are examples of fewer leads
    leads = result.metrics.get("n_test_leads")
    examples = leads is not None and leads < len(y)
    rows = f"examples of {leads:,} leads" if examples else "leads"
    scores = {"Model": np.asarray(result.p_cal)}
    for name, proba in result.baselines.items():
        scores[name.replace("_", " ").capitalize()] = np.asarray(proba)
    return {
        "roc.png": plots.roc_figure(y, scores),
        "precision_recall.png": plots.pr_figure(y, scores),
        "reliability.png": plots.reliability_figure(y, result.p_raw, result.p_cal, rows=rows),
        "cumulative_gains.png": plots.gains_figure(y, scores),
        "stages.png": plots.stage_histogram_figure(
            result.p_cal,
            result.stages,
            _thresholds(result.model),
            rows="examples" if examples else "leads",
        ),
    }


def _thresholds(model: LeadScoringModel) -> dict[str, float]:
    """The model's MQL and SQL cut-offs that some lead can reach (``inf`` means none can)."""
    cuts = {"mql": model.mql_threshold, "sql": model.sql_threshold}
    return {stage: float(cut) for stage, cut in cuts.items() if _finite(cut) is not None}


def _mlflow_section(config: TrainConfig | Mapping[str, Any]) -> MlflowConfig:
    """The ``mlflow`` section of a training config, whether a mapping or a ``TrainConfig``."""
    from leadscore.config import parse_config

    return (parse_config(config) if isinstance(config, Mapping) else config).mlflow


def _config_dict(config: TrainConfig | DatasetSpec | Mapping[str, Any] | None) -> dict[str, Any]:
    """A config or spec as plain data, whether a mapping or a pydantic model."""
    if config is None:
        return {}
    if isinstance(config, Mapping):
        return dict(config)
    return dict(config.model_dump(mode="json"))


def _run_name(dataset_name: str, folds: Folds) -> str:
    """``train-<data set>``, and the last example's date where the folds are ordered by time
    (``train-crm-2026-10-31``): a monthly retrain reads apart from last month's in the
    MLflow UI's list of runs."""
    name = f"train-{_safe_name(dataset_name)}"
    if folds.kind == "time" and folds.span:
        name += f"-{folds.span[1][:10]}"
    return name


def _fold_params(folds: Folds) -> dict[str, Any]:
    params: dict[str, Any] = {"folds.kind": folds.kind}
    params.update({f"folds.n_{k}": v for k, v in folds.sizes().items()})
    for name, start in folds.boundaries.items():
        params[f"folds.{name}_from"] = start
    if folds.span:
        params["folds.first"], params["folds.last"] = folds.span
    return params


def _test_features(result: TrainingResult, X_test: pd.DataFrame | None) -> pd.DataFrame:
    X = X_test if X_test is not None else result.X_test
    if X is None:
        raise ValueError(
            "log_training_run needs the test fold's features: pass "
            "X_test=dataset.X.iloc[result.folds.test]"
        )
    n = len(result.y)
    if len(X) != n:
        raise ValueError(f"X_test has {len(X)} rows but the test fold has {n} labels")
    return X.reset_index(drop=True)


# --------------------------------------------------------------------------- held-out rows


@dataclass(frozen=True)
class HoldoutRecord:
    """Which rows of its data a logged model never fitted, early-stopped or calibrated on.

    A model learns from every row of its data outside its test fold (fit, early stopping,
    calibration), so a later run's test rows are fair to it only where they are its test
    rows too. With the same data (same :func:`dataset_fingerprint`) that is decided row by row,
    from the positions of its test fold; with other data (a newer extract) rows cannot be
    matched, but time-ordered folds still tell: a row at or after the model's ``test_from``
    is newer than all of its history. Logged with every run as :data:`HOLDOUT_ARTIFACT`
    (JSON) and read back from the champion's run when a new version asks for the alias.

    Attributes
    ----------
    data_hash : :func:`dataset_fingerprint` of the data the positions refer to.
    fold_kind : ``"time"``, ``"sequence"`` or ``"random"``.
    order_by : the spec's ordering column (``None`` for event data, ordered by as-of date).
    test_from : first order value of the test fold, as :class:`~leadscore.folds.Folds` writes
        it; every fit, early-stopping and calibration row is older. ``None`` for random folds.
    horizon_days : label window of as-of examples (event data): the labels of the model's
        history reach this many days past ``test_from``. ``None`` for flat tables.
    test_rows : positions of the test fold's rows in the data, in the fold's order (sorted
        once read back from JSON).
    """

    data_hash: str
    fold_kind: str
    order_by: str | None
    test_from: str | None
    horizon_days: int | None
    test_rows: np.ndarray

    def to_json(self) -> dict[str, Any]:
        """The record as JSON values; the positions as a compressed bitmap (a test fold of
        a million leads takes kilobytes, not megabytes of numbers)."""
        return {
            "format": 1,
            "data_hash": self.data_hash,
            "fold_kind": self.fold_kind,
            "order_by": self.order_by,
            "test_from": self.test_from,
            "horizon_days": self.horizon_days,
            "n_test": len(self.test_rows),
            "test_rows": _encode_rows(self.test_rows),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HoldoutRecord:
        """Read :meth:`to_json`'s output back; ``ValueError`` for any other shape."""
        if data.get("format") != 1:
            raise ValueError(f"unknown holdout record format {data.get('format')!r}")
        rows = _decode_rows(data["test_rows"])
        if len(rows) != data["n_test"]:
            raise ValueError("holdout record: test rows do not match n_test")
        horizon = data.get("horizon_days")
        return cls(
            data_hash=str(data["data_hash"]),
            fold_kind=str(data["fold_kind"]),
            order_by=None if data.get("order_by") is None else str(data["order_by"]),
            test_from=None if data.get("test_from") is None else str(data["test_from"]),
            horizon_days=None if horizon is None else int(horizon),
            test_rows=rows,
        )

    def digest(self) -> str:
        """SHA-256 of the data hash and the set of test rows: runs tested on the same rows of
        the same data share it (a run tag, to find them in ``mlflow ui``)."""
        digest = hashlib.sha256(self.data_hash.encode())
        digest.update(np.sort(self.test_rows).astype("<i8").tobytes())
        return digest.hexdigest()


_BITMAP_ENCODING = "bitmap+zlib+base64"


def _encode_rows(rows: np.ndarray) -> dict[str, Any]:
    """Row positions as a zlib-compressed bitmap in base64 (order is not kept)."""
    length = int(rows.max()) + 1 if len(rows) else 0
    bits = np.zeros(length, dtype=bool)
    bits[rows] = True
    packed = zlib.compress(np.packbits(bits).tobytes(), 9)
    return {
        "encoding": _BITMAP_ENCODING,
        "length": length,
        "bits": base64.b64encode(packed).decode("ascii"),
    }


def _decode_rows(data: Mapping[str, Any]) -> np.ndarray:
    """The sorted row positions of :func:`_encode_rows`'s output."""
    if data.get("encoding") != _BITMAP_ENCODING:
        raise ValueError(f"unknown row encoding {data.get('encoding')!r}")
    packed = np.frombuffer(zlib.decompress(base64.b64decode(data["bits"])), dtype=np.uint8)
    return np.flatnonzero(np.unpackbits(packed)[: int(data["length"])]).astype("int64")


def holdout_record(
    result: TrainingResult,
    *,
    data_hash: str,
    spec: DatasetSpec | Mapping[str, Any] | None = None,
) -> HoldoutRecord | None:
    """The :class:`HoldoutRecord` of a training, or ``None`` when its test fold does not
    match its test labels (then it is never compared as a champion)."""
    test = result.folds.test
    if len(test) != len(result.y):
        return None
    boundaries = result.folds.boundaries
    order_by = _config_dict(spec).get("order_by")
    horizon = result.model.metadata.get("horizon_days")
    return HoldoutRecord(
        data_hash=str(data_hash),
        fold_kind=result.folds.kind,
        order_by=None if order_by is None else str(order_by),
        test_from=None if boundaries.get("test") is None else str(boundaries["test"]),
        horizon_days=None if horizon is None else int(horizon),
        test_rows=np.asarray(test, dtype="int64"),
    )


def _logged_holdout(client: Any, run_id: str | None) -> HoldoutRecord | None:
    """The holdout record of a logged run; ``None`` for a run logged before leadscore wrote
    one, or whose record cannot be read (either way, its unseen rows are unknown)."""
    from mlflow.exceptions import MlflowException

    if not run_id:
        return None
    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = client.download_artifacts(run_id, HOLDOUT_ARTIFACT, tmp)
            return HoldoutRecord.from_json(json.loads(Path(local).read_text()))
        except (MlflowException, OSError, ValueError, KeyError, TypeError):
            return None


class ModelFetchError(ModelError):
    """A model's files could not be fetched (an artifact store out of reach, a run whose
    files are gone, a full disk): nothing is known about the model itself, so the champion
    check keeps a champion it cannot fetch rather than replace it unseen."""


class _Declined(Exception):
    """A champion and a challenger cannot be compared fairly; the message says why."""


def _unseen_by_champion(
    new: HoldoutRecord | None, champion: HoldoutRecord | None, champion_version: str
) -> np.ndarray:
    """Mask over this run's test rows: those the champion was never fitted, early-stopped or
    calibrated on (this run's model saw none of them: they are its test fold).

    Same data: the rows of both test folds. Other data: every row, when the folds are
    time-ordered and this run's test fold starts after the champion's history (and after the
    label windows of its last as-of examples). Otherwise :class:`_Declined`.
    """
    if new is None:
        raise _Declined("this run's test rows are not known (its result holds no folds)")
    if champion is None:
        raise _Declined(
            f"version {champion_version} was logged without a record of the rows it was "
            f"trained on ({HOLDOUT_ARTIFACT}), so these test rows may be its training rows"
        )
    if new.data_hash == champion.data_hash:
        return np.isin(new.test_rows, champion.test_rows)
    _check_after_history(new, champion, champion_version)
    return np.ones(len(new.test_rows), dtype=bool)


def _check_after_history(new: HoldoutRecord, champion: HoldoutRecord, version: str) -> None:
    """Raise :class:`_Declined` unless every row of ``new``'s test fold is newer than all the
    champion's fit, early-stopping and calibration rows and than their labels' windows (an
    as-of example's label is a win up to ``horizon_days`` later: a newer example of the same
    lead inside that window may share the win the champion learned)."""
    other = f"the data differ from version {version}'s"
    if "random" in (new.fold_kind, champion.fold_kind):
        raise _Declined(f"{other} and the folds are random, so which rows it trained on is unknown")
    if (new.fold_kind, new.order_by) != (champion.fold_kind, champion.order_by):
        raise _Declined(f"{other} and the rows are ordered differently")
    if new.test_from is None or champion.test_from is None:
        raise _Declined(f"{other} and where a test fold starts was not recorded")
    try:
        after = _starts_after(
            new.test_from, champion.test_from, new.fold_kind, champion.horizon_days
        )
    except (ValueError, TypeError):
        raise _Declined(f"{other} and where a test fold starts cannot be read") from None
    if after:
        return
    where = f"version {version}'s test fold (from {champion.test_from})"
    risk = f"some of its rows may be rows version {version} trained on"
    if champion.horizon_days and new.fold_kind == "time":
        where = f"{champion.horizon_days} days (the label window) after {where}"
        risk = f"some of its rows may share a win with rows version {version} trained on"
    raise _Declined(
        f"{other}, and this run's test fold starts at {new.test_from}, before {where}: {risk}"
    )


def _starts_after(start: str, test_from: str, kind: str, horizon_days: int | None) -> bool:
    """Whether order value ``start`` is at or after ``test_from`` plus ``horizon_days`` (for
    times), both as :class:`~leadscore.folds.Folds` writes them (``ValueError`` if not)."""
    if kind == "time":
        margin = pd.Timedelta(days=horizon_days or 0)
        return bool(pd.Timestamp(start) >= pd.Timestamp(test_from) + margin)
    # Folds write a non-integer order value with 6 digits: equal texts prove nothing
    exact = all(re.fullmatch(r"-?\d+", t) for t in (start, test_from))
    return float(start) >= float(test_from) if exact else float(start) > float(test_from)


def _lead_counts(y: np.ndarray, leads: np.ndarray | None) -> tuple[int, int]:
    """Distinct leads among these rows and how many of them won (a won row at any as-of
    date); without lead ids every row is a lead of its own."""
    if leads is None:
        return len(y), int(np.sum(y == 1))
    codes, uniques = pd.factorize(
        pd.Series(np.asarray(leads, dtype=object).ravel()), use_na_sentinel=False
    )
    won = np.zeros(len(uniques), dtype=bool)
    won[codes[np.asarray(y) == 1]] = True
    return len(uniques), int(won.sum())


def _check_enough_leads(y: np.ndarray, total: int, leads: np.ndarray | None = None) -> None:
    """Raise :class:`_Declined` when the leads unseen by both are too few, or too few of them
    won or did not, to tell two models apart (ROC-AUC needs both outcomes).

    ``leads`` are the rows' lead ids and ``total`` the number of leads in this run's test
    fold. Event data holds a lead once per as-of date, its rows sharing its outcome and most
    of its features: counted as rows, 40 leads seen at a few dates each would pass the
    minimums. A lead counts as won when any of its rows won, and as not won otherwise.
    Without ids (and on flat data, one row per lead) every row is a lead, as before."""
    n, wins = _lead_counts(y, leads)
    rest = n - wins
    if n < MIN_COMPARED_LEADS or min(wins, rest) < MIN_COMPARED_PER_CLASS:
        rows = f" ({len(y):,} rows)" if len(y) != n else ""
        raise _Declined(
            f"only {n:,} of this run's {total:,} test leads{rows} are unseen by both models "
            f"({wins:,} won, {rest:,} did not); a fair comparison needs at least "
            f"{MIN_COMPARED_LEADS} leads, {MIN_COMPARED_PER_CLASS} of them won and "
            f"{MIN_COMPARED_PER_CLASS} not"
        )


# --------------------------------------------------------------------------- logging a run


#: Test-fold rows logged with a run (labels, probabilities, features) for the HTML report;
#: larger folds are sampled down to this many rows.
MAX_TEST_FOLD_ROWS = 200_000


def _log_test_fold(result: TrainingResult, tmp: Path) -> None:
    """Log the test fold (labels, probabilities, stages, features) as Parquet, so that
    ``leadscore report model`` draws every chart on the leads the metrics were measured on."""
    import mlflow

    from leadscore.html_report import TEST_FOLD_ARTIFACT, test_fold_frame

    frame = test_fold_frame(result)
    if len(frame) > MAX_TEST_FOLD_ROWS:
        frame = frame.sample(MAX_TEST_FOLD_ROWS, random_state=0).sort_index()
    path = tmp / TEST_FOLD_ARTIFACT
    frame.to_parquet(path, index=False)
    mlflow.log_artifact(str(path))


def log_training_run(
    result: TrainingResult,
    *,
    dataset_name: str,
    spec: DatasetSpec | Mapping[str, Any] | None,
    config: TrainConfig | Mapping[str, Any],
    data_hash: str,
    X_test: pd.DataFrame | None = None,
    tracking_uri: str | None = None,
    experiment: str | None = None,
    registered_model: str | _FromConfig | None = FROM_CONFIG,
    figures_dir: Path | None = None,
) -> str:
    """Log one training as an MLflow run, register its model and maybe make it champion.

    Parameters
    ----------
    result : the :class:`~leadscore.training.TrainingResult` of the training.
    dataset_name : name of the data set, a run tag.
    spec : the dataset spec, a mapping or a ``DatasetSpec`` (logged as ``spec.yaml``), or
        ``None`` for event data.
    config : the training config, a mapping or a ``TrainConfig`` (logged as params
        ``config.*`` and as ``config.json``). The password of any URL in the config or the
        spec (``mlflow.tracking_uri``, a spec's ``source``) is logged masked, as is the
        tracking URI in the log line (:func:`without_secrets`).
    data_hash : :func:`dataset_fingerprint` of the training data set, a run tag, as
        ``leadscore train`` computes it. With the positions of the test fold it makes the
        run's :class:`HoldoutRecord` (:data:`HOLDOUT_ARTIFACT`), which tells a later version
        which rows this model never trained on; another hash (of the features alone, say)
        matches no command-line run of the same data, and the registry then never compares
        the two on the same rows.
    X_test : features of the test fold, rows in the order of ``result.y``
        (``dataset.X.iloc[result.folds.test]``); the signature, the input example and the
        champion check use them. Taken from ``result.X_test`` when not given.
    tracking_uri : where to log; ``None`` takes the config's ``mlflow.tracking_uri``, then
        the fallbacks of the module docstring, as ``leadscore train`` does.
    experiment : MLflow experiment name, created when missing; ``None`` takes the config's
        ``mlflow.experiment`` (``leadscore`` by default).
    registered_model : registry name, or ``None`` to log the model without registering it.
        ``{dataset}`` in it is replaced by ``dataset_name``. The default,
        :data:`FROM_CONFIG`, registers under the name ``leadscore train`` gives for the same
        config (``<mlflow.registered_model>-<data set name>``, :func:`registered_name`), so
        that a model trained in a notebook is the champion ``leadscore score`` finds, and two
        data sets never share one champion.
    figures_dir : also write the charts there as PNG (for the HTML report).

    Inside an active MLflow run (a notebook's ``with mlflow.start_run():``) the run is logged
    as a child of it (``nested=True``), still in leadscore's experiment and store, where
    ``leadscore train`` logs and the registry compares champions; the active run must be in
    that store (:class:`UsageError` otherwise).

    Returns
    -------
    str
        The run id.
    """
    import mlflow
    from mlflow import MlflowClient

    from leadscore.model import to_jsonable
    from leadscore.pyfunc import MODEL_DIR_ARTIFACT

    section = _mlflow_section(config)
    uri = resolve_tracking_uri(tracking_uri or section.tracking_uri)
    experiment = experiment or section.experiment
    if registered_model is FROM_CONFIG:
        registered_model = registered_name(section.registered_model, dataset_name)
    elif registered_model is not None:
        registered_model = registered_model.replace("{dataset}", dataset_name)
    X_test = _test_features(result, X_test)
    metrics = dict(result.metrics)
    config_data = without_secrets(_config_dict(config))
    parent = mlflow.active_run()
    with quiet_mlflow(), using_tracking_uri(uri), tempfile.TemporaryDirectory() as tmp:
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if parent is not None:
            _check_parent_run(client, parent, uri)
        experiment_id = _ensure_experiment(client, experiment, uri)
        tags = {
            "dataset": dataset_name,
            "data_hash": data_hash,
            "fold_kind": result.folds.kind,
            "leadscore_version": _leadscore_version(),
        }
        if isinstance(metrics.get("calibration"), str):
            tags["calibration"] = metrics["calibration"]
        commit = git_commit()
        if commit:
            tags["git_commit"] = commit
            dirty = git_dirty()
            if dirty is not None:
                tags["git_dirty"] = str(dirty).lower()
            if not os.environ.get("MLFLOW_RUN_ID"):
                # under `mlflow run` this tag is the project's commit, set by MLflow
                tags["mlflow.source.git.commit"] = commit
        with mlflow.start_run(
            experiment_id=experiment_id,
            run_name=_run_name(dataset_name, result.folds),
            tags=tags,
            nested=parent is not None,
        ) as run:
            run_id = run.info.run_id
            params = {f"lgbm.{k}": v for k, v in result.params.items()}
            params.update({f"config.{k}": v for k, v in _flatten(config_data).items()})
            params.update(_fold_params(result.folds))
            if params:
                mlflow.log_params({k: _param_value(v) for k, v in params.items()})
            mlflow.log_metrics(training_metrics(metrics))
            for name, value in _thresholds(result.model).items():
                mlflow.log_metric(f"threshold_{name}", value)

            mlflow.log_dict(to_jsonable(config_data), "config.json")
            if spec is not None:
                mlflow.log_text(
                    yaml.safe_dump(
                        to_jsonable(without_secrets(_config_dict(spec))),
                        sort_keys=False,
                        allow_unicode=True,
                    ),
                    "spec.yaml",
                )
            mlflow.log_dict(to_jsonable({**metrics, "run_id": run_id}), "metrics.json")
            table = stage_table(metrics)
            if len(table):
                mlflow.log_text(table.to_csv(index=False), "stages.csv")
            if result.feature_importance:
                mlflow.log_dict(to_jsonable(result.feature_importance), "feature_importance.json")
            if result.warnings:
                mlflow.log_text("\n".join(result.warnings) + "\n", "warnings.txt")

            # each chart is drawn once, then logged and copied from the same file
            plot_dir = Path(tmp) / "plots"
            plot_dir.mkdir()
            for name, fig in training_figures(result).items():
                fig.savefig(plot_dir / name)
            mlflow.log_artifacts(str(plot_dir), "plots")
            if figures_dir is not None:
                Path(figures_dir).mkdir(parents=True, exist_ok=True)
                for png in plot_dir.iterdir():
                    shutil.copyfile(png, Path(figures_dir) / png.name)

            _log_test_fold(result, Path(tmp))
            holdout = holdout_record(result, data_hash=data_hash, spec=spec)
            if holdout is not None:
                mlflow.log_dict(holdout.to_json(), HOLDOUT_ARTIFACT)
                mlflow.set_tag("test_rows_digest", holdout.digest())
            model_dir = result.model.save(Path(tmp) / "leadscore_model")
            info = mlflow.pyfunc.log_model(
                name=MODEL_ARTIFACT_PATH,
                python_model=str(_PYFUNC_FILE),
                artifacts={MODEL_DIR_ARTIFACT: str(model_dir)},
                code_paths=[str(_PACKAGE_DIR)],
                signature=model_signature(result.model),
                input_example=input_example(result.model, X_test.head(5)),
                pip_requirements=pip_requirements(),
                registered_model_name=registered_model,
                tags={"dataset": dataset_name, "data_hash": data_hash},
            )

            if registered_model is not None and info.registered_model_version is not None:
                version = str(info.registered_model_version)
                promotion = _maybe_promote(
                    client,
                    registered_model,
                    version,
                    result.model,
                    X_test,
                    result.y,
                    holdout=holdout,
                    leads=result.lead_id,
                    always=section.champion == "always",
                )
                mlflow.set_tag("registered_model", f"{registered_model}/{version}")
                _log_promotion(promotion)
        logger.info(
            "logged run %s to %s%s",
            run_id,
            shown_url(uri),
            "" if parent is None else f", nested under the active run {parent.info.run_id}",
        )
    return run_id


def _check_parent_run(client: Any, parent: Any, uri: str) -> None:
    """A :class:`UsageError` when the active run that a new run would nest under is not in
    the store at ``uri``: MLflow would record the child with a parent id that no run of its
    store has, and neither run would show the other."""
    from mlflow.exceptions import MlflowException

    try:
        client.get_run(parent.info.run_id)
    except MlflowException:
        name = parent.info.run_name or parent.info.run_id
        raise UsageError(
            f"an MLflow run is active ({name!r}) in another tracking store than "
            f"{shown_url(uri)}, where this run is logged, so it cannot be nested under it",
            "Pass tracking_uri=mlflow.get_tracking_uri() to log it as a child of the active "
            "run, or call log_training_run after the `with mlflow.start_run():` block.",
        ) from None


def _log_promotion(promotion: Promotion) -> None:
    """Tags and metrics of the champion decision: ``champion`` (true/false),
    ``champion_comparison`` (how it was reached), and, when the models were compared, both
    ROC-AUCs on the rows they were compared on and how many rows and leads that was.

    A record of the decision at the time, not of who holds the alias now: the alias can be
    moved by hand later (see :func:`_retire`); ask the registry
    (``get_model_version_by_alias(name, "champion")``) for the current champion."""
    import mlflow

    mlflow.set_tag("champion", str(promotion.promoted).lower())
    if promotion.note:
        mlflow.set_tag("champion_comparison", promotion.note[:5000])
    if promotion.champion_auc is not None and math.isfinite(promotion.champion_auc):
        mlflow.log_metric("previous_champion_test_roc_auc", promotion.champion_auc)
    if promotion.challenger_auc is not None and math.isfinite(promotion.challenger_auc):
        mlflow.log_metric("champion_comparison_test_roc_auc", promotion.challenger_auc)
    if promotion.n_compared is not None:
        mlflow.log_metric("champion_comparison_rows", promotion.n_compared)
    if promotion.gain_interval is not None:
        low, high = promotion.gain_interval
        mlflow.log_metric("champion_gain_low", low)
        mlflow.log_metric("champion_gain_high", high)
    if promotion.n_leads is not None:
        mlflow.log_metric("champion_comparison_leads", promotion.n_leads)


def _leadscore_version() -> str:
    from leadscore import __version__

    return __version__


def _roc_auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    y = np.asarray(y).astype(int)
    if len(np.unique(y)) < 2:
        return float("nan")
    return float(roc_auc_score(y, np.asarray(p, dtype=float)))


@dataclass(frozen=True)
class Promotion:
    """What :func:`_maybe_promote` decided, for the run's tags and metrics.

    Attributes
    ----------
    promoted : whether the new version holds the champion alias now.
    note : how the decision was reached, in words (the run tag ``champion_comparison``).
    champion_auc, challenger_auc : ROC-AUC of the champion and of the new model on the rows
        they were compared on (``None`` when not compared).
    n_compared : how many test rows that was.
    n_leads : how many distinct leads those rows hold (fewer than the rows on event data).
    gain_interval : the 95% paired bootstrap interval of the new model's ROC-AUC minus the
        champion's on those rows (resampling leads); the alias moves only when it lies above 0.
    """

    promoted: bool
    note: str | None = None
    champion_auc: float | None = None
    challenger_auc: float | None = None
    n_compared: int | None = None
    n_leads: int | None = None
    gain_interval: tuple[float, float] | None = None


def _maybe_promote(
    client: Any,
    name: str,
    version: str,
    model: LeadScoringModel,
    X_test: pd.DataFrame,
    y_test: np.ndarray,
    *,
    holdout: HoldoutRecord | None,
    leads: np.ndarray | Sequence[Any] | None = None,
    always: bool = False,
) -> Promotion:
    """Give ``version`` the champion alias if it beats the champion on test rows neither saw,
    or, with ``always`` (``mlflow.champion: always``), without asking.

    The champion is loaded and scores the rows of this run's test fold that it was never
    fitted, early-stopped or calibrated on (:func:`_unseen_by_champion`); scored on its own
    training rows it would look better than it is and keep the alias against a better model.
    A champion that cannot be loaded or cannot score these columns cannot be served by this
    code either, so it is replaced; one whose files cannot be fetched (:class:`ModelFetchError`)
    may be fine where it is, so it stays. When no fair comparison is possible (a champion trained
    with columns this run left out, whose unseen rows are unknown, or too few unseen leads)
    the champion keeps the alias and a warning says so and how to promote by hand.

    ``leads`` are the test rows' lead ids (rows as in ``y_test``): the minimums count
    distinct leads, since event data holds a lead at several as-of dates. Without them, or
    when they do not match the rows, every row counts as a lead.
    """
    from mlflow.exceptions import MlflowException

    y = np.asarray(y_test)
    ids = None if leads is None else np.asarray(leads, dtype=object).ravel()
    if ids is not None and len(ids) != len(y):
        logger.warning(
            "%s lead ids for %s test rows: the champion check counts rows as leads",
            f"{len(ids):,}",
            f"{len(y):,}",
        )
        ids = None
    current = _current_champion(client, name)
    if current is None:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        auc = _auc_of(model, X_test, y)
        logger.info("%s version %s is the first champion (test ROC-AUC %.4f)", name, version, auc)
        return Promotion(True, "first champion")
    old = str(current.version)
    if old == version:
        return Promotion(True)
    if always:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        _retire(client, name, old, version)
        logger.info("%s version %s replaces champion version %s, as asked", name, version, old)
        return Promotion(True, f"promoted as asked (mlflow.champion: always), over version {old}")
    try:
        champion = _load_registered(client, name, old)
    except ModelFetchError as err:
        # out of reach now says nothing of the model: an unmounted share or an expired
        # token must not hand the alias to a worse model unseen
        return _decline(name, version, old, f"its files cannot be fetched ({err.problem})")
    except (LeadscoreError, MlflowException, OSError, ValueError) as err:
        return _replace_unusable(client, name, version, old, err)
    try:
        rows = _comparison_rows(client, current, champion, X_test, y, holdout, ids)
    except _Declined as why:
        return _decline(name, version, old, str(why))
    n_leads, _ = _lead_counts(y[rows], None if ids is None else ids[rows])
    total_leads, _ = _lead_counts(y, ids)
    X, y = X_test.iloc[np.flatnonzero(rows)].reset_index(drop=True), y[rows]
    try:
        champion_p = _scores_of(champion, X)
    except (LeadscoreError, OSError, ValueError) as err:
        return _replace_unusable(client, name, version, old, err)
    new_p = _scores_of(model, X)
    champion_auc, new_auc = _roc_auc(y, champion_p), _roc_auc(y, new_p)
    gain = _gain_interval(y, new_p, champion_p, None if ids is None else ids[rows])
    where = _rows_phrase(len(y), len(rows), n_leads, total_leads)
    better = _compare(name, version, old, champion_auc, new_auc, gain, where)
    if better:
        client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
        _retire(client, name, old, version)
    note = f"compared on {where} unseen by version {old}"
    return Promotion(better, note, champion_auc, new_auc, len(y), n_leads, gain)


def _current_champion(client: Any, name: str) -> Any | None:
    """The model version holding the champion alias, or ``None`` (no model, no alias)."""
    from mlflow.exceptions import MlflowException

    try:
        return client.get_model_version_by_alias(name, CHAMPION_ALIAS)
    except MlflowException:
        return None


def _auc_of(model: LeadScoringModel, X: pd.DataFrame, y: np.ndarray) -> float:
    """ROC-AUC of ``model`` on ``X``, its columns aligned as the served pyfunc aligns them."""
    return _roc_auc(y, _scores_of(model, X))


def _scores_of(model: LeadScoringModel, X: pd.DataFrame) -> np.ndarray:
    """``model``'s probabilities for ``X``, its columns aligned as the served pyfunc aligns
    them."""
    from leadscore.pyfunc import align_features

    return np.asarray(model.predict_proba(align_features(model, X), warn_unseen=False))


#: Paired bootstrap resamples behind a champion decision (its interval moves by about 0.001
#: between seeds at this count, against gains of 0.01 that decide).
CHAMPION_RESAMPLES = 400


def _gain_interval(
    y: np.ndarray, new: np.ndarray, champion: np.ndarray, leads: np.ndarray | None
) -> tuple[float, float] | None:
    """The 95% paired bootstrap interval of ``new``'s ROC-AUC minus ``champion``'s on the
    same rows, resampling whole leads (event data holds a lead at several dates); ``None``
    when the rows hold one class only."""
    from leadscore.metrics import bootstrap_intervals

    if len(np.unique(y)) < 2:
        return None
    found = bootstrap_intervals(
        y,
        {"model": new, "champion": champion},
        resamples=CHAMPION_RESAMPLES,
        groups=leads,
    )
    low, high = found["roc_auc_gain"]["champion"]
    if not (math.isfinite(low) and math.isfinite(high)):
        return None
    return float(low), float(high)


def _comparison_rows(
    client: Any,
    current: Any,
    champion: LeadScoringModel,
    X_test: pd.DataFrame,
    y: np.ndarray,
    holdout: HoldoutRecord | None,
    leads: np.ndarray | None = None,
) -> np.ndarray:
    """Mask over this run's test rows on which the champion and the new model are compared:
    the rows neither was trained or calibrated on, if they hold enough leads (``leads``: the
    rows' lead ids, see :func:`_check_enough_leads`). Raises :class:`_Declined`."""
    lacking = [f.name for f in champion.features if f.name not in X_test.columns]
    if lacking:
        # blank columns would score the champion below itself and promote a worse model
        raise _Declined(
            f"version {current.version} needs {len(lacking)} column(s) this run's test rows "
            f"lack ({', '.join(lacking[:5])})"
        )
    if holdout is not None and len(holdout.test_rows) != len(y):
        holdout = None  # a record of another fold than these rows: they are not known
    logged = _logged_holdout(client, getattr(current, "run_id", None))
    rows = _unseen_by_champion(holdout, logged, str(current.version))
    total, _ = _lead_counts(y, leads)
    _check_enough_leads(y[rows], total, None if leads is None else leads[rows])
    return rows


def _rows_phrase(
    n: int, total: int, leads: int | None = None, total_leads: int | None = None
) -> str:
    """``all 1,848 test rows`` or ``462 of this run's 1,848 test rows``, with the leads they
    hold when rows repeat leads (event data): ``all 600 test rows (200 leads)``."""
    if n == total:
        phrase = f"all {total:,} test rows"
        if leads is not None and leads != n:
            phrase += f" ({leads:,} leads)"
        return phrase
    phrase = f"{n:,} of this run's {total:,} test rows"
    if leads is not None and total_leads is not None and (leads, total_leads) != (n, total):
        phrase += f" ({leads:,} of its {total_leads:,} leads)"
    return phrase


def _compare(
    name: str,
    version: str,
    champion_version: str,
    champion_auc: float,
    new_auc: float,
    gain: tuple[float, float] | None,
    where: str,
) -> bool:
    """Whether the new model beats the champion on the same rows (``where`` says which),
    logged either way: its ROC-AUC is higher and the paired interval of the gain (``gain``)
    lies above 0. A gain whose interval holds 0 is a tie, as the README reads intervals
    everywhere else, and a tie keeps the champion: a retrain that only drew another seed
    (+0.0008 on X Education) must not move the alias, nor pick the champion on the test
    fold's noise (whose figure would then overstate it)."""
    if not math.isfinite(new_auc):
        better = False
    elif not math.isfinite(champion_auc):
        better = True
    else:
        better = new_auc > champion_auc and (gain is None or gain[0] > 0)
    by = f"{new_auc - champion_auc:+.4f}"
    if gain is not None:
        by += f" (95% interval {gain[0]:+.4f} to {gain[1]:+.4f})"
    if better:
        logger.info(
            "%s version %s is the new champion: ROC-AUC %.4f beats version %s's %.4f by %s "
            "on %s, which neither model was trained or calibrated on",
            name,
            version,
            new_auc,
            champion_version,
            champion_auc,
            by,
            where,
        )
    else:
        logger.info(
            "%s version %s stays champion: ROC-AUC %.4f against version %s's %.4f, a "
            "difference of %s on %s, which neither model was trained or calibrated on%s",
            name,
            champion_version,
            champion_auc,
            version,
            new_auc,
            by,
            where,
            "" if new_auc <= champion_auc else ": a gain whose interval holds 0 is a tie",
        )
    return better


def _decline(name: str, version: str, champion_version: str, why: str) -> Promotion:
    """Keep the champion without a comparison, with a warning that says how to promote."""
    logger.warning(
        "%s version %s is not compared with champion version %s: %s. The champion stays; "
        "if version %s should serve, move the alias by hand (mlflow ui, or "
        "MlflowClient().set_registered_model_alias(%r, %r, %r)), or train with --promote",
        name,
        version,
        champion_version,
        why,
        version,
        name,
        CHAMPION_ALIAS,
        version,
    )
    return Promotion(False, f"not compared: {why}")


def _replace_unusable(
    client: Any, name: str, version: str, champion_version: str, err: Exception
) -> Promotion:
    """Give the alias to ``version``: a champion this code cannot load or score cannot serve."""
    logger.warning(
        "champion %s/%s cannot score this test fold (%s); replacing it",
        name,
        champion_version,
        err,
    )
    client.set_registered_model_alias(name, CHAMPION_ALIAS, version)
    _retire(client, name, champion_version, version)
    return Promotion(True, f"replaced version {champion_version}, which cannot score: {err}")


def _retire(client: Any, name: str, old: str, new: str) -> None:
    """Mark the run of the champion that lost the alias: its ``champion`` tag reads
    ``false`` and ``champion_replaced_by`` names the version that took over, so that after
    a series of trainings ``tags.champion = 'true'`` finds the run ``train`` last promoted,
    not every past one.

    The tags record what ``train`` decided when it ran; the registry's ``champion`` alias is
    what scoring reads, and the source of truth: an alias moved by hand (``mlflow ui``,
    ``set_registered_model_alias``) leaves these tags as they were."""
    from mlflow.exceptions import MlflowException

    try:
        run_id = client.get_model_version(name, old).run_id
        if run_id:
            client.set_tag(run_id, "champion", "false")
            client.set_tag(run_id, "champion_replaced_by", f"{name}/{new}")
    except MlflowException as err:  # a version registered from elsewhere, or deleted run
        logger.debug("could not mark the run of %s/%s as replaced: %s", name, old, err)


# --------------------------------------------------------------------------- loading


def load_model(uri: str | os.PathLike[str], *, tracking_uri: str | None = None) -> LeadScoringModel:
    """Load a :class:`~leadscore.model.LeadScoringModel` from MLflow or a folder.

    ``uri`` is one of ``models:/NAME@ALIAS`` (e.g. ``models:/leadscore@champion``),
    ``models:/NAME/VERSION``, ``runs:/RUN_ID/model``, a logged MLflow model folder, or a
    folder written by ``LeadScoringModel.save``. Registry URIs are looked up in
    ``tracking_uri`` (with the usual fallbacks, see :func:`resolve_tracking_uri`).

    Raises
    ------
    ModelError
        When the name, version, alias, run or folder does not exist.
    """
    return load_model_version(uri, tracking_uri=tracking_uri)[0]


def load_model_version(
    uri: str | os.PathLike[str], *, tracking_uri: str | None = None
) -> tuple[LeadScoringModel, str | None, str | None]:
    """Like :func:`load_model`, with the registered name and version when ``uri`` names one
    (``models:/...``); ``(model, None, None)`` for runs and folders."""
    text = str(uri)
    if not re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:/", text) or text.startswith("file:"):
        path = Path(unquote(urlparse(text).path)) if text.startswith("file:") else Path(text)
        return _load_folder(path, text), None, None
    from mlflow import MlflowClient

    resolved = resolve_tracking_uri(tracking_uri)
    db = sqlite_file(resolved)
    if db is not None and not db.is_file():
        # opening it would create an empty store and report "model not found" instead
        raise ModelError(
            f"no MLflow store at {db} (tracking URI {shown_url(resolved)}) to load {text} from",
            "Train a model first with `leadscore train`, or point --tracking-uri or "
            "MLFLOW_TRACKING_URI at the store that holds it.",
        )
    # out of reach, MLflow retries for minutes and ends in a traceback: one try, one line
    check_tracking_uri(resolved, action="load models from")
    # runs:/ URIs of MLflow 3 logged models resolve only through the fluent tracking URI
    with quiet_mlflow(), using_tracking_uri(resolved):
        client = MlflowClient(tracking_uri=resolved, registry_uri=resolved)
        if re.fullmatch(r"models:/m-[0-9a-f]+/?", text):
            # an MLflow 3 logged model (a registered version's source): no name, no version
            return _download_and_load(text, resolved, text), None, None
        if text.startswith("models:/"):
            name, version = _resolve_registered(client, text, resolved)
            return _load_registered(client, name, version), name, version
        return _download_and_load(text, resolved, text), None, None


def resolve_run(run: str, tracking_uri: str | None = None) -> str:
    """The MLflow run id of ``run``: a run id as it is; a registered model's champion for
    its name (``leadscore-crm``), or the version a ``models:/NAME@ALIAS`` or
    ``models:/NAME/VERSION`` URI names. Marketers know the model's name, not a run's hex id.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    text = run.strip()
    if re.fullmatch(r"[0-9a-f]{32}", text):
        return text
    uri = resolve_tracking_uri(tracking_uri)
    db = sqlite_file(uri)
    if db is not None and not db.is_file():
        return text  # no store: the caller's own error names it
    with quiet_mlflow(), using_tracking_uri(uri):
        client = MlflowClient(tracking_uri=uri, registry_uri=uri)
        if not text.startswith("models:/"):
            if not _versions(client, text):
                return text  # no model of that name: read as a run id
            text = f"models:/{text}@{CHAMPION_ALIAS}"
        name, version = _resolve_registered(client, text, uri)
        try:
            run_id = client.get_model_version(name, version).run_id
        except MlflowException as err:
            raise ModelError(
                f"cannot read version {version} of {name!r} ({_mlflow_reason(err)})",
                "Give the run id of a training (`mlflow ui` lists them).",
            ) from None
    logger.info("%s is version %s of %s, trained in run %s", run, version, name, run_id)
    return str(run_id)


def _resolve_registered(client: Any, uri: str, tracking_uri: str) -> tuple[str, str]:
    """(name, version) of a ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION`` URI."""
    from mlflow.exceptions import MlflowException

    body = uri[len("models:/") :].strip("/")
    where = f"in {shown_url(tracking_uri)}"
    if "@" in body:
        name, alias = body.split("@", 1)
        try:
            return name, str(client.get_model_version_by_alias(name, alias).version)
        except MlflowException as err:
            known, fix = _registry_listing(client, name)
            raise ModelError(
                f"no model {name!r} with alias {alias!r} {where} ({known}; {_mlflow_reason(err)})",
                fix,
            ) from None
    if "/" in body:
        name, version = body.rsplit("/", 1)
        if version.lower() == "latest":
            versions = _versions(client, name)
            if not versions:
                raise ModelError(
                    f"no version of model {name!r} {where}",
                    "Train one with `leadscore train` first.",
                )
            return name, str(max(versions))
        try:
            client.get_model_version(name, version)
        except MlflowException as err:
            known, fix = _registry_listing(client, name)
            raise ModelError(
                f"no version {version!r} of model {name!r} {where} ({known}; "
                f"{_mlflow_reason(err)})",
                fix,
            ) from None
        return name, version
    raise ModelError(
        f"model URI {uri!r} names no version or alias",
        f"Write models:/{body}@{CHAMPION_ALIAS} or models:/{body}/VERSION.",
    )


def _registry_listing(client: Any, name: str) -> tuple[str, str]:
    """What the registry holds under ``name``, and the fix, for the error of an unknown alias
    or version, so that both list the same: ``versions: 1, 2; aliases: champion -> 1`` and
    two URIs that load (an alias, ``champion`` first, and the newest version); for a name
    never registered, the names that are."""
    from mlflow.exceptions import MlflowException

    versions = sorted(_versions(client, name))
    if not versions:
        try:
            names = sorted(m.name for m in client.search_registered_models(max_results=50))
        except MlflowException:
            names = []
        return (
            f"registered models: {', '.join(names) or 'none'}",
            "Name one of the registered models, or train one with `leadscore train`.",
        )
    try:
        held = client.get_registered_model(name).aliases or {}
    except MlflowException:
        held = {}
    aliases = sorted(held, key=lambda a: (a != CHAMPION_ALIAS, a))
    shown = ", ".join(f"{a} -> {held[a]}" for a in aliases) or "none"
    uris = [f"models:/{name}@{a}" for a in aliases[:1]] + [f"models:/{name}/{versions[-1]}"]
    listed = f"versions: {', '.join(map(str, versions))}; aliases: {shown}"
    fix = f"Use a listed alias or version ({' or '.join(uris)}), or train one: `leadscore train`."
    return listed, fix


def _versions(client: Any, name: str) -> list[int]:
    from mlflow.exceptions import MlflowException

    try:
        found = client.search_model_versions(f"name = '{name}'")
    except MlflowException:
        return []
    return [int(v.version) for v in found]


def _mlflow_reason(err: Exception) -> str:
    message = getattr(err, "message", None) or str(err)
    return " ".join(str(message).split())[:200]


def _out_of_room(err: BaseException) -> BaseException | None:
    """The error in ``err``'s chain that says fetching a model failed for want of disk space
    (:func:`leadscore.sinks.target.is_out_of_room`), or ``None``."""
    from leadscore.sinks.target import is_out_of_room

    seen: BaseException | None = err
    while seen is not None:
        if is_out_of_room(seen):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _load_registered(client: Any, name: str, version: str) -> LeadScoringModel:
    from mlflow.exceptions import MlflowException

    try:
        location = client.get_model_version_download_uri(name, version)
    except MlflowException as err:
        raise ModelFetchError(
            f"cannot find the files of models:/{name}/{version} ({_mlflow_reason(err)})",
            "Check the registry and the artifact store it points to.",
        ) from None
    return _download_and_load(location, None, f"models:/{name}/{version}")


def _download_and_load(artifact_uri: str, tracking_uri: str | None, shown: str) -> LeadScoringModel:
    import mlflow
    from mlflow.exceptions import MlflowException

    from leadscore.sinks.target import os_error_fix, os_reason

    with tempfile.TemporaryDirectory() as tmp:
        try:
            local = mlflow.artifacts.download_artifacts(
                artifact_uri=artifact_uri, dst_path=tmp, tracking_uri=tracking_uri
            )
        except ImportError as err:
            # an artifact store MLflow reaches through an optional client (s3:// needs boto3,
            # gs:// google-cloud-storage), given as --model or behind a run or registered
            # model: the missing package is the fix, not a traceback
            package = _artifact_package(err)
            raise ModelFetchError(
                f"cannot fetch model {shown}: its artifacts live at {artifact_uri}, which "
                f"MLflow reads only with the Python package {package}, not installed",
                f"Install it in leadscore's environment (pip install {package}), or copy the "
                "model to a local folder and pass that folder as --model.",
            ) from None
        except (MlflowException, OSError) as err:
            full = _out_of_room(err)
            if full is not None:
                # MLflow lists its failed downloads first: the system's reason ends up cut off
                raise ModelFetchError(
                    f"cannot fetch model {shown} into the temporary folder {tmp}: "
                    f"{os_reason(full)}",
                    os_error_fix(full, f"in {tmp}", "set TMPDIR to a folder on another disk"),
                ) from None
            raise ModelFetchError(
                f"cannot fetch model {shown} ({_mlflow_reason(err)})",
                "Check the URI: models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model "
                "or a model folder.",
            ) from None
        except (ValueError, TypeError, KeyError, AttributeError) as err:
            # MLflow's artifact repositories fail on a URI they cannot read with whatever their
            # parsing raises (http://host/x: "not enough values to unpack"); caught around the
            # download alone, so a bug in leadscore's own code still shows its traceback
            logger.debug("fetching %s failed", artifact_uri, exc_info=True)
            reason = _mlflow_reason(err) or type(err).__name__
            raise ModelFetchError(
                f"cannot fetch model {shown}: MLflow cannot read artifacts at {artifact_uri} "
                f"({type(err).__name__}: {reason})",
                "--model takes models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model "
                "or a model folder (an s3:// or gs:// folder needs its client installed).",
            ) from None
        return _load_folder(Path(local), shown)


#: The pip package that gives MLflow the module an artifact store needs, by the missing
#: module's top-level name (MLflow imports them only when a URI of their scheme is read).
_ARTIFACT_PACKAGES = {
    "boto3": "boto3",
    "botocore": "boto3",
    "google": "google-cloud-storage",
    "azure": "azure-storage-blob",
    "pyarrow": "pyarrow",
    "paramiko": "pysftp",
    "pysftp": "pysftp",
}


def _artifact_package(err: ImportError) -> str:
    """The pip package to install for the module whose import failed in ``err``."""
    top = (err.name or "").split(".")[0]
    return _ARTIFACT_PACKAGES.get(top, top or "the artifact store's client")


def _load_folder(path: Path, shown: str) -> LeadScoringModel:
    """A LeadScoringModel from its own folder or from a logged pyfunc folder holding one."""
    from leadscore.model import LeadScoringModel

    # model.json alone: it names its booster, which a save stopped after switching models
    # (LeadScoringModel.save) leaves under its staged name before booster.txt is written
    if (path / _MODEL_FILES[1]).is_file():
        return LeadScoringModel.load(path)
    mlmodel = path / "MLmodel"
    if mlmodel.is_file():
        from leadscore.pyfunc import MODEL_DIR_ARTIFACT

        try:
            meta: Any = yaml.safe_load(mlmodel.read_text(encoding="utf-8"))
        except (yaml.YAMLError, UnicodeDecodeError, RecursionError) as err:
            reason = " ".join(str(err).split())[:200] or type(err).__name__
            raise ModelError(
                f"{shown} holds an MLmodel file that is not readable YAML ({reason})",
                "Restore the logged model as MLflow wrote it, or log it again with "
                "`leadscore train`.",
            ) from None
        # each level may be anything a hand-edited file holds: only mappings are walked
        for key in ("flavors", "python_function", "artifacts", MODEL_DIR_ARTIFACT, "path"):
            meta = meta.get(key) if isinstance(meta, dict) else None
        if isinstance(meta, str) and meta:
            # MLflow keeps a logged model's artifacts inside its folder: a path that leads out
            # of it (absolute, ``..`` or a link) would load whatever model lies there
            root = path.resolve()
            model_dir: Path | None
            try:
                model_dir = (root / meta).resolve()
            except (OSError, ValueError):  # a link loop, a NUL character
                model_dir = None
            if model_dir is None or not model_dir.is_relative_to(root):
                raise ModelError(
                    f"{shown} is an MLflow model whose model_dir artifact {meta[:200]!r} is "
                    "not a path inside its folder",
                    "Point to a model logged by `leadscore train`, as MLflow wrote it.",
                )
            if (model_dir / _MODEL_FILES[1]).is_file():
                return LeadScoringModel.load(model_dir)
        raise ModelError(
            f"{shown} is an MLflow model but not a leadscore model (no model_dir artifact)",
            "Point to a model logged by `leadscore train`.",
        )
    raise ModelError(
        f"no leadscore model at {shown} (expected MLmodel or {' and '.join(_MODEL_FILES)})",
        "Give models:/NAME@ALIAS, models:/NAME/VERSION, runs:/RUN_ID/model or a folder "
        "written by `leadscore train`.",
    )

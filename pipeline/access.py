"""An authenticated tracking server's refusals as one line that says what to do.

MLflow's basic-auth answers 401 to a missing or wrong login and 403 to a user without the
permission; its client raises `MlflowException` with ``UNAUTHENTICATED`` / ``PERMISSION_DENIED``
and the REST endpoint in the message. Duck-typed on ``error_code`` so that the stage wrapper can
use it without importing MLflow.
"""

from __future__ import annotations

import os
import re

LOGIN_VARS = "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD"
# REST endpoint -> what the user tried, for the 403 line.
_ACTIONS = {
    "runs/create": ("create runs in this experiment", "experiment"),
    "runs/log-batch": ("log to this run", "experiment"),
    "runs/update": ("update this run", "experiment"),
    "model-versions/create": ("register a model version", "registered model"),
    "registered-models/create": ("create a registered model", "registered model"),
    "registered-models/alias": ("move or read an alias (@champion)", "registered model"),
    "model-versions/update": ("change a model version", "registered model"),
}


def _endpoint(message: str) -> str | None:
    found = re.search(r"/api/2\.0/mlflow/([\w/-]+)", message)
    return found[1] if found else None


def access_message(exc: BaseException) -> str | None:
    """The ``error:`` line (without the prefix) for a 401 or 403 from the tracking server, else
    None. Never includes the password; names the variables and the user."""
    code = getattr(exc, "error_code", None)
    uri = os.environ.get("MLFLOW_TRACKING_URI", "the tracking server")
    user = os.environ.get("MLFLOW_TRACKING_USERNAME")
    if code == "UNAUTHENTICATED":
        if user is None or not os.environ.get("MLFLOW_TRACKING_PASSWORD"):
            why = f"no login given: set {LOGIN_VARS} to your account's"
        else:
            why = f"user {user!r} or its password is wrong: check {LOGIN_VARS}"
        return f"MLflow at {uri} refused the request (HTTP 401, not authenticated): {why}"
    if code == "PERMISSION_DENIED":
        endpoint = _endpoint(str(exc)) or "?"
        action, resource = _ACTIONS.get(endpoint, (f"call {endpoint}", "experiment or model"))
        return (
            f"MLflow at {uri}: user {user!r} may not {action} (HTTP 403, permission denied on "
            f"/{endpoint}): ask the server's admin for EDIT on the {resource}, or run this with "
            f"an account that has it (the CI account; docs/team.md)"
        )
    return None

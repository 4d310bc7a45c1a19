"""The stack's MLflow accounts, made by the admin through basic-auth's API.

- ``ci``: EDIT on the project's experiment (create runs, log to them) and on its registered model
  (new versions, move ``candidate`` / ``champion``);
- ``reader``: the server's default READ only: compare runs in the UI, load ``@champion``.

The admin creates the experiment and the registered model up front: otherwise whoever registers
first would own them (basic-auth gives MANAGE to a resource's creator), a reader included.
"""

from __future__ import annotations

import contextlib
import warnings
from contextlib import AbstractContextManager

from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

with warnings.catch_warnings():  # the server package's import warns about Starlette's WSGI
    warnings.simplefilter("ignore")
    from mlflow.server.auth.client import AuthServiceClient

from pipeline.tracking.experiment import EXPERIMENT_KIND
from pipeline.tracking.http import client_env

CI_PERMISSION = "EDIT"  # can_update: runs, versions and aliases; not delete or re-grant


def _as_admin(password: str) -> AbstractContextManager[None]:
    """MLflow's clients read the login from the environment: the admin's for the block."""
    return client_env({"MLFLOW_TRACKING_USERNAME": "admin", "MLFLOW_TRACKING_PASSWORD": password})


def ensure_users(url: str, admin_password: str, passwords: dict[str, str]) -> None:
    """Create each user with its password, or reset the password of one that exists."""
    with _as_admin(admin_password):
        auth = AuthServiceClient(url)
        for user, password in passwords.items():
            try:
                auth.create_user(user, password)
            except MlflowException as e:
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
                auth.update_user_password(user, password)


def provision(url: str, admin_password: str, experiment: str, model: str) -> str:
    """Create ``experiment`` and registered ``model`` (if missing) and give ``ci`` EDIT on both;
    return the experiment id."""
    with _as_admin(admin_password):
        client, auth = MlflowClient(url), AuthServiceClient(url)
        exp = client.get_experiment_by_name(experiment)
        kind, value = EXPERIMENT_KIND
        exp_id = (
            exp.experiment_id
            if exp is not None
            else client.create_experiment(experiment, tags={kind: value})
        )
        with contextlib.suppress(MlflowException):  # RESOURCE_ALREADY_EXISTS
            client.create_registered_model(model)
        for resource, rid in (("experiment", exp_id), ("registered_model", model)):
            try:
                auth.grant_user_permission("ci", resource, rid, CI_PERMISSION)
            except MlflowException as e:  # granted by an earlier `up`
                if e.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
    return exp_id

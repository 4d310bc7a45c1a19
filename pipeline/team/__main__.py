"""`python -m pipeline.team up|down|env|backup|upgrade|restore`: the team stack on this machine
(docs/team.md).

``up`` starts PostgreSQL, SeaweedFS S3 and the authenticated MLflow server under FCRN_TEAM_DIR
(default ``.team``), makes the ``ci`` and ``reader`` accounts, the project's experiment and
registered model, and prints the URIs and how a client logs in. The admin's password comes from
MLFLOW_AUTH_ADMIN_PASSWORD; the generated ones stay in the folder's 0600 files, never on screen.
``backup`` dumps MLflow's databases; ``upgrade`` backs up and migrates them to the installed
MLflow's schema; ``restore FOLDER`` puts a backup back (pipeline.team.upgrade).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import yaml

from pipeline.team.services import StackError
from pipeline.team.stack import ACCOUNTS, Stack, parse_ports

DEFAULT_DIR = ".team"


def project_names(params: Path = Path("params.yaml")) -> tuple[str, str]:
    """The experiment and registered model that params.yaml names (the defaults without it)."""
    cfg = (yaml.safe_load(params.read_text()) or {}).get("mlflow", {}) if params.is_file() else {}
    return cfg.get("experiment", "fcrn-nyu"), cfg.get("registered_model", "fcrn-nyu")


def describe(stack: Stack, exp_id: str | None) -> str:
    """What `up` prints: where everything is and how each kind of client logs in."""
    ui = f"{stack.mlflow_url}/#/experiments/{exp_id}?workflowType=machine_learning"
    lines = [
        f"MLflow (basic-auth): {stack.mlflow_url}" + (f"  runs: {ui}" if exp_id else ""),
        f"S3 (SeaweedFS):      {stack.s3_url}  buckets: dvc (DVC remote), mlflow (artifacts)",
        f"PostgreSQL:          127.0.0.1:{stack.ports['postgres']} (databases mlflow, mlflow_auth)",
        f"Data and logs:       {stack.root}",
        "",
        "A client's environment (MLflow login and S3 keys), one file per account:",
    ]
    for account in ACCOUNTS:
        role = "runs, versions, aliases" if account == "ci" else "read only"
        lines.append(f"  source {stack.env_file(account)}   # {account}: {role}")
    lines += [
        "  (the admin logs in as `admin` with MLFLOW_AUTH_ADMIN_PASSWORD)",
        "",
        "The DVC remote (credentials come from the AWS_* variables in the file above):",
        f"  dvc remote add -d team {stack.dvc_remote}",
        f"  dvc remote modify team endpointurl {stack.s3_url}",
        "Stop it with `make team-down` (the data stays in the folder).",
    ]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m pipeline.team", description=__doc__)
    parser.add_argument("command", choices=["up", "down", "env", "backup", "upgrade", "restore"])
    parser.add_argument("backup", nargs="?", type=Path, help="for `restore`: a backup folder")
    parser.add_argument("--account", choices=ACCOUNTS, default="reader", help="for `env`")
    args = parser.parse_args(argv)
    if (args.command == "restore") != (args.backup is not None):
        parser.error("`restore` and only `restore` takes a backup folder")
    root = Path(os.environ.get("FCRN_TEAM_DIR") or DEFAULT_DIR)
    try:
        stack = Stack(root, parse_ports(os.environ.get("FCRN_TEAM_PORTS")))
        print(run(stack, args))
    except StackError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)


def run(stack: Stack, args: argparse.Namespace) -> str:
    """Carry out one command; what it prints."""
    from pipeline.team import upgrade

    if args.command == "down":
        stack.down()
        return f"team stack in {stack.root} stopped"
    if args.command == "env":
        return str(stack.env_file(args.account))
    if args.command == "backup":
        return f"backed up to {upgrade.backup(stack)}"
    if args.command == "upgrade":
        return upgrade.upgrade(stack)
    if args.command == "restore":
        return upgrade.restore(stack, args.backup.resolve())
    return describe(stack, up(stack, os.environ.get("MLFLOW_AUTH_ADMIN_PASSWORD", "")))


def up(stack: Stack, admin_password: str) -> str:
    """Start the stack and set up accounts; return the project's experiment id."""
    from pipeline.team.accounts import ensure_users, provision

    stack.up(admin_password)
    ensure_users(stack.mlflow_url, admin_password, stack.secrets["mlflow"])
    return provision(stack.mlflow_url, admin_password, *project_names())


if __name__ == "__main__":
    main()

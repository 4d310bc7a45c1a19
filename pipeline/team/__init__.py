"""A team's MLflow + DVC services on one machine: PostgreSQL, a SeaweedFS S3 store and an
authenticated `mlflow server` (`python -m pipeline.team up`; docs/team.md)."""

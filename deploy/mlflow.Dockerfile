# MLflow's server image plus what the team stack needs of it: the PostgreSQL driver, boto3 for the
# S3 artifact store and Flask-WTF for `--app-name basic-auth`; the versions of requirements.lock.
FROM ghcr.io/mlflow/mlflow:v3.18.0
RUN pip install --no-cache-dir psycopg2-binary==2.9.13 boto3==1.43.117 Flask-WTF==1.3.0
USER 65534

-- MLflow's basic-auth keeps its users and permissions in a database of their own.
CREATE DATABASE mlflow_auth OWNER mlflow;

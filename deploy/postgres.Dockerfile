# A stand-in for compose.yaml's `postgres` image where no registry can be reached
# (deploy/compose.local.yaml): Debian 12's PostgreSQL 15 on the air-gapped base, started by
# deploy/postgres-entrypoint.sh, which keeps the upstream image's contract (POSTGRES_USER,
# POSTGRES_PASSWORD, POSTGRES_DB; *.sql in /docker-entrypoint-initdb.d on the first start).
ARG BASE_IMAGE=fcrn-base:bookworm
FROM ${BASE_IMAGE}
# No `main` cluster from the package: the entry point makes the one in the volume.
# hadolint ignore=DL3008
RUN mkdir -p /etc/postgresql-common \
    && echo "create_main_cluster = false" > /etc/postgresql-common/createcluster.conf \
    && apt-get update \
    && apt-get install -y --no-install-recommends postgresql-15 \
    && rm -rf /var/lib/apt/lists/* \
    && install -d -o postgres -g postgres /var/lib/postgresql/data /docker-entrypoint-initdb.d
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint
ENV PATH=/usr/lib/postgresql/15/bin:$PATH \
    PGDATA=/var/lib/postgresql/data
# The package's user; its uid is whatever Debian gave it, and the volume's files are its.
# hadolint ignore=DL3066
USER postgres
ENTRYPOINT ["postgres-entrypoint"]

# Test-only image tagged as the compose files pin postgres: Debian's PostgreSQL package on the
# debootstrap base, with an entrypoint that honours the official image's POSTGRES_USER, POSTGRES_DB,
# POSTGRES_PASSWORD and PGDATA, so the compose service runs unchanged (pg_isready included).
ARG BASE_IMAGE
FROM ${BASE_IMAGE}
RUN apt-get update -qq \
    && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends postgresql \
    && rm -rf /var/lib/apt/lists/* /var/lib/postgresql/* /etc/postgresql/*
# initdb, postgres and pg_isready of the one installed major version on PATH; the named volume takes
# the data directory's owner on first use. The socket directory has the official image's mode 3777: a tmpfs
# mounted there (compose) gets the directory's mode from the runtime, and stays writable for postgres.
RUN ln -s /usr/lib/postgresql/*/bin/* /usr/local/bin/ \
    && mkdir -p /var/lib/postgresql/data /var/run/postgresql \
    && chown postgres:postgres /var/lib/postgresql/data /var/run/postgresql \
    && chmod 700 /var/lib/postgresql/data \
    && chmod 3777 /var/run/postgresql
COPY postgres-entrypoint.sh /usr/local/bin/postgres-entrypoint.sh
ENV PGDATA=/var/lib/postgresql/data
USER postgres
STOPSIGNAL SIGINT
ENTRYPOINT ["/usr/local/bin/postgres-entrypoint.sh"]
CMD []

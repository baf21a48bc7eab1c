# syntax=docker/dockerfile:1
# Build stage: compile TypeScript with the dev dependencies.
FROM node:24-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
RUN npm run build && npm prune --omit=dev

# Runtime stage: compiled code and production dependencies only, as the unprivileged `node` user.
FROM node:24-bookworm-slim
# MALLOC_ARENA_MAX=2: one glibc arena for the main thread and one for all others instead of one
# per thread (up to 8 per core), each keeping what was freed: ~12-15 MB less RSS
# (docs/operations.md, Memory).
ENV NODE_ENV=production \
    ONWARD_CONFIG=/etc/onward/onward.yaml \
    MALLOC_ARENA_MAX=2
RUN apt-get update && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/* \
    && mkdir -p /var/lib/onward /etc/onward && chown node:node /var/lib/onward
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY package.json ./
COPY bin ./bin
COPY web ./web
COPY config/docker.yaml /etc/onward/onward.yaml
USER node
VOLUME ["/var/lib/onward"]
EXPOSE 2525 9025
STOPSIGNAL SIGTERM
HEALTHCHECK --interval=30s --timeout=3s --start-period=10s \
  CMD ["node", "-e", "fetch('http://127.0.0.1:9025/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"]
ENTRYPOINT ["/usr/bin/tini", "--", "node", "/app/bin/onward"]
CMD ["serve"]

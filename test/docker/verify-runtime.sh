#!/usr/bin/env bash
# Replays the Dockerfile by hand, without a Docker engine (not part of `npm test`):
#   build stage:   npm ci, npm run build, npm prune --omit=dev  on a copy of the build context
#   runtime stage: node_modules + dist + package.json + bin, config/docker.yaml as the config,
#                  ONWARD_CONFIG, NODE_ENV and MALLOC_ARENA_MAX as in the image, `onward serve` as uid 1000
#                  (the image's `node` user) when run as root
# then checks /healthz (with the image's HEALTHCHECK command), /readyz, one message through
# SMTP into the file target on the "volume", and a clean exit 0 on SIGTERM (STOPSIGNAL).
# Paths under /var/lib/onward are moved into a temp dir, ports 2525/9025 to free ones, and
# 0.0.0.0 to 127.0.0.1. Everything it starts is stopped by PID; the temp dir is removed
# unless KEEP=1.
#
# Usage: test/docker/verify-runtime.sh        (from anywhere; needs network for npm ci)
set -euo pipefail

REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
WORK="$(mktemp -d /tmp/onward-docker-verify.XXXXXX)"
SERVE_PID=""
cleanup() {
  if [[ -n "$SERVE_PID" ]] && kill -0 "$SERVE_PID" 2>/dev/null; then kill -KILL "$SERVE_PID" 2>/dev/null || true; fi
  if [[ "${KEEP:-0}" != 1 ]]; then rm -rf "$WORK"; else echo "kept $WORK"; fi
}
trap cleanup EXIT

step() { printf '\n== %s\n' "$*"; }
fail() { printf 'FAIL: %s\n' "$*" >&2; exit 1; }

step "environment"
echo "node $(node --version) (the image uses node:24-bookworm-slim), npm $(npm --version)"
echo "work dir: $WORK"
[[ -f "$REPO/.dockerignore" ]] && echo ".dockerignore: present" || echo "note: no .dockerignore: the build context sent to the daemon includes node_modules/, dist/, data/ and .git/"

# ---------------------------------------------------------------------------------------
step "build stage: COPY package.json package-lock.json .npmrc; npm ci --no-audit --no-fund"
BUILD="$WORK/build"
mkdir -p "$BUILD"
# What the Dockerfile COPYs, from the working tree (a Docker build context is the working tree).
for f in package.json package-lock.json .npmrc; do
  [[ -f "$REPO/$f" ]] || fail "Dockerfile COPYs $f but it does not exist"
  cp "$REPO/$f" "$BUILD/"
done
(cd "$BUILD" && npm ci --no-audit --no-fund 2>&1 | tail -n 3)

step "build stage: COPY tsconfig.json tsconfig.build.json; COPY src; npm run build && npm prune --omit=dev"
cp "$REPO/tsconfig.json" "$REPO/tsconfig.build.json" "$BUILD/"
cp -r "$REPO/src" "$BUILD/src"
UNTRACKED="$(cd "$REPO" && git ls-files --others --exclude-standard -- src | head -n 20)"
[[ -z "$UNTRACKED" ]] || printf 'note: untracked files under src/ (in the build context, not in git):\n%s\n' "$UNTRACKED"
(cd "$BUILD" && npm run build 2>&1 | tail -n 3 && npm prune --omit=dev 2>&1 | tail -n 3)
[[ -f "$BUILD/dist/cli/index.js" ]] || fail "npm run build did not produce dist/cli/index.js"
for dev in typescript jest ts-jest eslint @types/node; do
  [[ ! -e "$BUILD/node_modules/$dev" ]] || fail "dev dependency $dev survived npm prune --omit=dev"
done
echo "dev dependencies pruned; node_modules: $(du -sh "$BUILD/node_modules" | cut -f1), dist: $(du -sh "$BUILD/dist" | cut -f1)"

# ---------------------------------------------------------------------------------------
step "runtime stage: node_modules, dist, package.json, bin, config/docker.yaml -> /etc/onward/onward.yaml"
APP="$WORK/app"          # /app
ETC="$WORK/etc/onward"   # /etc/onward
VAR="$WORK/var/lib/onward"  # the volume
mkdir -p "$APP" "$ETC" "$VAR"
cp -r "$BUILD/node_modules" "$BUILD/dist" "$APP/"
cp "$REPO/package.json" "$APP/"
cp -r "$REPO/bin" "$APP/bin"
free_port() { node -e "const s=require('net').createServer();s.listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
SMTP_PORT="$(free_port)"
ADMIN_PORT="$(free_port)"
sed -e "s#/var/lib/onward#$VAR#g" \
    -e "s#port: 2525#port: $SMTP_PORT#" \
    -e "s#port: 9025#port: $ADMIN_PORT#" \
    -e "s#host: 0.0.0.0#host: 127.0.0.1#" \
    "$REPO/config/docker.yaml" > "$ETC/onward.yaml"
echo "config ($ETC/onward.yaml):"
grep -v '^\s*#' "$ETC/onward.yaml" | sed 's/^/  /'

RUN_AS=()
if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
  # USER node (uid 1000) with `chown node:node /var/lib/onward`; /app and /etc/onward stay root-owned, read-only to it.
  chmod 755 "$WORK" "$WORK/etc" "$WORK/var" "$WORK/var/lib"
  chmod -R a+rX "$APP" "$ETC"
  chown 1000:1000 "$VAR"
  RUN_AS=(setpriv --reuid=1000 --regid=1000 --clear-groups)
  echo "running as uid 1000 (the image's node user); the volume is owned by it, /app and /etc/onward by root"
fi

step "runtime: ENTRYPOINT node /app/bin/onward, CMD serve (ONWARD_CONFIG, NODE_ENV=production, MALLOC_ARENA_MAX=2)"
LOG="$WORK/serve.log"
(cd "$APP" && exec env NODE_ENV=production MALLOC_ARENA_MAX=2 ONWARD_CONFIG="$ETC/onward.yaml" "${RUN_AS[@]}" node "$APP/bin/onward" serve) >"$LOG" 2>&1 &
SERVE_PID=$!
echo "serve pid $SERVE_PID"

HEALTH="fetch('http://127.0.0.1:$ADMIN_PORT/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
ok=""
for _ in $(seq 1 100); do
  if node -e "$HEALTH"; then ok=1; break; fi
  kill -0 "$SERVE_PID" 2>/dev/null || { cat "$LOG"; fail "serve exited during start"; }
  sleep 0.1
done
[[ -n "$ok" ]] || { cat "$LOG"; fail "/healthz did not answer 2xx within 10 s"; }
echo "HEALTHCHECK command (node -e fetch(.../healthz)): exit 0"
echo "GET /healthz -> $(node -e "fetch('http://127.0.0.1:$ADMIN_PORT/healthz').then(async r=>console.log(r.status, (await r.text()).trim()))")"
echo "GET /readyz  -> $(node -e "fetch('http://127.0.0.1:$ADMIN_PORT/readyz').then(async r=>console.log(r.status, (await r.text()).trim()))")"

step "one message through SMTP into the file target on the volume"
(cd "$APP" && env ONWARD_CONFIG="$ETC/onward.yaml" "${RUN_AS[@]}" node "$APP/bin/onward" send --to someone@example.org --subject "docker verify") 2>&1 | sed 's/^/  /'
delivered=""
for _ in $(seq 1 50); do
  if compgen -G "$VAR/outbox/*.eml" >/dev/null; then delivered=1; break; fi
  sleep 0.1
done
[[ -n "$delivered" ]] || { cat "$LOG"; fail "no .eml in $VAR/outbox"; }
ls -ln "$VAR" "$VAR/outbox" | sed 's/^/  /'

step "STOPSIGNAL SIGTERM: graceful exit"
kill -TERM "$SERVE_PID"
set +e
wait "$SERVE_PID"
code=$?
set -e
SERVE_PID=""
echo "exit code $code"
echo "serve log:"
sed 's/^/  /' "$LOG"
[[ "$code" == 0 ]] || fail "serve exited $code on SIGTERM"
if grep -qv '^{' "$LOG"; then echo "note: non-JSON lines in the log (above)"; fi

step "hadolint"
if command -v hadolint >/dev/null; then
  hadolint "$REPO/Dockerfile" && echo "hadolint: no findings"
else
  echo "hadolint is not installed; apt-cache policy hadolint:"
  (apt-cache policy hadolint 2>&1 || true) | sed 's/^/  /'
  [[ -n "$(apt-cache policy hadolint 2>/dev/null)" ]] || echo "  (no candidate: Debian does not package hadolint; its release binary from GitHub would be needed)"
fi

printf '\nOK: the Dockerfile runtime commands work outside Docker (build, prune, serve as uid 1000, /healthz, delivery, SIGTERM exit 0)\n'

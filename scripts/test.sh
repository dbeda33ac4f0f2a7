#!/usr/bin/env bash
# The one command that runs every Tidewire test, on a fresh Debian 12 machine
# (root, Rust toolchain, Node 20 + npm, Python 3.11 + pip) or a developer's.
#
#   1. installs what the tests need and the machine lacks: Debian packages,
#      the interop suites' npm and Python packages (skipped when up to date);
#   2. cargo clippy --all-targets -- -D warnings;
#   3. cargo test --all-targets --no-fail-fast: every test binary runs even when
#      one fails, so the summary counts all that ran (tests/interop.rs runs the SDK suites in
#      tests/interop/, see tests/interop/README.md; tests/web_client.rs drives
#      the demo page in Chromium);
#   3b. npm test in web-client/ (the browser SDK's unit tests, and a check that
#      the committed web-client/dist/ is what its sources build);
#   4. prints a summary naming each failed test; exits non-zero if anything failed.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

# Debian packages the tests need. chromium: tests/browser.rs drives Debian's headless
# Chromium through playwright-core (never a downloaded browser). curl: tests/readme.rs
# runs README's and the banner's curl commands as written. redis-server (with redis-cli):
# tests/redis_broker.rs and tests/redis_nodes.rs start their own Redis processes and
# clusters on free loopback ports (the package's own service is not used).
APT_PACKAGES=(chromium curl redis-server)

JS_DIR="tests/interop/js"
BROWSER_JS_DIR="tests/browser"
# The browser SDK and demo page: typescript (build) and playwright-core (demo tests).
WEB_CLIENT_DIR="web-client"
PY_REQUIREMENTS="tests/interop/python/requirements.txt"
# The Django app tests/proxy.rs runs as the backend of the proxies.
PROXY_REQUIREMENTS="tests/proxy/requirements.txt"

log() { printf '\n==> %s\n' "$*"; }
die() { printf '\nscripts/test.sh: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null 2>&1; then
    sudo "$@"
  else
    die "need root (or sudo) to run: $*"
  fi
}

# ensure_apt_packages PKG...: install those not installed yet. `apt-get update`
# runs once, before the first install, and only if something is missing.
APT_UPDATED=0
ensure_apt_packages() {
  local missing=() pkg
  for pkg in "$@"; do
    if ! dpkg -s "$pkg" 2>/dev/null | grep -q '^Status: install ok installed'; then
      missing+=("$pkg")
    fi
  done
  if [[ ${#missing[@]} -eq 0 ]]; then
    return 0
  fi
  log "apt: installing ${missing[*]}"
  if [[ $APT_UPDATED -eq 0 ]]; then
    as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
    APT_UPDATED=1
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
}

# npm ci in tests/interop/js unless node_modules already matches the lockfile
# (a hash of package.json, package-lock.json and the Node version, kept inside
# node_modules, which npm ci replaces as a whole).
ensure_js_deps() {
  local dir="${1:-$JS_DIR}"
  command -v node >/dev/null 2>&1 || die "node not found (Node 20 + npm expected on the machine)"
  command -v npm >/dev/null 2>&1 || die "npm not found (Node 20 + npm expected on the machine)"
  local stamp="$dir/node_modules/.tidewire-deps.sha256" want
  want="$(cat "$dir/package.json" "$dir/package-lock.json" <(node --version) | sha256sum | cut -d' ' -f1)"
  if [[ -f $stamp && "$(cat "$stamp")" == "$want" ]]; then
    log "npm: $dir/node_modules up to date"
    return 0
  fi
  log "npm ci in $dir"
  # No install scripts: none of the suites' packages needs one (playwright-core's would
  # download a browser; the browser tests use Debian's chromium instead).
  (cd "$dir" && npm ci --ignore-scripts --no-audit --no-fund)
  printf '%s\n' "$want" >"$stamp"
}

# Exit 0 when every `name==version` line of the requirements file is installed
# at exactly that version; 1 otherwise (or for a line that isn't a plain pin).
python_pins_satisfied() {
  python3 - "$1" <<'PY'
import re
import sys
from importlib.metadata import PackageNotFoundError, version

ok = True
with open(sys.argv[1]) as f:
    for raw in f:
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = re.fullmatch(r"([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?==([^\s;]+)", line)
        if not m:
            ok = False
            break
        try:
            if version(m.group(1)) != m.group(3):
                ok = False
        except PackageNotFoundError:
            ok = False
sys.exit(0 if ok else 1)
PY
}

ensure_python_deps() {
  local requirements="${1:-$PY_REQUIREMENTS}"
  command -v python3 >/dev/null 2>&1 || die "python3 not found (Python 3.11 + pip expected on the machine)"
  if ! python3 -m pip --version >/dev/null 2>&1; then
    ensure_apt_packages python3-pip
  fi
  if python_pins_satisfied "$requirements"; then
    log "pip: $requirements already satisfied"
    return 0
  fi
  log "pip install -r $requirements"
  # The packages go where `python3 -m pytest` (run by tests/interop.rs) finds
  # them; on a Debian-managed python3 that needs --break-system-packages, which
  # PIP_BREAK_SYSTEM_PACKAGES gives without failing on older pips.
  PIP_BREAK_SYSTEM_PACKAGES=1 python3 -m pip install --disable-pip-version-check \
    --root-user-action=ignore -q -r "$requirements"
  python_pins_satisfied "$requirements" || die "pip install did not give the pinned versions of $requirements"
}

# --- set-up (a failure here stops everything) --------------------------------
if [[ ${#APT_PACKAGES[@]} -gt 0 ]]; then
  ensure_apt_packages "${APT_PACKAGES[@]}"
fi
ensure_js_deps "$JS_DIR"
ensure_js_deps "$BROWSER_JS_DIR"
ensure_js_deps "$WEB_CLIENT_DIR"
ensure_python_deps "$PY_REQUIREMENTS"
ensure_python_deps "$PROXY_REQUIREMENTS"

# --- checks (all run; the summary lists each) --------------------------------
STEP_NAMES=()
STEP_RESULTS=()
STEP_SECONDS=()
FAILED=0

run_step() {
  local name="$1" start rc
  shift
  log "$name"
  start=$SECONDS
  set +e
  "$@"
  rc=$?
  set -e
  STEP_NAMES+=("$name")
  STEP_SECONDS+=($((SECONDS - start)))
  if [[ $rc -eq 0 ]]; then
    STEP_RESULTS+=("ok")
  else
    STEP_RESULTS+=("FAILED (exit $rc)")
    FAILED=$((FAILED + 1))
  fi
}

CARGO_TEST_LOG="$(mktemp)"
trap 'rm -f "$CARGO_TEST_LOG"' EXIT

cargo_test() {
  cargo test --all-targets --no-fail-fast 2>&1 | tee "$CARGO_TEST_LOG"
  return "${PIPESTATUS[0]}"
}

WEB_CLIENT_LOG="$(mktemp)"
trap 'rm -f "$CARGO_TEST_LOG" "$WEB_CLIENT_LOG"' EXIT

web_client_unit() {
  (cd "$WEB_CLIENT_DIR" && npm test) 2>&1 | tee "$WEB_CLIENT_LOG"
  return "${PIPESTATUS[0]}"
}

run_step "cargo clippy --all-targets -- -D warnings" cargo clippy --all-targets -- -D warnings
run_step "cargo test --all-targets --no-fail-fast" cargo_test
run_step "web-client: npm test (SDK unit tests, dist/ fresh)" web_client_unit

# Totals over every test binary's "test result: ... N passed; N failed; N ignored".
read -r PASSED FAILED_TESTS IGNORED < <(
  sed -nE 's/^test result: [A-Za-z]+\. ([0-9]+) passed; ([0-9]+) failed; ([0-9]+) ignored.*/\1 \2 \3/p' "$CARGO_TEST_LOG" |
    awk '{p += $1; f += $2; i += $3} END {print p + 0, f + 0, i + 0}'
)
# node's test runner closes with "# pass N", "# fail N", "# skipped N".
read -r WEB_PASSED WEB_FAILED WEB_SKIPPED < <(
  awk '/^# pass /{p = $3} /^# fail /{f = $3} /^# skipped /{s = $3} END {print p + 0, f + 0, s + 0}' "$WEB_CLIENT_LOG"
)
PASSED=$((PASSED + WEB_PASSED))
FAILED_TESTS=$((FAILED_TESTS + WEB_FAILED))
IGNORED=$((IGNORED + WEB_SKIPPED))

printf '\n==> summary\n'
for i in "${!STEP_NAMES[@]}"; do
  printf '  %-46s %-18s %5ss\n' "${STEP_NAMES[$i]}" "${STEP_RESULTS[$i]}" "${STEP_SECONDS[$i]}"
done
if [[ $FAILED -eq 0 ]]; then
  echo "all steps passed"
else
  echo "$FAILED step(s) failed"
fi
# libtest prints "test NAME ... FAILED" per failed test; cargo names each failed binary
# ("error: test failed, to rerun pass `--test NAME`", or with several an indented
# "`--test NAME`" line each under "error: N targets failed:"); node's runner prints
# "not ok N - NAME".
FAILED_NAMES="$(
  {
    sed -nE 's/^test (.+) \.\.\. FAILED$/  cargo: \1/p' "$CARGO_TEST_LOG"
    sed -nE 's/^error: test failed, to rerun pass `(.+)`$/  cargo binary: \1/p' "$CARGO_TEST_LOG"
    sed -nE 's/^ +`(--(test|lib|bin|bench|example)[^`]*)`$/  cargo binary: \1/p' "$CARGO_TEST_LOG"
    sed -nE 's/^not ok [0-9]+ - (.+)$/  web-client: \1/p' "$WEB_CLIENT_LOG"
  } | sort -u
)"
if [[ -n $FAILED_NAMES ]]; then
  printf 'failed:\n%s\n' "$FAILED_NAMES"
fi
printf 'tests: %d passed, %d failed, %d skipped\n' "$PASSED" "$FAILED_TESTS" "$IGNORED"
[[ $FAILED -eq 0 ]]

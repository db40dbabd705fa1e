#!/usr/bin/env bash
# The test command of README.md, run by .ci/run as it is:
#   1. install zarrflow with its `test` extra (editable),
#   2. install Debian's chromium when no Chromium is found (tests/test_dashboard.py drives
#      a real headless browser): as root, or through `sudo -n` when that works; otherwise
#      it warns and goes on (that one test then fails and says why),
#   3. lint with ruff (src, tests, benchmarks, notebooks, scripts: everything pyproject sees),
#   4. run pytest; its exit code is ours, so "no tests collected" (5) fails too.
# Arguments are passed to pytest: `bash scripts/test.sh tests/test_readme.py -x` runs a subset.
set -euo pipefail
cd "$(dirname "$0")/.."

export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
python -m pip install -q -e ".[test]"

have_chromium() {
    local name
    for name in chromium chromium-browser google-chrome google-chrome-stable; do
        command -v "$name" >/dev/null 2>&1 && return 0
    done
    return 1
}

install_chromium() {
    local as_root=() log attempt
    if ! command -v apt-get >/dev/null 2>&1; then
        echo "warning: no apt-get here: install Chromium yourself (tests/test_dashboard.py needs it)"
        return 0
    fi
    if [ "$(id -u)" -ne 0 ]; then
        if ! command -v sudo >/dev/null 2>&1 || ! sudo -n true 2>/dev/null; then
            echo "warning: not root and no password-less sudo: run" \
                "'sudo apt-get install -y chromium' yourself (tests/test_dashboard.py needs it)"
            return 0
        fi
        as_root=(sudo -n)
    fi
    log="$(mktemp)"
    for attempt in 1 2 3; do # package mirrors are sometimes briefly unreachable
        if ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
            apt-get update -qq >"$log" 2>&1 &&
            ${as_root[@]+"${as_root[@]}"} env DEBIAN_FRONTEND=noninteractive \
                apt-get install -y -qq -o Dpkg::Use-Pty=0 chromium >>"$log" 2>&1; then
            break
        fi
        if [ "$attempt" -lt 3 ]; then sleep $((attempt * 5)); fi # back off before retrying
    done
    if ! have_chromium; then
        echo "warning: could not install chromium; tests/test_dashboard.py will fail." \
            "apt-get said:"
        tail -n 20 "$log"
    fi
    rm -f "$log"
}

have_chromium || install_chromium

python -m ruff check .
python -m pytest -q "$@"

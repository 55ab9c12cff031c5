#!/usr/bin/env bash
# The system packages the test suite needs beyond pip (Debian names), installed when missing.
#
#   curl                   the README's curl tour, run as written by tests/service/test_live.py
#   docker-compose         validates docker-compose.yml (tests/test_packaging.py); no Docker engine needed
#   chromium               the browser tests (tests/service/test_demo.py drive it with Playwright)
#   dataset-fashion-mnist  Fashion-MNIST for tests/training/test_data.py (no download needed)
#
# As root (or with password-less sudo) it installs what is missing with apt-get; otherwise it
# stops at once with one line naming what is missing and the command that installs it.
set -euo pipefail

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "make test: missing system packages: ${missing[*]}; install them with: sudo apt-get install -y ${missing[*]}" >&2
    exit 1
fi
echo "installing system packages for the tests: ${missing[*]}"
"${sudo[@]}" apt-get update -qq
DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null

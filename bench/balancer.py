"""Service replicas behind nginx on loopback, for the benchmarks and the tests of deploy/nginx.

nginx runs deploy/nginx/templates/ae.conf.template, rendered as the nginx image renders it in compose,
with one `server` line per replica (the parameters of deploy/nginx/compose-replicas.conf): as our own
process, with its own prefix, `daemon off`, its pid, logs and temporary files in a work folder, in a
process group of its own; stopped, and only it, on the way out. Replicas are `python -m service.cli`
(bench.launch), started at once and waited for together, each optionally pinned to some cores.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench import launch
from bench.common import REPO

DEPLOY_NGINX = REPO / "deploy" / "nginx"
TEMPLATE = DEPLOY_NGINX / "templates" / "ae.conf.template"
COMPOSE_REPLICAS = DEPLOY_NGINX / "compose-replicas.conf"
START_DEADLINE_S = 120.0  # replicas loading torch and their models at once on a busy 2-core machine
STOP_DEADLINE_S = 30.0

# The main configuration around the template: what differs from the nginx image's own (process, logs,
# temporary files in the prefix, one worker), nothing about the replicas.
_MAIN = """\
daemon off;
{user}worker_processes 1;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log notice;
events {{ worker_connections 1024; }}
http {{
    client_body_temp_path {prefix}/temp/body;
    proxy_temp_path {prefix}/temp/proxy;
    fastcgi_temp_path {prefix}/temp/fastcgi;
    uwsgi_temp_path {prefix}/temp/uwsgi;
    scgi_temp_path {prefix}/temp/scgi;
    include ae.conf;
}}
"""


def nginx_binary() -> str:
    """Debian's nginx (`scripts/system-deps.sh` installs it); /usr/sbin is not on every PATH."""
    found = shutil.which("nginx") or shutil.which("nginx", path="/usr/sbin:/usr/local/sbin")
    if found is None:
        raise FileNotFoundError("nginx not found: install Debian's nginx (scripts/system-deps.sh, or make test)")
    return found


def envsubst(text: str, values: dict[str, str]) -> str:
    """What the nginx image's entrypoint does to a template: ${NAME} replaced for each NAME given, nothing else."""
    return re.sub(r"\$\{(\w+)\}", lambda m: values.get(m[1], m[0]), text)


def server_parameters() -> str:
    """The parameters of compose's `server` line (`max_fails=1 fail_timeout=5s`), without its name or `resolve`."""
    for line in COMPOSE_REPLICAS.read_text().splitlines():
        words = line.split("#")[0].rstrip("; ").split()
        if words[:1] == ["server"]:
            return " ".join(word for word in words[2:] if word != "resolve")
    raise ValueError(f"no server line in {COMPOSE_REPLICAS}")


def render(conf_dir: Path, listen: str, replicas: Sequence[str], max_body_bytes: int, template: str = "") -> Path:
    """The configuration files in `conf_dir` (the prefix): nginx.conf, ae.conf and ae-replicas.conf; nginx.conf's path.

    `replicas`: host:port of each; `template`: another text than deploy/nginx's (a test's variant).
    """
    for temp in ("body", "proxy", "fastcgi", "uwsgi", "scgi"):
        (conf_dir / "temp" / temp).mkdir(parents=True, exist_ok=True)
    values = {"AE_NGINX_LISTEN": listen, "AE_MAX_BODY_BYTES": str(max_body_bytes)}
    (conf_dir / "ae.conf").write_text(envsubst(template or TEMPLATE.read_text(), values))
    parameters = server_parameters()
    (conf_dir / "ae-replicas.conf").write_text("".join(f"server {r} {parameters};\n" for r in replicas))
    main = conf_dir / "nginx.conf"
    # As root, nginx would run its workers as `nobody`, who may not enter the test's folders for its temporary
    # files: they run as the user who started it.
    user = "user root;\n" if os.geteuid() == 0 else ""
    main.write_text(_MAIN.format(prefix=conf_dir, user=user))
    return main


def check_config(conf_dir: Path) -> subprocess.CompletedProcess[str]:
    """`nginx -t` on the configuration in `conf_dir`."""
    command = [nginx_binary(), "-t", "-p", str(conf_dir), "-e", str(conf_dir / "error.log"), "-c", "nginx.conf"]
    return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)


@dataclass
class Nginx(launch.Server):
    """nginx's master process; `log_path` is its error log, the access log lies beside it."""

    @property
    def name(self) -> str:
        return "nginx"

    @property
    def prefix(self) -> Path:
        return self.log_path.parent

    @property
    def access_log_path(self) -> Path:
        return self.prefix / "access.log"

    def access_log(self, at_least: int = 0) -> list[dict[str, str]]:
        """Each request's key=value fields (request_id, upstream, upstream_status, version...) and its `status`.

        nginx writes a request's line just after its response: this waits (5 s at most) for `at_least` lines.
        """
        deadline = time.monotonic() + 5
        while True:
            lines = self.access_log_path.read_text(errors="replace").splitlines()
            if len(lines) >= at_least or time.monotonic() > deadline:
                break
            time.sleep(0.02)
        entries = []
        for line in lines:
            fields = dict(re.findall(r"(\w+)=(.*?)(?= \w+=|$)", line))
            status = re.search(r'" (\d{3}) ', line)
            entries.append(fields | {"status": status[1] if status else ""})
        return entries

    def stop(self, timeout: float = STOP_DEADLINE_S) -> int:
        """SIGQUIT (graceful: requests in flight are answered), then its whole process group is killed."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGQUIT)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout)
        with contextlib.suppress(ProcessLookupError):  # workers left behind by a master that died
            os.killpg(self.process.pid, signal.SIGKILL)
        return int(self.process.returncode)


def _accepting(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection((launch.LOOPBACK, port), timeout=1):
        return True
    return False


@contextlib.contextmanager
def nginx(workdir: Path, replicas: Sequence[str], max_body_bytes: int, template: str = "") -> Iterator[Nginx]:
    """nginx on a free loopback port in front of `replicas` (host:port each), accepting when this yields."""
    for attempt in range(3):  # another process may take the free port before nginx binds it
        prefix = workdir / f"nginx-{attempt}"
        prefix.mkdir(parents=True, exist_ok=True)
        port = launch.free_port()
        render(prefix, f"{launch.LOOPBACK}:{port}", replicas, max_body_bytes, template)
        command = [nginx_binary(), "-p", str(prefix), "-e", str(prefix / "error.log"), "-c", "nginx.conf"]
        with (prefix / "access.log").open("ab") as access:  # the access log goes to /dev/stdout
            process = subprocess.Popen(command, cwd=prefix, stdout=access, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, start_new_session=True)  # fmt: skip
        server = Nginx(process, port, prefix / "error.log")
        try:
            deadline = time.monotonic() + 30
            while not _accepting(port) and process.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            if process.poll() is None and _accepting(port):
                yield server
                return
            if "Address already in use" not in server.log():
                raise launch.ServerFailed(f"nginx did not start on port {port}:\n{server.log()[-3000:]}")
        finally:
            server.stop()
    raise launch.ServerFailed("no free port for nginx after 3 attempts")


@dataclass
class Replica(launch.Server):
    index: int = 0

    @property
    def name(self) -> str:
        return f"replica {self.index}"

    @property
    def address(self) -> str:
        return f"{launch.LOOPBACK}:{self.port}"


def _spawn_replica(index: int, store: Path, workdir: Path, env: dict[str, str], cpus: str) -> Replica:
    port = launch.free_port()
    pin = ["taskset", "--cpu-list", cpus] if cpus else []  # its share of the cores, as `cpuset` would
    log_path = workdir / f"replica-{index}.log"
    return Replica(launch.spawn(pin + launch.service_command(port, store), log_path, env, workdir), port, log_path,
                   index)  # fmt: skip


@contextlib.contextmanager
def replicas(
    workdir: Path, store: Path, count: int, settings: dict[str, str], cpus: Sequence[str] = ()
) -> Iterator[list[Replica]]:
    """`count` service processes on free loopback ports sharing `store`, all ready (/readyz 200) when this yields.

    `settings`: AE_* variables for every replica; `cpus`: a CPU list for each (taskset), or none.
    Each replica's log is workdir/replica-N.log; they are stopped on the way out (SIGTERM twice: no drain).
    """
    workdir.mkdir(parents=True, exist_ok=True)  # also their cwd: an empty folder, no stray .env file
    env = launch.environment(settings) | {"PYTHONUNBUFFERED": "1"}
    started: list[Replica] = []
    try:
        for index in range(count):
            started.append(_spawn_replica(index, store, workdir, env, cpus[index] if cpus else ""))
        deadline = time.monotonic() + START_DEADLINE_S
        for index in range(count):
            for attempt in range(3):
                try:
                    started[index].wait_ready("/readyz", deadline)
                    break
                except launch.ServerFailed as e:
                    if not e.port_taken or attempt == 2:
                        raise
                    started[index] = _spawn_replica(index, store, workdir, env, cpus[index] if cpus else "")
        yield started
    finally:
        for replica in started:  # all at once: each then stops without its drain (a second signal ends it)
            if replica.process.poll() is None:
                replica.process.send_signal(signal.SIGTERM)
        for replica in started:
            replica.stop(STOP_DEADLINE_S)

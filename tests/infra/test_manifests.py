"""CI checks for infra/: every YAML parses and is validated against its schema, offline.

- Kubernetes built-in kinds: `kubernetes-validate` (the OpenAPI schemas of Kubernetes, strict: unknown
  fields are errors), including the pod templates embedded in the KubeRay resources;
- KubeRay RayCluster / RayJob / RayCronJob: the CRDs' openAPIV3Schema vendored in infra/schemas/;
- the Ray cluster launcher config: Ray's own `ray/autoscaler/ray-schema.json`;
- the compose file: the compose-spec schema vendored by `check-jsonschema`;
- pipeline configs: `PipelineConfig.load`;
- the KubeRay operator's Helm values: key checks (the chart ships no values schema).

Plus cross-file invariants (Ray versions, token auth, secrets referenced and never inlined, the
RayJob's command exists in the CLI) and, for each validator, a broken manifest it must reject.
"""

from __future__ import annotations

import copy
import json
import re
import shlex
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import ray
import yaml

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
KUBERAY = INFRA / "kuberay"
KUBERAY_KINDS = ("RayCluster", "RayJob", "RayCronJob")
# Oldest Kubernetes the manifests target (CronJob.timeZone is GA since 1.27).
K8S_VERSION = "1.30"
# The kuberay-operator 1.7.0 chart's default featureGates (a values file must repeat all of them).
KUBERAY_CHART_GATES = [
    "RayClusterStatusConditions",
    "RayJobDeletionPolicy",
    "RayMultiHostIndexing",
    "RayServiceIncrementalUpgrade",
    "RayCronJob",
    "RayClusterMTLS",
    "RayClusterNetworkPolicy",
    "RayClusterHistoryServer",
]
COMPOSE_FILES = {"docker-compose.yaml", "docker-compose.yml", "compose.yaml", "compose.yml"}


def yaml_files() -> list[Path]:
    return sorted(p for p in INFRA.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file())


def documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc is not None]


def rel(path: Path) -> str:
    return str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path)


def kind_of(path: Path) -> str:
    """Which validator a YAML file under infra/ belongs to."""
    if path.name in COMPOSE_FILES:
        return "compose"
    if path.parent.name == "cluster-launcher":
        return "ray-launcher"
    if path.parent == INFRA / "config":
        return "pipeline-config"
    if path.name == "operator-values.yaml":
        return "helm-values"
    return "kubernetes"


def k8s_objects() -> list[tuple[str, dict]]:
    return [
        (f"{rel(path)}#{i}", doc)
        for path in yaml_files()
        if kind_of(path) == "kubernetes"
        for i, doc in enumerate(documents(path))
    ]


def one(name: str, kind: str) -> dict:
    (doc,) = [d for d in documents(KUBERAY / name) if d["kind"] == kind]
    return doc


# -- validators (each raises on an invalid document) -------------------------------------------


def errors_of(validator: jsonschema.protocols.Validator, doc: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}"
        for e in sorted(validator.iter_errors(doc), key=lambda e: list(map(str, e.absolute_path)))
    ]


@cache
def kuberay_validator(kind: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((INFRA / "schemas" / "kuberay-crds.json").read_text())
    return jsonschema.Draft202012Validator({**schema, "$ref": f"#/$defs/{kind}"})


def pod_templates(doc: dict) -> list[dict]:
    """The pod templates inside a KubeRay resource (head and worker groups, any nesting)."""
    spec = doc["spec"]
    if doc["kind"] == "RayCronJob":
        spec = spec["jobTemplate"]
    if doc["kind"] in ("RayJob", "RayCronJob"):
        extra = [spec["submitterPodTemplate"]] if "submitterPodTemplate" in spec else []
        spec = spec.get("rayClusterSpec", {})
    else:
        extra = []
    groups = [spec["headGroupSpec"], *spec.get("workerGroupSpecs", [])] if spec else []
    return [g["template"] for g in groups] + extra


def validate_kubernetes(doc: dict) -> None:
    import kubernetes_validate

    if doc.get("apiVersion") == "ray.io/v1":
        assert doc.get("kind") in KUBERAY_KINDS, f"no vendored schema for ray.io/v1 {doc.get('kind')}"
        problems = errors_of(kuberay_validator(doc["kind"]), doc)
        assert not problems, "\n".join(problems)
        # The embedded pod templates, also against this Kubernetes version's own PodTemplateSpec.
        for template in pod_templates(doc):
            kubernetes_validate.validate(
                {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": "t"}, "template": template},
                K8S_VERSION,
                strict=True,
            )
        return
    kubernetes_validate.validate(doc, K8S_VERSION, strict=True)


def ray_launcher_validator() -> jsonschema.Draft7Validator:
    schema = json.loads((Path(ray.__file__).parent / "autoscaler" / "ray-schema.json").read_text())
    return jsonschema.Draft7Validator(schema)


def compose_validator() -> jsonschema.protocols.Validator:
    text = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text())
    return jsonschema.validators.validator_for(schema)(schema)


def validate_file(path: Path, kind: str | None = None) -> None:
    kind = kind or kind_of(path)
    docs = documents(path)
    assert docs, f"{rel(path)} is empty"
    if kind == "kubernetes":
        for doc in docs:
            validate_kubernetes(doc)
    elif kind == "ray-launcher":
        problems = errors_of(ray_launcher_validator(), docs[0])
        assert not problems, "\n".join(problems)
        # What `ray up` does: fill in the provider's defaults, then Ray's own checks (schema again,
        # head_node_type among the node types, min_workers within max_workers).
        from ray.autoscaler._private.util import prepare_config, validate_config

        validate_config(prepare_config(copy.deepcopy(docs[0])))
    elif kind == "compose":
        problems = errors_of(compose_validator(), docs[0])
        assert not problems, "\n".join(problems)
    elif kind == "helm-values":  # the chart ships no values schema: key checks
        assert set(docs[0]) == {"featureGates"}
        gates = docs[0]["featureGates"]
        assert all(set(g) == {"name", "enabled"} and isinstance(g["enabled"], bool) for g in gates)
        assert [g["name"] for g in gates] == KUBERAY_CHART_GATES, "keep the chart's whole list"
        assert {"name": "RayCronJob", "enabled": True} in gates
    else:
        from pipelines.config import PipelineConfig

        PipelineConfig.load(path)


# -- every file is valid -----------------------------------------------------------------------


def test_infra_has_the_expected_files():
    names = {rel(p) for p in yaml_files()}
    for expected in (
        "infra/kuberay/raycluster.yaml",
        "infra/kuberay/rayjob.yaml",
        "infra/kuberay/raycronjob.yaml",
        "infra/kuberay/cronjob.yaml",
        "infra/kuberay/pipeline-config.yaml",
        "infra/config/cluster.yaml",
        "infra/cluster-launcher/cluster.yaml",
        "infra/mlflow/docker-compose.yaml",
    ):
        assert expected in names
    assert list((INFRA / "mlflow" / "k8s").glob("*.yaml"))


@pytest.mark.parametrize("path", yaml_files(), ids=rel)
def test_yaml_file_is_valid(path: Path):
    validate_file(path)


# KubeRay 1.7 rejects longer names (they prefix the names of the pods and jobs it creates).
MAX_NAME = {"RayCluster": 53, "RayJob": 47, "RayCronJob": 36}


def test_kubernetes_objects_are_identified():
    for where, doc in k8s_objects():
        assert {"apiVersion", "kind", "metadata"} <= set(doc), where
        meta = doc["metadata"]
        assert meta.get("name") or meta.get("generateName"), where
        length = len(meta["name"]) if meta.get("name") else len(meta["generateName"]) + 5  # + random suffix
        assert length <= MAX_NAME.get(doc["kind"], 253), where


# -- each validator rejects a broken document --------------------------------------------------


def broken_copy(tmp_path: Path, source: Path, mutate) -> Path:
    docs = documents(source)
    mutate(docs)
    target = tmp_path / source.parent.name / source.name
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(yaml.safe_dump_all(docs))
    return target


def _typo_in_head_container(docs):
    docs[0]["spec"]["headGroupSpec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"


def _gpu_limit_not_a_quantity(docs):
    worker = docs[0]["spec"]["workerGroupSpecs"][-1]["template"]["spec"]["containers"][0]
    worker["resources"]["limits"]["nvidia.com/gpu"] = "one"


def _bad_cronjob_policy(docs):
    [cron] = [d for d in docs if d["kind"] == "CronJob"]
    cron["spec"]["concurrencyPolicy"] = 3


def _deployment_typo(docs):
    [deployment] = [d for d in docs if d["kind"] == "Deployment"]
    deployment["spec"]["replica"] = 2


def _bad_rayjob_deadline(docs):
    docs[0]["spec"]["activeDeadlineSeconds"] = "soon"


@pytest.mark.parametrize(
    ("source", "mutate"),
    [
        ("kuberay/raycluster.yaml", _typo_in_head_container),
        ("kuberay/raycluster.yaml", _gpu_limit_not_a_quantity),
        ("kuberay/rayjob.yaml", _bad_rayjob_deadline),
        ("kuberay/cronjob.yaml", _bad_cronjob_policy),
        ("kuberay/raycronjob.yaml", lambda docs: docs[0]["spec"].pop("schedule")),
        ("mlflow/k8s/mlflow.yaml", _deployment_typo),
        ("cluster-launcher/cluster.yaml", lambda docs: docs[0]["docker"].update(imagee="x")),
        ("cluster-launcher/cluster.yaml", lambda docs: docs[0].update(head_node_type="gpu")),
        ("mlflow/docker-compose.yaml", lambda docs: docs[0]["services"]["mlflow"].update(dependson=[])),
        ("config/cluster.yaml", lambda docs: docs[0]["train"].update(epochz=3)),
        ("kuberay/helm/operator-values.yaml", lambda docs: docs[0]["featureGates"].pop(0)),
    ],
    ids=[
        "raycluster-typo",
        "raycluster-quantity",
        "rayjob-type",
        "cronjob-type",
        "raycronjob-required",
        "deployment-typo",
        "launcher",
        "launcher-head-type",
        "compose",
        "config",
        "helm-values",
    ],
)
def test_validators_reject_broken_manifests(tmp_path: Path, source: str, mutate):
    original = INFRA / source
    validate_file(original)
    broken = broken_copy(tmp_path, original, mutate)
    with pytest.raises(rejections()):
        validate_file(broken, kind_of(original))


def rejections() -> tuple[type[Exception], ...]:
    """What the validators raise for an invalid document (and nothing else counts)."""
    import kubernetes_validate
    import pydantic

    return (AssertionError, ValueError, kubernetes_validate.ValidationError, pydantic.ValidationError)


# -- cross-file invariants ---------------------------------------------------------------------


def cluster_specs() -> dict[str, dict]:
    """Every Ray cluster spec: the RayCluster's, the RayJob's and the RayCronJob's."""
    return {
        "raycluster": one("raycluster.yaml", "RayCluster")["spec"],
        "rayjob": one("rayjob.yaml", "RayJob")["spec"]["rayClusterSpec"],
        "raycronjob": one("raycronjob.yaml", "RayCronJob")["spec"]["jobTemplate"]["rayClusterSpec"],
    }


def ray_containers(spec: dict) -> list[dict]:
    groups = [spec["headGroupSpec"], *spec["workerGroupSpecs"]]
    return [c for g in groups for c in g["template"]["spec"]["containers"]]


def env_of(container: dict) -> dict[str, dict]:
    return {e["name"]: e for e in container.get("env", [])}


def test_ray_versions_match_the_installed_ray():
    version = ray.__version__
    pyproject = (ROOT / "pyproject.toml").read_text()
    assert set(re.findall(r'"ray\[[^\]]*\]==([^"]+)"', pyproject)) == {version}, "ray pins in pyproject"
    dockerfile = (ROOT / "Dockerfile").read_text()
    assert re.search(rf"^ARG RAY_IMAGE=rayproject/ray:{re.escape(version)}-py310$", dockerfile, re.M)
    assert f"rayproject/ray:{version}-py310-gpu" in dockerfile
    for name, spec in cluster_specs().items():
        assert spec["rayVersion"] == version, name
    launcher = documents(INFRA / "cluster-launcher" / "cluster.yaml")[0]
    images = [launcher["docker"]["image"]] + [
        t["docker"]["worker_image"] for t in launcher["available_node_types"].values() if "docker" in t
    ]
    for image in images:
        assert image.startswith(f"rayproject/ray:{version}-"), image


def test_dockerfile_is_non_root_with_gpu_and_extras_args():
    text = (ROOT / "Dockerfile").read_text()
    assert re.search(r'^ARG EXTRAS=""$', text, re.M)
    assert re.findall(r"^USER (\S+)$", text, re.M)[-1] == "ray"
    assert "EXTRAS:+[$EXTRAS]" in text  # the extra is installed only when given (vllm on GPU images)
    for line in re.findall(r"^(?:ENV|ARG)\s+(.+)$", text, re.M):
        assert not re.search(r"(?i)token|password|secret|_key", line), f"credential baked in: {line}"
    ignored = set((ROOT / ".dockerignore").read_text().split())
    assert {".venv", "runs", "mlruns", "**/.env", ".git"} <= ignored


def test_the_three_cluster_specs_agree():
    specs = cluster_specs()
    job, cron = one("rayjob.yaml", "RayJob"), one("raycronjob.yaml", "RayCronJob")
    assert cron["spec"]["jobTemplate"] == job["spec"], (
        "raycronjob.yaml's jobTemplate must be rayjob.yaml's spec"
    )
    reference = specs.pop("raycluster")
    for name, spec in specs.items():
        assert spec["authOptions"] == reference["authOptions"], name
        assert [g["groupName"] for g in spec["workerGroupSpecs"]] == [
            g["groupName"] for g in reference["workerGroupSpecs"]
        ], name
        assert [c["image"] for c in ray_containers(spec)] == [c["image"] for c in ray_containers(reference)]


def test_gpu_group_uses_the_gpu_image_and_the_head_has_no_gpu():
    for name, spec in cluster_specs().items():
        assert spec["enableInTreeAutoscaling"] is True, name
        head = spec["headGroupSpec"]["template"]["spec"]["containers"][0]
        assert "nvidia.com/gpu" not in head["resources"].get("limits", {}), name
        assert "dashboard-host" in spec["headGroupSpec"]["rayStartParams"], name
        gpu_groups = [
            g
            for g in spec["workerGroupSpecs"]
            if "nvidia.com/gpu" in g["template"]["spec"]["containers"][0]["resources"]["limits"]
        ]
        assert len(gpu_groups) == 1, name
        assert gpu_groups[0]["template"]["spec"]["containers"][0]["image"].endswith("-gpu"), name
        for group in spec["workerGroupSpecs"]:
            assert group["minReplicas"] <= group["replicas"] <= group["maxReplicas"], name
            for container in group["template"]["spec"]["containers"]:
                assert container["resources"]["requests"] and container["resources"]["limits"], name


def test_token_auth_on_every_cluster_and_submitter():
    for name, spec in cluster_specs().items():
        assert spec["authOptions"] == {"mode": "token", "secretName": "ray-auth-token"}, name
        for container in ray_containers(spec):
            env = env_of(container)
            assert env["RAY_AUTH_MODE"]["value"] == "token", name
            ref = env["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]
            assert ref == {"name": "ray-auth-token", "key": "auth_token"}, name  # KubeRay's key name
            for var in ("MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
                assert env[var]["valueFrom"]["secretKeyRef"]["name"] == "mlflow-credentials", name
    cron = one("cronjob.yaml", "CronJob")
    assert cron["spec"]["concurrencyPolicy"] == "Forbid"
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert env_of(container)["RAY_AUTH_TOKEN"]["valueFrom"]["secretKeyRef"]["name"] == "ray-auth-token"


def test_rayjob_runs_the_cluster_config_from_the_configmap():
    configmap = one("pipeline-config.yaml", "ConfigMap")
    assert configmap["data"]["pipeline.yaml"] == (INFRA / "config" / "cluster.yaml").read_text()
    job = one("rayjob.yaml", "RayJob")
    for field in (
        "shutdownAfterJobFinishes",
        "ttlSecondsAfterFinished",
        "submissionMode",
        "activeDeadlineSeconds",
        "backoffLimit",
    ):
        assert field in job["spec"], field
    argv = shlex.split(job["spec"]["entrypoint"])
    config = argv[argv.index("--config") + 1]
    head = job["spec"]["rayClusterSpec"]["headGroupSpec"]["template"]["spec"]
    [volume] = [
        v for v in head["volumes"] if v.get("configMap", {}).get("name") == configmap["metadata"]["name"]
    ]
    [mount] = [m for m in head["containers"][0]["volumeMounts"] if m["name"] == volume["name"]]
    assert config == f"{mount['mountPath']}/pipeline.yaml"


def cli_commands() -> dict[str, Any]:
    try:
        from jobs.cli import app
    except ImportError as error:  # the CLI is being written in parallel
        pytest.skip(f"jobs.cli is not importable yet: {error}")
    import typer.main

    return typer.main.get_command(app).commands


def options_of(command) -> set[str]:
    return {opt for param in command.params for opt in [*param.opts, *param.secondary_opts]}


def test_entrypoints_use_existing_cli_commands_and_options():
    scripts = re.search(r"^gliner-selftrain\s*=\s*\"jobs\.cli:", (ROOT / "pyproject.toml").read_text(), re.M)
    assert scripts, "the images run the `gliner-selftrain` console script"
    commands = cli_commands()
    argv = shlex.split(one("rayjob.yaml", "RayJob")["spec"]["entrypoint"])
    assert argv[0] == "gliner-selftrain"
    assert argv[1] in commands
    assert {a for a in argv if a.startswith("--")} <= options_of(commands[argv[1]])
    # The CronJob: `gliner-selftrain submit [options] -- self-train [options]`.
    cron = one("cronjob.yaml", "CronJob")
    (container,) = cron["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    argv = shlex.split(container["args"][0].replace("$(", "("))
    assert argv[:2] == ["exec", "gliner-selftrain"]
    submit, sep = argv[2], argv.index("--")
    assert submit == "submit" and submit in commands
    assert {a for a in argv[3:sep] if a.startswith("--")} <= options_of(commands[submit])
    assert argv[sep + 1] in commands
    assert {a for a in argv[sep + 2 :] if a.startswith("--")} <= options_of(commands[argv[sep + 1]])


# -- no credential is written anywhere under infra/ --------------------------------------------

SECRET_KEY = r"[\w.-]*?(?:password|passwd|token|secret|secret[_-]?key|api[_-]?key|access[_-]?key(?:[_-]id)?)"
ASSIGNMENT = re.compile(rf"(?i)\b({SECRET_KEY})\b[\"']?[ \t]*[:=][ \t]*(\S*)")
URL_PASSWORD = re.compile(r"://[^/\s:@]+:([^@\s/]+)@")
KNOWN_FORMATS = re.compile(
    r"AKIA[0-9A-Z]{16}|ghp_[A-Za-z0-9]{30,}|hf_[A-Za-z0-9]{30,}|-----BEGIN [A-Z ]*PRIVATE KEY"
)
SECRET_ENV = re.compile(r"(?i)password|token|secret|_key\b|_key_id\b|credential")


def is_placeholder(value: str) -> bool:
    value = value.strip("\"'")
    return value.lower() in ("", "...", "true", "false", "null") or value.startswith(
        ("$", "%s", "<", "{", "~/", "/")
    )  # refs, paths


def inline_secrets(text: str) -> list[str]:
    found = [m.group(0) for m in ASSIGNMENT.finditer(text) if not is_placeholder(m.group(2))]
    found += [m.group(0) for m in URL_PASSWORD.finditer(text) if not is_placeholder(m.group(1))]
    return found + KNOWN_FORMATS.findall(text)


def test_no_credential_literals_in_infra():
    files = [
        p for p in INFRA.rglob("*") if p.is_file() and p.suffix != ".pyc" and "__pycache__" not in p.parts
    ]
    files += [ROOT / "Dockerfile", ROOT / ".dockerignore"]
    assert not (INFRA / "mlflow" / ".env").exists() or ".env" in (INFRA / "mlflow" / ".gitignore").read_text()
    for path in files:
        if path.name == ".env":
            continue  # a developer's local, git-ignored file
        assert not inline_secrets(path.read_text()), f"{rel(path)}: {inline_secrets(path.read_text())}"


def test_secret_scanner_finds_literals():
    assert inline_secrets("password: hunter2")
    assert inline_secrets("env:\n  AWS_SECRET_ACCESS_KEY=wJalrXUtnFEMIK7MDENG")
    assert inline_secrets("uri: postgresql://mlflow:hunter2@db:5432/mlflow")
    assert inline_secrets('admin_password = "s3cr3t"')
    assert not inline_secrets("password: ${POSTGRES_PASSWORD}\nsecretName: ray-auth-token\nauth_token: ''")
    assert not inline_secrets("postgresql://mlflow:$(POSTGRES_PASSWORD)@db/mlflow")


def env_entries(node: Any):
    if isinstance(node, dict):
        if isinstance(node.get("env"), list):
            yield from node["env"]
        for value in node.values():
            yield from env_entries(value)
    elif isinstance(node, list):
        for item in node:
            yield from env_entries(item)


def test_kubernetes_secrets_are_referenced_not_inlined():
    for where, doc in k8s_objects():
        if doc["kind"] == "Secret":  # only templates are committed: every value empty
            values = {**doc.get("stringData", {}), **doc.get("data", {})}
            assert not any(values.values()), f"{where}: Secret with values"
        for entry in env_entries(doc):
            if SECRET_ENV.search(entry["name"]):
                assert "secretKeyRef" in entry.get("valueFrom", {}), (
                    f"{where}: {entry['name']} not from a Secret"
                )
    compose = documents(INFRA / "mlflow" / "docker-compose.yaml")[0]
    for name, service in compose["services"].items():
        for var, value in service.get("environment", {}).items():
            if SECRET_ENV.search(var):
                assert str(value).startswith("${"), f"compose {name}: {var} must come from .env"
    example = (INFRA / "mlflow" / ".env.example").read_text()
    for line in example.splitlines():
        if SECRET_ENV.search(line.split("=")[0]) and not line.startswith("#"):
            assert line.endswith("="), f".env.example must not hold values: {line}"


def test_mlflow_server_flags_exist_in_the_installed_mlflow():
    from click.testing import CliRunner
    from mlflow.cli import server

    flags = options_of(server)
    compose = documents(INFRA / "mlflow" / "docker-compose.yaml")[0]["services"]["mlflow"]["command"]
    [deployment] = [
        d for d in documents(INFRA / "mlflow" / "k8s" / "mlflow.yaml") if d["kind"] == "Deployment"
    ]
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    for argv in (compose, args):
        used = {a.split("=")[0] for a in argv if a.startswith("--")}
        assert used <= flags
        assert {"--app-name", "--serve-artifacts", "--artifacts-destination"} <= used
        assert "--app-name=basic-auth" in argv
    assert CliRunner().invoke(server, ["--help"]).exit_code == 0
    ini = (INFRA / "mlflow" / "basic_auth.ini").read_text()
    assert "admin_password" not in ini  # from MLFLOW_AUTH_ADMIN_PASSWORD
    dockerfile = (INFRA / "mlflow" / "Dockerfile").read_text()
    assert "MLFLOW_AUTH_CONFIG_PATH" in dockerfile
    import mlflow

    assert f"ARG MLFLOW_VERSION={mlflow.__version__}" in dockerfile  # the server runs the clients' MLflow
    assert '"mlflow[auth]==${MLFLOW_VERSION}"' in dockerfile  # basic-auth needs Flask-WTF


def test_vendored_kuberay_schema_is_documented():
    readme = (INFRA / "schemas" / "README.md").read_text()
    schema = json.loads((INFRA / "schemas" / "kuberay-crds.json").read_text())
    assert set(KUBERAY_KINDS) <= set(schema["$defs"])
    version = re.search(r"KubeRay (v[\d.]+)", schema["$comment"]).group(1)
    assert version in readme
    probe = copy.deepcopy(one("raycluster.yaml", "RayCluster"))
    probe["spec"]["authOptions"]["mode"] = "password"  # enum: disabled | token
    assert errors_of(kuberay_validator("RayCluster"), probe)


def refs(node: Any, key: str, field: str):
    """Every `node[...][key][field]` value, at any depth (e.g. all secretKeyRef names)."""
    if isinstance(node, dict):
        if isinstance(node.get(key), dict) and field in node[key]:
            yield node[key][field]
        for value in node.values():
            yield from refs(value, key, field)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item, key, field)


def test_references_resolve():
    """ConfigMaps, volume claims and service accounts used are defined here; Secrets are documented."""
    objects = [doc for _, doc in k8s_objects()]
    defined = {(d["kind"], d["metadata"].get("name")) for d in objects}
    for doc in objects:
        for name in refs(doc, "configMap", "name"):
            assert ("ConfigMap", name) in defined, name
        claims = {t["metadata"]["name"] for t in doc.get("spec", {}).get("volumeClaimTemplates", [])}
        for name in refs(doc, "persistentVolumeClaim", "claimName"):
            assert ("PersistentVolumeClaim", name) in defined or name in claims, name
    cron = one("cronjob.yaml", "CronJob")["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    assert ("ServiceAccount", cron["serviceAccountName"]) in defined
    secrets = {n for doc in objects for n in refs(doc, "secretKeyRef", "name")}
    secrets |= {spec["authOptions"]["secretName"] for spec in cluster_specs().values()}
    examples = {d["metadata"]["name"] for d in documents(KUBERAY / "secrets" / "secrets.example.yaml")}
    readme = (INFRA / "README.md").read_text()
    for name in secrets:
        assert name in examples or f"secret generic {name} " in readme, f"Secret {name} is not documented"
    for name in examples:
        assert f"secret generic {name} " in readme, f"infra/README.md does not say how to create {name}"

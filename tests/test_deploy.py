"""deploy/kubernetes (issue 22 item 5): every manifest parses; the pods run the image built
from the Dockerfile as its unprivileged user; their commands are `bml` subcommands with
options the CLI has (`bml db upgrade`, `bml dashboard`, `bml worker`); the dashboard listens
where its Service points and where the Dockerfile EXPOSEs; a worker pod asks for exactly one
GPU; and every BML_* setting they pass is one the code reads."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import typer.main
import yaml

from bml_cli.main import app

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy" / "kubernetes"
IMAGE = "bml-studio:latest"


def _docs() -> dict[tuple[str, str], dict[str, Any]]:
    out = {}
    for path in sorted(DEPLOY.glob("*.yaml")):
        for doc in yaml.safe_load_all(path.read_text()):
            assert doc and "kind" in doc and "metadata" in doc, path
            out[(doc["kind"], doc["metadata"]["name"])] = doc
    return out


def _pod(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["template"]["spec"]


def _check_command(argv: list[str]) -> None:
    """argv is a real `bml` command line: each subcommand exists, each option is one it takes."""
    assert argv[0] == "bml", argv
    cmd: Any = typer.main.get_command(app)  # typer's own click classes: duck-typed
    args = argv[1:]
    while hasattr(cmd, "commands"):
        assert args and args[0] in cmd.commands, f"no `bml {' '.join(argv[1:])}` subcommand {args[:1]}"
        cmd, args = cmd.commands[args[0]], args[1:]
    options = {o for p in cmd.params if p.param_type_name == "option" for o in p.opts}
    for a in args:
        if a.startswith("--"):
            assert a in options, f"`{' '.join(argv)}`: {a} is not an option of it ({sorted(options)})"


def test_manifests_parse_and_hold_the_four_parts() -> None:
    docs = _docs()
    assert {
        ("Deployment", "bml-dashboard"),
        ("Service", "bml-dashboard"),
        ("Deployment", "bml-worker"),
    } <= set(docs)
    assert ("Job", "bml-migrate") in docs and ("ConfigMap", "bml-config") in docs


def test_pods_run_real_bml_commands_from_the_dockerfile_image() -> None:
    docs = _docs()
    dockerfile = (ROOT / "Dockerfile").read_text()
    uid = re.search(r"^USER (\d+)", dockerfile, re.M)
    exposed = re.search(r"^EXPOSE (\d+)", dockerfile, re.M)
    assert uid and exposed
    commands = {}
    for (kind, name), doc in docs.items():
        if kind not in ("Deployment", "Job"):
            continue
        pod = _pod(doc)
        assert (
            pod["securityContext"]["runAsUser"] == int(uid.group(1))
            and pod["securityContext"]["runAsNonRoot"]
        )
        (container,) = pod["containers"]
        assert container["image"] == IMAGE
        _check_command(container["command"])
        commands[name] = container["command"]
    assert commands["bml-migrate"] == ["bml", "db", "upgrade"]
    assert commands["bml-worker"][:2] == ["bml", "worker"] and "--gpus" in commands["bml-worker"]
    dash = commands["bml-dashboard"]
    assert dash[:2] == ["bml", "dashboard"] and "--auth" in dash
    port = int(dash[dash.index("--port") + 1])
    assert port == int(exposed.group(1))
    container = _pod(docs[("Deployment", "bml-dashboard")])["containers"][0]
    assert container["ports"][0]["containerPort"] == port
    service = docs[("Service", "bml-dashboard")]["spec"]
    assert service["ports"][0]["targetPort"] == container["ports"][0]["name"]
    assert (
        service["selector"].items()
        <= docs[("Deployment", "bml-dashboard")]["spec"]["template"]["metadata"]["labels"].items()
    )


def test_one_gpu_per_worker_pod() -> None:
    worker = _pod(_docs()[("Deployment", "bml-worker")])["containers"][0]
    assert worker["resources"]["limits"]["nvidia.com/gpu"] == 1
    assert worker["command"] == ["bml", "worker", "--gpus", "0"]  # the pod's one GPU is device 0


def test_every_setting_passed_is_read_by_the_code() -> None:
    docs = _docs()
    names = set(docs[("ConfigMap", "bml-config")]["data"])
    for (kind, _), doc in docs.items():
        if kind in ("Deployment", "Job"):
            names |= {e["name"] for e in _pod(doc)["containers"][0].get("env", [])}
    source = "\n".join(
        p.read_text()
        for d in ("bml_core", "db", "worker", "services", "app", "bml_cli")
        for p in (ROOT / d).rglob("*.py")
    )
    for name in names:
        assert name.startswith("BML_") and f'"{name}"' in source, f"{name} is read nowhere in the code"

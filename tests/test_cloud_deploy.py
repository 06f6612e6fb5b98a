"""Deploy artifacts: the SAM template lints, the Kubernetes manifests validate,
and what each Dockerfile copies is enough to run the service (staged and run
without Docker, with the desktop-only packages made unimportable)."""

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "cloud" / "deploy"
BIN = Path(sys.executable).parent


def _tool(name):
    path = BIN / name
    if not path.exists():
        pytest.skip(f"{name} is not installed (pip install cfn-lint kubernetes-validate)")
    return str(path)


def test_sam_template_passes_cfn_lint():
    r = subprocess.run([_tool("cfn-lint"), str(DEPLOY / "lambda" / "template.yaml")], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_kubernetes_manifests_validate_strictly():
    manifests = sorted((DEPLOY / "gke" / "k8s").glob("*.yaml"))
    kinds = {re.search(r"^kind: (\w+)", m.read_text(), re.M).group(1) for m in manifests}
    assert {"Deployment", "Service", "HorizontalPodAutoscaler", "Secret"} <= kinds
    r = subprocess.run([_tool("kubernetes-validate"), "--strict", *map(str, manifests)], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr


def test_deployment_probes_use_the_service_endpoints():
    text = (DEPLOY / "gke" / "k8s" / "deployment.yaml").read_text()
    for probe, path in (("startupProbe", "/v1/health"), ("readinessProbe", "/v1/ready"), ("livenessProbe", "/v1/health")):
        assert re.search(rf"{probe}:\s+httpGet:\s+path: {path}", text), probe


def test_sam_function_reads_only_the_model_object():
    text = (DEPLOY / "lambda" / "template.yaml").read_text()
    actions = re.findall(r"Action: (\S+)", text)
    assert actions == ["s3:GetObject"]
    assert 'Resource: !Sub "arn:${AWS::Partition}:s3:::${ModelBucket}/${ModelKey}"' in text


@pytest.mark.parametrize("dockerfile", ["gke/Dockerfile", "gke/Dockerfile.cuda"])
def test_gke_images_run_as_a_non_root_user(dockerfile):
    users = re.findall(r"^USER (\S+)", (DEPLOY / dockerfile).read_text(), re.M)
    assert users and users[-1] not in ("root", "0")


def test_lambda_image_is_the_aws_python_base_with_the_handler_entry():
    text = (DEPLOY / "lambda" / "Dockerfile").read_text()
    assert re.search(r"^FROM public\.ecr\.aws/lambda/python:3\.\d+", text, re.M)
    assert 'CMD ["cloud.lambda_handler.handler"]' in text


def _stage(dockerfile: Path, dest: Path) -> None:
    """Do what the Dockerfile's COPY lines do, into `dest` (the image's code root)."""
    for line in dockerfile.read_text().splitlines():
        if not line.startswith("COPY ") or "requirements-service.txt" in line:
            continue
        *sources, target = line.split()[1:]
        target = target.replace("${LAMBDA_TASK_ROOT}/", "")
        for src in sources:
            s = ROOT / src
            t = dest / target
            if s.is_dir():
                shutil.copytree(s, t, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__"))
            else:
                t.mkdir(parents=True, exist_ok=True)
                shutil.copy2(s, t / s.name)


_PROBE = r"""
import importlib.abc, json, sys
class DesktopOnly(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name.split(".")[0] in ("PySide6", "mtcnn", "skimage", "facemend", "gui"):
            raise ImportError("not in the image: " + name)
sys.meta_path.insert(0, DesktopOnly())
root = sys.argv[1]
if sys.argv[2] == "lambda":
    import cloud.lambda_handler as lh
    ev = {"version": "2.0", "routeKey": "$default", "rawPath": "/v1/ready", "rawQueryString": "", "headers": {"host": "x"},
          "requestContext": {"http": {"method": "GET", "path": "/v1/ready", "protocol": "HTTP/1.1", "sourceIp": "1.2.3.4",
                             "userAgent": "probe"}, "requestId": "probe", "routeKey": "$default", "stage": "$default"},
          "isBase64Encoded": False}
    status = lh.handler(ev, None)["statusCode"]
else:
    from cloud.service import app_from_env
    app = app_from_env()
    app.state.slot.load("")
    status = 200 if app.state.slot.ready else 503
mods = [m.__file__ for n, m in list(sys.modules.items()) if n.split(".")[0] in ("core", "cloud", "models") and getattr(m, "__file__", None)]
print(json.dumps({"status": status, "outside": [f for f in mods if not f.startswith(root)]}))
"""


@pytest.mark.slow
@pytest.mark.parametrize("dockerfile,entry", [("lambda/Dockerfile", "lambda"), ("gke/Dockerfile", "service")])
def test_what_the_image_copies_is_enough_to_serve(tmp_path, dockerfile, entry):
    code = tmp_path / "image"
    _stage(DEPLOY / dockerfile, code)
    env = {**os.environ, "PYTHONPATH": str(code), "FACEMEND_API_KEY": "k" * 24, "TF_CPP_MIN_LOG_LEVEL": "2",
           "FACEMEND_MODELS_DIR": "", "FACEMEND_CACHE_DIR": str(tmp_path / "cache")}
    r = subprocess.run([sys.executable, "-c", _PROBE, str(code), entry], cwd=code, env=env,
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr[-3000:]
    out = json.loads(r.stdout.strip().splitlines()[-1])
    assert out["status"] == 200
    assert out["outside"] == []  # every project module came from the staged image, none from the checkout

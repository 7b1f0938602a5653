"""The two image definitions (scripts/build-image, operator/Dockerfile) describe the image the chart runs:
its user, entrypoint, default command and ports. tests/e2e/test_image.py runs the built one."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import yaml

REPO = Path(__file__).resolve().parents[2]
VALUES = yaml.safe_load((REPO / "charts/clientreg/values.yaml").read_text())
CHART = yaml.safe_load((REPO / "charts/clientreg/Chart.yaml").read_text())
DOCKERFILE = (REPO / "operator/Dockerfile").read_text()
BUILD_SCRIPT = (REPO / "scripts/build-image").read_text()


def chart_user() -> str:
    pod = VALUES["podSecurityContext"]
    return f"{pod['runAsUser']}:{pod['runAsGroup']}"


def chart_ports() -> set[int]:
    return {VALUES["metrics"]["port"], VALUES["probes"]["port"]}


def dockerfile_instruction(name: str) -> str:
    found = re.findall(rf"^{name}\s+(.+)$", DOCKERFILE, re.MULTILINE)
    assert found, f"operator/Dockerfile has no {name}"
    return str(found[-1]).strip()


def build_script_config(option: str) -> list[str]:
    """Every value given to umoci config's ``--config.<option>`` in scripts/build-image."""
    words = shlex.split(BUILD_SCRIPT.replace("\\\n", " "), comments=True)
    return [words[i + 1] for i, word in enumerate(words) if word == f"--config.{option}"]


def test_both_images_run_as_the_charts_user() -> None:
    assert chart_user() == "65532:65532"
    assert dockerfile_instruction("USER") == chart_user()
    assert build_script_config("user") == [chart_user()]


def test_both_images_expose_the_charts_ports() -> None:
    assert {int(p) for p in dockerfile_instruction("EXPOSE").split()} == chart_ports()
    assert {int(p.split("/")[0]) for p in build_script_config("exposedports")} == chart_ports()


def test_both_images_start_the_operator_with_the_chart_supplying_only_args() -> None:
    # The Deployment sets args, never command: the entrypoint must be the operator's CLI in both images.
    assert DOCKERFILE.count('ENTRYPOINT ["clientreg-operator"]') == 1
    assert build_script_config("entrypoint") == ["/opt/clientreg/bin/clientreg-operator"]
    assert dockerfile_instruction("CMD") == '["run", "--all-namespaces"]'
    assert build_script_config("cmd") == ["run", "--all-namespaces"]
    deployment = (REPO / "charts/clientreg/templates/deployment.yaml").read_text()
    assert "command:" not in deployment and "args:" in deployment


def test_both_images_write_no_bytecode_at_run_time() -> None:
    assert "PYTHONDONTWRITEBYTECODE=1" in DOCKERFILE
    assert "PYTHONDONTWRITEBYTECODE=1" in build_script_config("env")


def test_the_charts_default_image_is_the_name_the_build_gives() -> None:
    assert VALUES["image"]["repository"] == "ghcr.io/clientreg/clientreg-operator" and VALUES["image"]["tag"] == ""
    assert "IMAGE_NAME:-ghcr.io/clientreg/clientreg-operator:${version}" in BUILD_SCRIPT
    version = re.search(r'^version = "(.+)"', (REPO / "pyproject.toml").read_text(), re.MULTILINE)
    assert version and CHART["appVersion"] == version.group(1)


def test_every_first_party_package_goes_into_the_image_and_its_cache_key() -> None:
    """The shared Kubernetes layer (clientreg_kube) arrived after the image build: a package missing from the
    build's source copy gives an image whose operator fails at import, and one missing from the cache key an
    image that is not rebuilt when that package changes."""
    from support.image import INPUT_TREES

    packages = {p.parent.relative_to(REPO).as_posix() for p in REPO.glob("*/__init__.py")
                if p.parent.name.startswith("clientreg")}
    packages |= {p.parent.relative_to(REPO).as_posix() for p in REPO.glob("*/clientreg*/__init__.py")
                 if p.parent.parent.name in ("operator", "provider")}
    assert packages == set(INPUT_TREES)
    copied = re.search(r"-cf - (.+?) \| tar", BUILD_SCRIPT, re.DOTALL)
    assert copied is not None
    assert packages <= set(copied.group(1).replace("\\", " ").split())
    for package in packages:
        assert re.search(rf"^COPY {re.escape(package.split('/')[0])} ", DOCKERFILE, re.MULTILINE), package

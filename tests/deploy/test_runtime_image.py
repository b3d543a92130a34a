"""The Dockerfile's runtime stage, the scratch build that stands in for it here, and the
chart's pod agree on entrypoint, user, ports, environment and data directory.

`scripts/deploy-smoke` builds the scratch image for real and compares `podman image
inspect` with `dockerfile_config()`; these tests need no container engine.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from chart_support import render
from runtime_image import (
    DISTROLESS_ENV,
    DOCKERFILE,
    RuntimeConfig,
    config_of,
    data_dir,
    dockerfile_config,
    linked_libraries,
    parse,
    scratch_containerfile,
)


def test_the_scratch_containerfile_reproduces_the_dockerfile_runtime_config() -> None:
    wanted = dockerfile_config()
    parser = parse(scratch_containerfile(wanted, data_dir()))
    assert parser.baseimage == "scratch"
    built = config_of(parser, RuntimeConfig("", {}, [], [], frozenset(), ""))
    assert not built.differences(wanted), built.differences(wanted)


def test_the_dockerfile_runtime_is_what_the_chart_pod_expects() -> None:
    image = dockerfile_config()
    out = render()
    pod, container = out.pod["spec"], out.container
    assert image.user == f"{pod['securityContext']['runAsUser']}:{pod['securityContext']['runAsGroup']}"
    assert image.user == f"{container['securityContext']['runAsUser']}:{container['securityContext']['runAsGroup']}"
    assert image.ports == {f"{p['containerPort']}/tcp" for p in container["ports"]}
    assert image.entrypoint == container["command"]
    assert image.cmd == container["args"][:1] == ["serve"]
    assert image.env["SWITCHBOARD_DATA_DIR"] == data_dir() == out.config["data_dir"]
    assert image.env["SSL_CERT_FILE"] == DISTROLESS_ENV["SSL_CERT_FILE"]
    mounts = {m["mountPath"] for m in container["volumeMounts"]}
    assert data_dir() in mounts, "the store directory is a volume in the pod"


def test_an_instruction_the_scratch_build_does_not_mirror_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "Dockerfile"
    path.write_text(DOCKERFILE.read_text() + "STOPSIGNAL SIGINT\n")
    with pytest.raises(ValueError, match="STOPSIGNAL"):
        dockerfile_config(path)


def test_the_linked_libraries_include_the_loader_and_libc() -> None:
    binary = os.environ.get("SWITCHBOARD_BIN")
    if not binary:
        pytest.skip("SWITCHBOARD_BIN is not set to a built switchboard binary")
    names = {lib.name for lib in linked_libraries(Path(binary))}
    assert "libc.so.6" in names and any(n.startswith("ld-linux") for n in names), names

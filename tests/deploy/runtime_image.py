"""The runtime image, two ways, described once.

`Dockerfile` is the build users run where registries are reachable: a Rust build stage,
then `gcr.io/distroless/cc-debian12:nonroot` with the binary. Where no base image can be
pulled (this machine: no registry), `scripts/deploy-smoke` builds the same runtime image
`FROM scratch` out of the host-built release binary, the shared libraries it links, a CA
bundle, the distroless `/etc/passwd` and `/etc/group`, and the Dockerfile's own
USER/ENV/ENTRYPOINT/CMD/EXPOSE/LABEL, which `scratch_containerfile` transcribes from the
parsed Dockerfile. `dockerfile_config` is what a Dockerfile build yields (the distroless
base's config plus the final stage's instructions); `image_config` reads a built image's
config from `podman image inspect`; the smoke compares the two.
"""

from __future__ import annotations

import io
import json
import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dockerfile_parse import DockerfileParser

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = ROOT / "Dockerfile"

# The runtime base of the Dockerfile, and the config it contributes to every image built
# on it (GoogleContainerTools/distroless, base/base.bzl: the `nonroot` variants set these
# two variables, user 65532 and /home/nonroot as the working directory).
DISTROLESS_BASE = "gcr.io/distroless/cc-debian12:nonroot"
DISTROLESS_ENV = {
    "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
    "SSL_CERT_FILE": "/etc/ssl/certs/ca-certificates.crt",
}
DISTROLESS_USER = "65532"
DISTROLESS_WORKDIR = "/home/nonroot"
NONROOT_UID = 65532

# The distroless user database (root, nobody, nonroot) and name-service config.
PASSWD = (
    "root:x:0:0:root:/root:/sbin/nologin\n"
    "nobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\n"
    f"nonroot:x:{NONROOT_UID}:{NONROOT_UID}:nonroot:/home/nonroot:/sbin/nologin\n"
)
GROUP = f"root:x:0:\nnobody:x:65534:\ntty:x:5:\nstaff:x:50:\nnonroot:x:{NONROOT_UID}:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\nprotocols: files\nservices: files\n"
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")

BINARY_PATH = "/usr/local/bin/switchboard"
BUILDER_LABELS = {"io.buildah.version"}


@dataclass(frozen=True)
class RuntimeConfig:
    """What a container started from the image gets: the parts the chart and users rely on."""

    user: str
    env: dict[str, str]
    entrypoint: list[str]
    cmd: list[str]
    ports: frozenset[str]
    workdir: str
    labels: dict[str, str] = field(default_factory=dict)

    def differences(self, other: RuntimeConfig) -> list[str]:
        out = []
        for name in ("user", "env", "entrypoint", "cmd", "ports", "workdir", "labels"):
            mine, theirs = getattr(self, name), getattr(other, name)
            if mine != theirs:
                out.append(f"{name}: {mine!r} != {theirs!r}")
        return out


def parse(text: str) -> DockerfileParser:
    """A parser over Dockerfile text (by path, dockerfile-parse insists on the name `Dockerfile`)."""
    return DockerfileParser(fileobj=io.StringIO(text))


def _final_stage(parser: DockerfileParser) -> list[dict[str, Any]]:
    froms = [i for i, s in enumerate(parser.structure) if s["instruction"] == "FROM"]
    return parser.structure[froms[-1] + 1 :]


def _exec_form(value: str, instruction: str) -> list[str]:
    form = json.loads(value)
    if not (isinstance(form, list) and all(isinstance(a, str) for a in form)):
        raise ValueError(f"{instruction} must use the exec (JSON) form: {value}")
    return form


# The instructions the final stage may use. Anything else (VOLUME, STOPSIGNAL, HEALTHCHECK,
# SHELL, ...) would change the container without the scratch build knowing: teach
# `config_of` and `scratch_containerfile` about it first.
FINAL_STAGE_INSTRUCTIONS = {"COMMENT", "LABEL", "COPY", "ENV", "USER", "WORKDIR", "EXPOSE", "ENTRYPOINT", "CMD"}


def dockerfile_config(path: Path = DOCKERFILE) -> RuntimeConfig:
    """The config of the image `docker build` makes from the Dockerfile: the distroless
    base's, overridden by the final stage's instructions."""
    parser = parse(path.read_text())
    if parser.baseimage != DISTROLESS_BASE:
        raise ValueError(f"the Dockerfile's runtime base is {parser.baseimage}, not {DISTROLESS_BASE}: update DISTROLESS_*")
    return config_of(parser, RuntimeConfig(DISTROLESS_USER, DISTROLESS_ENV, [], [], frozenset(), DISTROLESS_WORKDIR))


def config_of(parser: DockerfileParser, base: RuntimeConfig) -> RuntimeConfig:
    """`base` as the final stage of `parser` changes it."""
    user, workdir, entrypoint, cmd, ports = base.user, base.workdir, base.entrypoint, base.cmd, set(base.ports)
    for step in _final_stage(parser):
        instruction, value = step["instruction"], step["value"]
        if instruction not in FINAL_STAGE_INSTRUCTIONS:
            raise ValueError(f"line {step['startline'] + 1}: {instruction} in the runtime stage is not mirrored by the scratch build")
        if instruction == "USER":
            user = value
        elif instruction == "WORKDIR":
            workdir = value
        elif instruction == "ENTRYPOINT":
            entrypoint, cmd = _exec_form(value, instruction), []
        elif instruction == "CMD":
            cmd = _exec_form(value, instruction)
        elif instruction == "EXPOSE":
            ports |= {p if "/" in p else f"{p}/tcp" for p in value.split()}
    return RuntimeConfig(
        user=user,
        env={**base.env, **parser.envs},
        entrypoint=entrypoint,
        cmd=cmd,
        ports=frozenset(ports),
        workdir=workdir,
        labels={**base.labels, **parser.labels},
    )


def image_config(inspect: dict[str, Any]) -> RuntimeConfig:
    """The config of a built image, from one element of `podman image inspect`."""
    config = inspect["Config"]
    return RuntimeConfig(
        user=config.get("User", ""),
        env=dict(e.split("=", 1) for e in config.get("Env") or []),
        entrypoint=config.get("Entrypoint") or [],
        cmd=config.get("Cmd") or [],
        ports=frozenset(config.get("ExposedPorts") or {}),
        workdir=config.get("WorkingDir", ""),
        # The builder stamps its own version (buildah, BuildKit); not part of the Dockerfile.
        labels={k: v for k, v in (config.get("Labels") or {}).items() if k not in BUILDER_LABELS},
    )


def data_dir(path: Path = DOCKERFILE) -> str:
    """The directory the final stage creates for the store (owned by the runtime user)."""
    for step in _final_stage(parse(path.read_text())):
        if step["instruction"] == "COPY" and "--chown=" in step["value"]:
            return step["value"].split()[-1]
    raise ValueError("the Dockerfile copies no directory owned by the runtime user")


def scratch_containerfile(config: RuntimeConfig, store_dir: str) -> str:
    """A Containerfile that assembles the runtime image FROM scratch out of the context
    `assemble_context` writes, with the given config."""
    lines = [
        "# Generated by tests/deploy/runtime_image.py from the Dockerfile's metadata.",
        "FROM scratch",
        "COPY rootfs/ /",
        f"COPY --chown={NONROOT_UID}:{NONROOT_UID} home/ {DISTROLESS_WORKDIR}/",
        f"COPY --chown={NONROOT_UID}:{NONROOT_UID} data/ {store_dir}/",
    ]
    if config.labels:
        lines.append("LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in sorted(config.labels.items())))
    lines += [f"ENV {k}={json.dumps(v)}" for k, v in config.env.items()]
    lines += [
        f"USER {config.user}",
        f"WORKDIR {config.workdir}",
        "EXPOSE " + " ".join(sorted(config.ports)),
        f"ENTRYPOINT {json.dumps(config.entrypoint)}",
        f"CMD {json.dumps(config.cmd)}",
    ]
    return "\n".join(lines) + "\n"


def linked_libraries(binary: Path) -> list[Path]:
    """The shared objects the dynamic loader maps for `binary` (`ldd`), the loader included."""
    out = subprocess.run(["ldd", str(binary)], check=True, capture_output=True, text=True).stdout
    libs = []
    for line in out.splitlines():
        if "not found" in line:
            raise RuntimeError(f"{binary}: {line.strip()}")
        match = re.search(r"(?:=>\s*)?(/\S+)\s+\(0x", line)
        if match:
            libs.append(Path(match[1]))
    if not any("ld-linux" in lib.name for lib in libs):
        raise RuntimeError(f"{binary} names no dynamic loader; ldd said:\n{out}")
    return libs


def assemble_context(binary: Path, context: Path) -> None:
    """Writes the build context of the scratch image: `rootfs/` (the binary, its libraries,
    the CA bundle, the user database, /tmp), `home/` and `data/` (the runtime user's
    home and the store directory, copied with its ownership)."""
    rootfs = context / "rootfs"
    target = rootfs / BINARY_PATH.lstrip("/")
    target.parent.mkdir(parents=True)
    shutil.copy2(binary, target)
    target.chmod(0o755)
    for lib in linked_libraries(binary):
        dest = rootfs / str(lib).lstrip("/")
        dest.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(lib.resolve(), dest)
    ca = rootfs / DISTROLESS_ENV["SSL_CERT_FILE"].lstrip("/")
    ca.parent.mkdir(parents=True)
    shutil.copy2(HOST_CA_BUNDLE, ca)
    etc = rootfs / "etc"
    (etc / "passwd").write_text(PASSWD)
    (etc / "group").write_text(GROUP)
    (etc / "nsswitch.conf").write_text(NSSWITCH)
    for f in ("passwd", "group", "nsswitch.conf"):
        (etc / f).chmod(0o644)
    (rootfs / "tmp").mkdir()
    (rootfs / "tmp").chmod(0o1777)
    (context / "home").mkdir()
    (context / "home").chmod(0o700)
    (context / "data").mkdir()
    (context / "data").chmod(0o750)

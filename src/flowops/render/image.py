"""The flows' image: a tag that is a hash of what the image is built from, and build-and-push only when the
registry lacks that tag.

    flowops image tag        ->  flows-3f2a9c1d7e4b            (same inputs, same tag, on any machine)
    flowops image ensure     ->  built and pushed ghcr.io/acme/flows:flows-3f2a9c1d7e4b
                             or  present: ghcr.io/acme/flows:flows-3f2a9c1d7e4b (nothing built)

The inputs are the Dockerfile and the flows' dependency set exactly as uv.lock pins it (`uv export --only-group
flows`), and the base image when $FLOWOPS_BASE_IMAGE replaces the Dockerfile's default (a mirror of it in a
registry workers can reach): a change to the flow code, the tooling or a dev dependency does not change the tag.
"""

from __future__ import annotations

import base64
import hashlib
import os
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

import httpx

if TYPE_CHECKING:
    from flowops.config.project import Project

from flowops.errors import FlowopsError

Login = tuple[str, str]  # registry username and password

TAG_PREFIX = "flows-"
TAG_HASH_LENGTH = 12
MANIFEST_TYPES = (
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json",
)


class ImageError(FlowopsError):
    pass


@dataclass(frozen=True)
class ImageRef:
    name: str  # registry/repository, e.g. ghcr.io/acme/flows or localhost:5000/flows
    tag: str

    def __str__(self) -> str:
        return f"{self.name}:{self.tag}"

    @property
    def registry(self) -> str:
        first = self.name.split("/", 1)[0]
        return first if ("." in first or ":" in first or first == "localhost") else "registry-1.docker.io"

    @property
    def login_registry(self) -> str:
        """The registry as `docker login` names it (Docker Hub's API host logs in as index.docker.io)."""
        return "index.docker.io" if self.registry == "registry-1.docker.io" else self.registry

    @property
    def repository(self) -> str:
        first, _, rest = self.name.partition("/")
        if self.registry != first:  # Docker Hub names: `flows` is `library/flows`
            return self.name if "/" in self.name else f"library/{self.name}"
        return rest


def dependency_set(root: Path) -> str:
    """The flows' pinned requirements, from uv.lock, as uv exports them (the same set the Dockerfile installs)."""
    command = ["uv", "export", "--frozen", "--only-group", "flows", "--no-emit-project", "--no-header", "--quiet"]
    result = subprocess.run(command, cwd=root, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise ImageError(f"uv export failed: {result.stderr.strip()}")
    return result.stdout


def base_image_override(environ: Mapping[str, str] = os.environ) -> str | None:
    """$FLOWOPS_BASE_IMAGE: the Dockerfile's BASE_IMAGE build argument, when set and not empty."""
    return environ.get("FLOWOPS_BASE_IMAGE") or None


def image_tag(root: Path, dockerfile: str = "Dockerfile", base_image: str | None = None) -> str:
    digest = hashlib.sha256()
    try:
        recipe = (root / dockerfile).read_bytes()
    except FileNotFoundError:
        raise ImageError(f"{dockerfile}: not found (flowops.yaml's image.dockerfile, the flows' image)") from None
    inputs = [("Dockerfile", recipe), ("flows", dependency_set(root).encode())]
    if base_image:  # only when overridden, so the default image keeps its tag
        inputs.append(("BASE_IMAGE", base_image.encode()))
    for name, content in inputs:
        digest.update(f"{name}\0{len(content)}\0".encode())
        digest.update(content)
    return TAG_PREFIX + digest.hexdigest()[:TAG_HASH_LENGTH]


def registry_has(ref: ImageRef, username: str | None = None, password: str | None = None) -> bool:
    """Whether the registry has `ref`, asked over the registry HTTP API (v2), logging in (Basic, or a Bearer
    token) where it asks for it. A registry on this machine is asked over https first, then http, as Docker does."""
    local = ref.registry.split(":")[0] in ("localhost", "127.0.0.1")
    auth = (username, password) if username and password else None
    headers = {"Accept": ", ".join(MANIFEST_TYPES)}
    with httpx.Client(timeout=30, follow_redirects=True) as client:
        try:
            for scheme in ("https", "http") if local else ("https",):
                url = f"{scheme}://{ref.registry}/v2/{ref.repository}/manifests/{ref.tag}"
                try:
                    response = client.head(url, headers=headers)
                    break
                except httpx.ConnectError as error:
                    if "CERTIFICATE_VERIFY_FAILED" in str(error):
                        raise ImageError(
                            f"registry {ref.registry}: its TLS certificate is not trusted here (a private CA: point"
                            " SSL_CERT_FILE at it)"
                        ) from None
                    if scheme == "http" or not local:
                        raise
            if response.status_code == 401:
                challenge = response.headers.get("www-authenticate", "")
                authorization = _authorization(client, challenge, auth, ref.registry)
                response = client.head(url, headers={**headers, "Authorization": authorization})
        except httpx.HTTPError as error:
            raise ImageError(f"cannot reach the registry {ref.registry}: {error}") from None
    if response.status_code == 200:
        return True
    if response.status_code == 404:
        return False
    if response.status_code == 401:
        raise ImageError(f"registry {ref.registry} refused the login for {ref}: check the registry credentials")
    raise ImageError(f"registry {ref.registry} answered {response.status_code} for {ref}")


def _authorization(client: httpx.Client, challenge: str, auth: Login | None, registry: str) -> str:
    """The Authorization header a 401's `WWW-Authenticate` challenge asks for."""
    if challenge.lower().startswith("basic "):
        if not auth:
            raise ImageError(
                f"registry {registry} wants a login: set REGISTRY_USERNAME and REGISTRY_PASSWORD, or bootstrap the"
                " block flowops.yaml names in image.registry_credentials"
            )
        username, password = auth  # sent back to the very URL that asked: the registry itself
        return "Basic " + base64.b64encode(f"{username}:{password}".encode()).decode()
    return f"Bearer {_bearer_token(client, challenge, auth, registry)}"


def _may_receive_credentials(realm: str, registry: str) -> bool:
    """Registry credentials go to the registry's own host, or over https to a host of the same site
    (ghcr.io -> ghcr.io, registry-1.docker.io -> auth.docker.io): never to whatever host a challenge names."""
    parts = urlsplit(realm)
    registry_host = registry.rsplit(":", 1)[0] if registry.count(":") == 1 else registry
    if parts.netloc == registry or ((parts.hostname or "") == registry_host and parts.scheme == "https"):
        return True

    def site(host: str) -> str:
        return ".".join(host.lower().split(".")[-2:])

    return parts.scheme == "https" and parts.hostname is not None and site(parts.hostname) == site(registry_host)


def _bearer_token(client: httpx.Client, challenge: str, auth: Login | None, registry: str) -> str:
    """The token a `WWW-Authenticate: Bearer realm=...,service=...,scope=...` challenge asks for."""
    if not challenge.lower().startswith("bearer "):
        raise ImageError(f"registry wants an authentication it does not say how to get: {challenge!r}")
    fields = dict(part.strip().split("=", 1) for part in challenge[len("bearer ") :].split(",") if "=" in part)
    fields = {key: value.strip('"') for key, value in fields.items()}
    realm = fields.pop("realm", None)
    if not realm:
        raise ImageError(f"registry challenge without a realm: {challenge!r}")
    if auth and not _may_receive_credentials(realm, registry):
        raise ImageError(
            f"registry {registry} asks for its credentials at {realm}: not its own host, nor https on its site;"
            " they were not sent"
        )
    response = client.get(realm, params=fields, auth=auth)
    if response.status_code != 200:
        raise ImageError(f"registry token request failed with {response.status_code} (check the registry credentials)")
    body = response.json()
    return body.get("token") or body.get("access_token") or ""


@dataclass(frozen=True)
class EnsureResult:
    ref: ImageRef
    built: bool


def ensure_image(
    root: Path,
    ref: ImageRef,
    dockerfile: str = "Dockerfile",
    build_args: dict[str, str] | None = None,
    username: str | None = None,
    password: str | None = None,
) -> EnsureResult:
    """Build and push `ref` with prefect-docker's deployment steps, unless the registry already has it."""
    if registry_has(ref, username, password):
        return EnsureResult(ref, built=False)
    from docker.errors import DockerException
    from prefect.utilities.dockerutils import BuildError, PushError
    from prefect_docker.deployments.steps import build_docker_image, push_docker_image

    credentials = {"username": username, "password": password, "registry_url": ref.registry} if username else None
    try:
        build_docker_image(
            image_name=ref.name,
            tag=ref.tag,
            dockerfile=dockerfile,  # relative to the build context, as docker-py wants it
            path=str(root),
            buildargs=build_args or {},
            rm=True,  # podman keeps intermediate working containers otherwise
            pull=True,
        )
        push_docker_image(image_name=ref.name, tag=ref.tag, credentials=credentials)
    except (BuildError, PushError, DockerException) as error:
        raise ImageError(f"building or pushing {ref} failed: {' '.join(str(error).split())}") from None
    return EnsureResult(ref, built=True)


def default_image_ref(project: Project) -> ImageRef:
    """flowops.yaml's image name (or $FLOWOPS_IMAGE_NAME, as CI sets it), tagged with the content hash (which
    covers $FLOWOPS_BASE_IMAGE when set)."""
    if project.config.image is None:
        raise ImageError("flowops.yaml declares no image")
    tag = image_tag(project.root, project.config.image.dockerfile, base_image_override())
    return ImageRef(image_name(project), tag)


def image_name(project: Project) -> str:
    """The flows' image without its tag: $FLOWOPS_IMAGE_NAME, else flowops.yaml's."""
    if project.config.image is None:
        raise ImageError("flowops.yaml declares no image")
    return (os.environ.get("FLOWOPS_IMAGE_NAME") or project.config.image.name).lower()

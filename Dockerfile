# The flows' runtime image: Python, Prefect and the flows' dependencies, nothing else. The flow code itself is
# not in the image: workers git-clone it at run time, so a code-only change needs no new image. Its tag is a
# hash of what it is built from (`flowops image tag`): an unchanged dependency set means no build.
#
#   docker build -t flows .                                   # on the official Prefect image
#   docker build --build-arg BASE_IMAGE=localhost:5000/debian-base:bookworm -t flows .   # any Python 3.11 image

ARG BASE_IMAGE=prefecthq/prefect:3.9.1-python3.11

FROM ${BASE_IMAGE} AS dependencies
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
# uv from PyPI (works on any base with python3 -m venv), then the `flows` group exactly as uv.lock pins it.
RUN python3 -m venv /opt/uv && /opt/uv/bin/pip install --no-cache-dir --disable-pip-version-check "uv==0.13.9"
# UV_SYSTEM_CERTS: trust the image's CA store (behind a TLS-intercepting proxy it holds the proxy's CA).
ENV UV_PROJECT_ENVIRONMENT=/opt/flows \
    UV_PYTHON_DOWNLOADS=never \
    UV_SYSTEM_CERTS=1 \
    UV_COMPILE_BYTECODE=1 \
    UV_LINK_MODE=copy
WORKDIR /build
COPY pyproject.toml uv.lock ./
RUN /opt/uv/bin/uv sync --locked --only-group flows --no-install-project --no-cache --python python3

FROM ${BASE_IMAGE}
SHELL ["/bin/bash", "-o", "pipefail", "-c"]
COPY --from=dependencies /opt/flows /opt/flows
ENV PATH=/opt/flows/bin:$PATH \
    PYTHONUNBUFFERED=1
# git_clone pull steps need git; fail the build here rather than every run later.
RUN git --version && python -c "import prefect, pyarrow, psycopg" \
    && useradd --create-home --uid 10001 --shell /usr/sbin/nologin flows
USER 10001:10001
WORKDIR /home/flows
CMD ["prefect", "version"]

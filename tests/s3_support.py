"""A real S3 server for the tests: moto's standalone server, a process speaking S3's HTTP API on 127.0.0.1.

Nothing is patched into a client: s3fs (through universal-pathlib) talks HTTP to the server as it would to AWS,
pointed there by ``AWS_ENDPOINT_URL``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

MOTO_SERVER = Path(sys.executable).with_name("moto_server")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def s3_server(logs: Path) -> Iterator[dict[str, str]]:
    """Run an S3 server until the block ends; yield the environment that points S3 clients at it."""
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    with (logs / "moto_server.log").open("wb") as out:
        process = subprocess.Popen(  # noqa: S603 - the venv's moto_server
            [str(MOTO_SERVER), "-H", "127.0.0.1", "-p", str(port)], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, (logs / "moto_server.log").read_text()[-3000:]
            with contextlib.suppress(OSError):
                urllib.request.urlopen(f"{url}/moto-api/", timeout=2).close()  # noqa: S310 - our own local server
                break
            assert time.monotonic() < deadline, "the S3 server did not answer within 60 s"
            time.sleep(0.2)
        yield {
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": url,
        }
    finally:
        process.terminate()
        process.wait(timeout=30)


def new_bucket(env: dict[str, str]) -> str:
    """Create a bucket of a fresh name on the server of ``env``; return its name."""
    import s3fs  # noqa: PLC0415 - the [s3] extra

    name = f"test-{secrets.token_hex(6)}"
    filesystem = s3fs.S3FileSystem(
        key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], endpoint_url=env["AWS_ENDPOINT_URL"]
    )
    filesystem.mkdir(name)
    return name


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """Set ``values`` in this process's environment for the block, then put back what was there."""
    before = {key: os.environ.get(key) for key in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value

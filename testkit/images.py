"""The offline busybox image the tests and benchmarks run: ``slipway-test/busybox:latest``,
imported from the host's busybox-static; it serves ``/www/index.html`` with
``httpd -f -p $PORT -h /www``."""

from __future__ import annotations

import io
import subprocess
import tarfile
from pathlib import Path

import docker
import docker.errors
import pytest

BUSYBOX_IMAGE = "slipway-test/busybox:latest"
BUSYBOX_INDEX = "hello from slipway busybox\n"
TEST_LABEL = "slipway.test"  # on containers a test starts itself, for its own clean-up


def _busybox_tar() -> bytes:
    busybox = Path("/bin/busybox")
    if not busybox.exists():
        pytest.skip("busybox-static is not installed (apt-get install busybox-static)")
    applets = subprocess.run(
        [str(busybox), "--list"], check=True, capture_output=True, text=True
    ).stdout.split()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        for directory in ("bin", "tmp", "www", "etc"):
            info = tarfile.TarInfo(directory)
            info.type, info.mode = tarfile.DIRTYPE, 0o1777 if directory == "tmp" else 0o755
            tar.addfile(info)
        tar.add(str(busybox), arcname="bin/busybox")
        for applet in applets:
            if applet != "busybox":
                link = tarfile.TarInfo(f"bin/{applet}")
                link.type, link.linkname = tarfile.SYMTYPE, "busybox"
                tar.addfile(link)
        for name, text in (
            ("www/index.html", BUSYBOX_INDEX),
            ("etc/passwd", "root:x:0:0:root:/:/bin/sh\n"),
        ):
            data = text.encode()
            info = tarfile.TarInfo(name)
            info.size, info.mode = len(data), 0o644
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def busybox_image(client: docker.DockerClient) -> str:
    """The image's name; imported the first time, then reused across runs."""
    try:
        client.images.get(BUSYBOX_IMAGE)
        return BUSYBOX_IMAGE
    except docker.errors.ImageNotFound:
        pass
    repository, tag = BUSYBOX_IMAGE.split(":")
    client.api.import_image_from_data(
        _busybox_tar(),
        repository=repository,
        tag=tag,
        changes=['CMD ["/bin/sh"]', "ENV PATH=/bin"],
    )
    client.images.get(BUSYBOX_IMAGE)
    return BUSYBOX_IMAGE

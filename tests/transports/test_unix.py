"""Unix sockets: stale files, files in use, permissions, clean up."""

from __future__ import annotations

import errno
import os
import socket
import stat
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from rpcbd import ThreadedPeer
from rpcbd.transports.unix import unix_path

pytestmark = pytest.mark.skipif(not hasattr(socket, "AF_UNIX"), reason="no Unix sockets here")


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    # Short paths: sun_path holds about 100 bytes, and pytest's tmp_path can be long.
    import tempfile

    with tempfile.TemporaryDirectory(prefix="rpcbd-") as directory:
        yield Path(directory)


def test_url_forms() -> None:
    assert unix_path("unix:///tmp/a.sock") == "/tmp/a.sock"
    assert unix_path("unix:relative.sock") == "relative.sock"
    assert unix_path("unix://@abstract") == "@abstract"
    with pytest.raises(ValueError, match="names no socket path"):
        unix_path("unix://")


def test_stale_file_is_replaced_and_removed_on_close(peer: ThreadedPeer, sock_dir: Path) -> None:
    path = sock_dir / "s.sock"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()  # the file stays, nobody listens: a server that died
    assert path.exists()
    listener = peer.listen(f"unix://{path}")
    assert listener.url == f"unix://{path}" and listener.address == str(path)
    with peer.connect(listener.url) as connection:
        assert connection.request.echo("hi") == "hi"
    listener.close()
    assert not path.exists()


def test_socket_in_use_is_not_stolen(peer: ThreadedPeer, sock_dir: Path) -> None:
    path = sock_dir / "busy.sock"
    first = peer.listen(f"unix://{path}")
    with pytest.raises(OSError) as info:
        peer.listen(f"unix://{path}")
    assert info.value.errno == errno.EADDRINUSE
    with peer.connect(first.url) as connection:
        assert connection.request.echo("still mine") == "still mine"


def test_other_files_are_never_removed(peer: ThreadedPeer, sock_dir: Path) -> None:
    path = sock_dir / "data.txt"
    path.write_text("precious")
    with pytest.raises(FileExistsError):
        peer.listen(f"unix://{path}")
    assert path.read_text() == "precious"


def test_mode_option(peer: ThreadedPeer, sock_dir: Path) -> None:
    path = sock_dir / "private.sock"
    peer.listen(f"unix://{path}", mode=0o600)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="abstract sockets are Linux only")
def test_abstract_namespace(peer: ThreadedPeer) -> None:
    listener = peer.listen(f"unix://@rpcbd-test-{os.getpid()}")
    with peer.connect(listener.url) as connection:
        assert connection.request.echo("abstract") == "abstract"

"""audioclf.download against a local HTTP server with Range support that the test can make cut a response short.

The server (``RangeServer``) is also used by test_sources.py to serve dataset archives.
"""

from __future__ import annotations

import hashlib
import http.server
import re
import threading
from pathlib import Path

import pytest

from audioclf.download import ChecksumError, DownloadError, download, part_path

PAYLOAD = bytes(range(256)) * 4096  # 1 MiB of known bytes


class _Handler(http.server.BaseHTTPRequestHandler):
    server: RangeServer.HTTPServer

    def log_message(self, *args) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:
        state = self.server.state
        state.requests.append((self.path, self.headers.get("Range")))
        data = state.files.get(self.path)
        if data is None:
            self.send_error(404, "no such file")
            return
        start = 0
        etag = state.etags.get(self.path)
        match = re.fullmatch(r"bytes=(\d+)-", self.headers.get("Range") or "")
        if_range = self.headers.get("If-Range")
        if match and state.honor_range and (if_range is None or if_range == etag):
            start = int(match.group(1))
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(data)}")
                self.send_header("Content-Length", "0")
                self.end_headers()
                return
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        body = data[start:]
        if etag:
            self.send_header("ETag", etag)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Accept-Ranges", "bytes")
        self.end_headers()
        cut = state.cuts.get(self.path, [])
        if cut:  # send only this many bytes, then drop the connection (one cut per entry)
            body = body[: cut.pop(0)]
            self.close_connection = True
        self.wfile.write(body)
        self.wfile.flush()


class RangeServer:
    """An http.server on 127.0.0.1 (ephemeral port) in a thread, serving in-memory files.

    ``cut(path, n, ...)``: the next responses for ``path`` send n bytes and close the connection.
    ``honor_range = False`` makes it ignore Range headers (answer 200 with the whole file).
    ``etags[path]``: sent as ETag; a Range request whose If-Range differs gets the whole file (200).
    """

    class HTTPServer(http.server.ThreadingHTTPServer):
        daemon_threads = True
        state: RangeServer

    def __init__(self) -> None:
        self.files: dict[str, bytes] = {}
        self.cuts: dict[str, list[int]] = {}
        self.etags: dict[str, str] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.honor_range = True
        self.httpd = self.HTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.state = self
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True)

    def __enter__(self) -> RangeServer:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def serve(self, path: str, data: bytes) -> str:
        self.files[path] = data
        return self.url(path)

    def cut(self, path: str, *sizes: int) -> None:
        self.cuts.setdefault(path, []).extend(sizes)


@pytest.fixture
def server():
    with RangeServer() as srv:
        yield srv


def md5(data: bytes) -> str:
    return hashlib.md5(data).hexdigest()


def fast(**kwargs):
    return {"progress": False, "retry_wait": 0.0, "timeout": 10.0, **kwargs}


# --- tests ---------------------------------------------------------------------------------------

def test_download_verifies_and_caches(server, tmp_path):
    url = server.serve("/data.bin", PAYLOAD)
    dest = tmp_path / "cache" / "data.bin"
    assert download(url, dest, md5=md5(PAYLOAD), **fast()) == dest
    assert dest.read_bytes() == PAYLOAD
    assert not part_path(dest).exists()
    # A second run uses the cache: no request at all.
    before = len(server.requests)
    download(url, dest, md5=md5(PAYLOAD), **fast())
    assert len(server.requests) == before


def test_cut_connection_resumes_with_range(server, tmp_path):
    url = server.serve("/big.tar.gz", PAYLOAD)
    server.cut("/big.tar.gz", 300_000, 200_000)  # two interruptions in a row
    dest = tmp_path / "big.tar.gz"
    download(url, dest, sha256=hashlib.sha256(PAYLOAD).hexdigest(), **fast())
    assert dest.read_bytes() == PAYLOAD
    assert [r for _, r in server.requests] == [None, "bytes=300000-", "bytes=500000-"]


def test_interrupted_run_keeps_the_partial_file_and_the_next_run_resumes(server, tmp_path):
    url = server.serve("/a.zip", PAYLOAD)
    server.cut("/a.zip", 100_000)
    dest = tmp_path / "a.zip"
    with pytest.raises(DownloadError, match=r"100000 bytes received are kept in .*a\.zip\.part"):
        download(url, dest, md5=md5(PAYLOAD), **fast(retries=0))
    assert not dest.exists(), "a half file must never carry the final name"
    assert part_path(dest).stat().st_size == 100_000
    download(url, dest, md5=md5(PAYLOAD), **fast(retries=0))
    assert dest.read_bytes() == PAYLOAD
    assert server.requests[-1] == ("/a.zip", "bytes=100000-")


def test_checksum_mismatch_deletes_the_partial_file_and_says_so(server, tmp_path):
    url = server.serve("/x.tar.gz", PAYLOAD)
    dest = tmp_path / "x.tar.gz"
    with pytest.raises(ChecksumError) as info:
        download(url, dest, md5="0" * 32, **fast())
    message = str(info.value)
    assert "md5" in message and md5(PAYLOAD) in message and "0" * 32 in message and "deleted" in message
    assert not dest.exists() and not part_path(dest).exists()


def test_server_ignoring_range_restarts_from_zero(server, tmp_path):
    url = server.serve("/f.bin", PAYLOAD)
    server.honor_range = False
    server.cut("/f.bin", 123_456)
    dest = tmp_path / "f.bin"
    download(url, dest, md5=md5(PAYLOAD), **fast())
    assert dest.read_bytes() == PAYLOAD


def test_file_changed_on_the_server_between_runs_is_fetched_whole(server, tmp_path):
    old, new = PAYLOAD, PAYLOAD[::-1]
    url = server.serve("/v.bin", old)
    server.etags["/v.bin"] = '"v1"'
    server.cut("/v.bin", 50_000)
    dest = tmp_path / "v.bin"
    with pytest.raises(DownloadError):
        download(url, dest, **fast(retries=0))
    server.serve("/v.bin", new)
    server.etags["/v.bin"] = '"v2"'
    download(url, dest, **fast())
    assert dest.read_bytes() == new, "bytes of two versions must never be spliced"
    assert server.requests[-1] == ("/v.bin", "bytes=50000-")  # asked to resume, got the whole new version


def test_complete_partial_file_is_finished_on_416(server, tmp_path):
    url = server.serve("/done.bin", PAYLOAD)
    dest = tmp_path / "done.bin"
    part_path(dest).write_bytes(PAYLOAD)  # a previous run received everything but stopped before the rename
    download(url, dest, md5=md5(PAYLOAD), **fast())
    assert dest.read_bytes() == PAYLOAD and server.requests == [("/done.bin", f"bytes={len(PAYLOAD)}-")]


def test_corrupt_cached_file_is_downloaded_again(server, tmp_path):
    url = server.serve("/c.bin", PAYLOAD)
    dest = tmp_path / "c.bin"
    dest.write_bytes(b"not the file")
    download(url, dest, md5=md5(PAYLOAD), **fast())
    assert dest.read_bytes() == PAYLOAD


def test_http_error_names_the_url(server, tmp_path):
    url = server.url("/missing.zip")
    with pytest.raises(DownloadError, match=r"missing\.zip.*HTTP 404"):
        download(url, tmp_path / "m.zip", **fast())
    assert not Path(tmp_path / "m.zip").exists()


def test_unreachable_server_gives_up_quickly_and_says_what_to_do(tmp_path):
    import socket

    with socket.socket() as sock:  # a port that was free a moment ago: connection refused
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(DownloadError) as info:
        download(f"http://127.0.0.1:{port}/UrbanSound8K.tar.gz", tmp_path / "u.tar.gz", **fast())
    message = str(info.value)
    assert "failed 3 times" in message and "--source PATH" in message and "kept" not in message
    assert not list(tmp_path.iterdir())

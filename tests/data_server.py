"""A local HTTP file server for the downloader tests: Range requests, and faults on demand.

    server = DataServer({"/raw/train.en.gz": b"..."})   # path -> bytes
    server.cut_after["/raw/train.en.gz"] = 100          # the next GET sends 100 bytes, then drops the connection
    server.stall["/raw/train.en.gz"] = 5.0              # the next GET waits 5 s before sending its body
    server.url                                          # http://127.0.0.1:PORT
    server.requests                                     # [(path, Range header or None)], in order
"""
from __future__ import annotations

import re
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class DataServer:
    def __init__(self, files: dict[str, bytes]) -> None:
        self.files = dict(files)
        self.cut_after: dict[str, int] = {}
        self.stall: dict[str, float] = {}
        self.requests: list[tuple[str, str | None]] = []
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def _handler(self):
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:  # quiet
                pass

            def do_GET(self) -> None:
                path, range_header = self.path, self.headers.get("Range")
                server.requests.append((path, range_header))
                data = server.files.get(path)
                if data is None:
                    self.send_response(404)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                start = 0
                match = re.fullmatch(r"bytes=(\d+)-", range_header or "")
                if match:
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
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Accept-Ranges", "bytes")
                self.end_headers()
                if path in server.stall:
                    time.sleep(server.stall.pop(path))
                cut = server.cut_after.pop(path, None)
                if cut is not None:  # promise everything, send part of it, hang up
                    self.wfile.write(body[:cut])
                    self.wfile.flush()
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                self.wfile.write(body)

        return Handler


def closed_port() -> int:
    """A local port nothing listens on (connections to it are refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]

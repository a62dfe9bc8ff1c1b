"""A tiny MJPEG-over-HTTP camera for tests: an IP camera we can unplug and plug back in."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np
from conftest import free_port


def _frames(w: int = 320, h: int = 240) -> list[bytes]:
    """A box crossing the view, then an empty street for as long: each loop is one motion start and end."""
    out = []
    for i in range(20):
        img = np.full((h, w, 3), 90, np.uint8)
        cv2.rectangle(img, (10 + i * 12, 80), (70 + i * 12, 160), (255, 255, 255), -1)
        out.append(cv2.imencode(".jpg", img)[1].tobytes())
    empty = cv2.imencode(".jpg", np.full((h, w, 3), 90, np.uint8))[1].tobytes()
    return out + [empty] * 20


class MjpegServer:
    def __init__(self, fps: float = 15.0) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/stream.mjpg"
        self._fps = fps
        self._jpegs = _frames()
        self._server: ThreadingHTTPServer | None = None
        self._conns: list[socket.socket] = []
        self._alive = threading.Event()

    def start(self) -> None:
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                outer._conns.append(self.connection)
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                i = 0
                try:
                    while outer._alive.is_set():
                        jpg = outer._jpegs[i % len(outer._jpegs)]
                        self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\n")
                        self.wfile.write(f"Content-Length: {len(jpg)}\r\n\r\n".encode() + jpg + b"\r\n")
                        i += 1
                        time.sleep(1 / outer._fps)
                except OSError:
                    pass

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        self._alive.set()
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._alive.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        for c in self._conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
        self._conns.clear()

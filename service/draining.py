"""A graceful stop behind a load balancer: uvicorn's server with a drain period in front of its shutdown.

uvicorn alone closes its listening socket on the first SIGTERM: a load balancer that still sends traffic
meets refused connections, connections waiting in the listen backlog are reset, and /readyz never says 503
first. DrainingServer, on the first SIGTERM or Ctrl+C:

1. marks the app draining at once (`on_drain`: /readyz answers 503) and adds `Connection: close` to every
   response, so that keep-alive clients reconnect, through the balancer, to another instance;
2. serves as usual, new connections too, for `drain_seconds`: time for the balancer to see the 503s and
   take the instance out;
3. then takes no new connection (Linux: the listener drops their SYNs, so a late client is refused once
   the listener closes instead of being reset after connecting), gives the connections just accepted a
   moment to send their request, and hands over to uvicorn's shutdown: close the listener, finish the
   requests in flight, then the lifespan answers what is queued.

Without a drain period (drain_seconds 0, or a signal before the app has started) the app is marked
draining and uvicorn's shutdown begins at once. A second signal ends the drain at once; a Ctrl+C during
uvicorn's shutdown forces it, as in uvicorn. A graceful stop exits with status 0 (uvicorn alone re-raises
the signal once it has shut down).
"""

from __future__ import annotations

import asyncio
import ctypes
import logging
import socket
import struct
import sys
import time
from collections.abc import Callable
from types import FrameType

import uvicorn

log = logging.getLogger("uvicorn.error")  # beside uvicorn's own lines about the shutdown

CONNECTION_CLOSE = (b"connection", b"close")
# After the listener stops taking connections: for those accepted just before to send their request (a
# client sends it as soon as it is connected) before uvicorn closes the connections without one.
SETTLE_SECONDS = 0.5
_SO_ATTACH_FILTER = 26  # Linux, <asm-generic/socket.h>
_DROP_EVERY_PACKET = struct.pack("HBBI", 0x06, 0, 0, 0)  # classic BPF, one instruction: BPF_RET | BPF_K, keep 0 bytes


class DrainingServer(uvicorn.Server):
    def __init__(self, config: uvicorn.Config, drain_seconds: float, on_drain: Callable[[], None]) -> None:
        super().__init__(config)
        self.drain_seconds = drain_seconds
        self.on_drain = on_drain
        self.drain_ends: float | None = None  # monotonic; set by the first signal when there is a drain period
        self._drain: asyncio.Task[None] | None = None

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """A signal handler: only flags and headers here; the drain itself runs on the event loop (on_tick)."""
        if self.should_exit:
            super().handle_exit(sig, frame)  # uvicorn's: a Ctrl+C during its shutdown forces it
            return
        first = self.drain_ends is None
        if first:
            self.on_drain()  # not ready from now on, whatever follows
        if first and self.started and self.drain_seconds > 0:
            self.drain_ends = time.monotonic() + self.drain_seconds
            # uvicorn writes its default headers into every response, and closes the connection after one
            # that says `Connection: close`; on_tick rebuilds them from config.encoded_headers each second.
            self.config.encoded_headers = [*self.config.encoded_headers, CONNECTION_CLOSE]
            self.server_state.default_headers = [*self.server_state.default_headers, CONNECTION_CLOSE]
        else:
            self.should_exit = True  # no drain (still starting, drain_seconds 0) or a second signal: stop now

    async def on_tick(self, counter: int) -> bool:
        if self.drain_ends is not None and self._drain is None:
            self._drain = asyncio.create_task(self._drain_then_exit(self.drain_ends))
        return await super().on_tick(counter)

    async def _drain_then_exit(self, ends: float) -> None:
        try:
            log.info("Draining for %g s: /readyz answers 503, requests are still served (signal again to stop now)",
                     self.drain_seconds)  # fmt: skip
            await asyncio.sleep(ends - time.monotonic())
            if self.should_exit:  # a second signal
                return
            listeners = [listener for server in self.servers for listener in server.sockets]
            refusing = all([refuse_new_connections(listener) for listener in listeners])
            log.info("Drain over: %s; finishing the requests in flight",
                     "no new connections" if refusing else "closing the listener")  # fmt: skip
            await asyncio.sleep(SETTLE_SECONDS)
        finally:
            self.should_exit = True  # whatever happened above, the drain ends


def refuse_new_connections(listener: socket.socket) -> bool:
    """Linux: `listener` drops new SYNs, the connections already established still wait for accept().

    A client whose SYN is dropped retries it and is refused once the listener is closed; without this, a
    connection completed in the backlog when the listener closes is reset after the client has sent its
    request. False where the filter cannot be attached (another system): the listener simply closes.
    """
    if sys.platform != "linux":
        return False
    program = ctypes.create_string_buffer(_DROP_EVERY_PACKET)
    struct_sock_fprog = struct.pack("HP", 1, ctypes.addressof(program))  # length, pointer: the kernel copies it
    try:
        listener.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, struct_sock_fprog)
    except OSError as e:
        log.warning("cannot stop the listener taking new connections (%s): it will simply close", e)
        return False
    return True

"""The model's system-call surface, `Kernel`, in layers that each use only those below:
state.py <- connections.py <- handshakes.py <- datagrams.py <- sockets.py (docs/design.md, The model)."""

from model.kernel.sockets import Kernel

__all__ = ["Kernel"]

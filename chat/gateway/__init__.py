"""The socket side of chat: the WebSocket gateway at ``/ws/v1/`` (docs/protocol.md).

- ``handshake``: Origin and credentials, before the consumer accepts.
- ``consumer``: one per connection; socket I/O only (accept and close, decoding, the way out).
- ``session``: the connection's protocol state (which rooms it reads, from which seq) and its
  client-frame handlers.
- ``heartbeats``: closes connections silent for three heartbeats.
- ``socket_writer``: what the gateway reaches of daphne's WebSocket protocol beyond ASGI.
- ``threads``: database work off the event loop.
"""

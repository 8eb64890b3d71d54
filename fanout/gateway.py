# TRANSITIONAL: removed once the chat gateway package calls fanout.transport directly.
from fanout.connections import LocalConnections as Gateway  # noqa: F401
from fanout.redis.registry import online_anywhere  # noqa: F401
from fanout.transport import current


def gateway_for_running_loop():  # type: ignore[no-untyped-def]
    return current().connections()


def current_gateway():  # type: ignore[no-untyped-def]
    return current().current_connections()

# TRANSITIONAL: removed once the chat gateway package calls fanout.transport directly.
from fanout.transport import current, start_with_server  # noqa: F401


def hub_for_running_loop():  # type: ignore[no-untyped-def]
    return current().connections()

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.events import ChatAccessFrames, ChatRoomStore
        from communities import events as access_events
        from fanout.hooks import hooks

        access_events.hooks.register(ChatAccessFrames())
        hooks.register(store=ChatRoomStore())
        _check_rates()


def _check_rates() -> None:
    """A malformed ``SPHERE_RATE_*`` stops the process at start-up, naming the setting, rather
    than failing the first request that counts it."""
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    from chat.services.limits import parse_rate

    rates = {"SPHERE_RATE_MESSAGES": settings.MESSAGE_RATE}
    rates.update({f"SPHERE_RATE_{act.upper()}S": rate for act, rate in settings.ACT_RATES.items()})
    for name, rate in rates.items():
        try:
            count, period = parse_rate(rate)
        except ValueError:
            count, period = 0, 0
        if count < 1 or period < 1:
            raise ImproperlyConfigured(f"{name}={rate!r} is not a rate such as 10/10s or 30/min")

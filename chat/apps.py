from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.events import events_between, mark_published, readers_at_version, unpublished
        from chat.selectors import unread_for_room
        from communities import events as access_events
        from fanout.interfaces import register

        access_events.hooks.unread_for_room = unread_for_room
        register(
            readers=readers_at_version,
            events_between=events_between,
            unpublished=unpublished,
            mark_published=mark_published,
        )

from django.apps import AppConfig


class ChatConfig(AppConfig):
    name = "chat"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from chat.events import ChatRoomStore
        from chat.selectors import unread_for_room
        from communities import events as access_events
        from fanout.hooks import hooks

        access_events.hooks.unread_for_room = unread_for_room
        hooks.register(store=ChatRoomStore())

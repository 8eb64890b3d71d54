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

from django.apps import AppConfig


class ReachConfig(AppConfig):
    name = "reach"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from fanout.hooks import hooks
        from reach.store import LinkReach

        hooks.register(links=LinkReach())

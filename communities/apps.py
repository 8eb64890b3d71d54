from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CommunitiesConfig(AppConfig):
    name = "communities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from communities.services.desk import moderators_group_sync

        # After every app's migrations (their permissions exist by the last of them).
        post_migrate.connect(moderators_group_sync, dispatch_uid="sphere-moderators-group")

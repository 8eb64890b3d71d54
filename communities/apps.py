from django.apps import AppConfig
from django.db.models.signals import post_delete, post_migrate, post_save


class CommunitiesConfig(AppConfig):
    name = "communities"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django.contrib.auth import get_user_model

        from communities.services.accounts import user_deleted, user_saved
        from communities.services.desk import moderators_group_sync

        # After every app's migrations (their permissions exist by the last of them).
        post_migrate.connect(moderators_group_sync, dispatch_uid="sphere-moderators-group")
        # A disabled account's sockets close, however it was disabled.
        post_save.connect(user_saved, sender=get_user_model(), dispatch_uid="sphere-user-saved")
        post_delete.connect(
            user_deleted, sender=get_user_model(), dispatch_uid="sphere-user-deleted"
        )

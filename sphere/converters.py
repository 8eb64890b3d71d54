"""Path converters of the API, registered once for every app's URLs."""

from django.urls import register_converter


class IdConverter:
    """Database ids: 1 to 18 digits, so that no path can overflow a 64-bit column."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


class InviteCodeConverter:
    """Invite codes as issued: URL-safe base64, at most the column's 32 characters."""

    regex = "[A-Za-z0-9_-]{1,32}"

    def to_python(self, value: str) -> str:
        return value

    def to_url(self, value: str) -> str:
        return value


register_converter(IdConverter, "id")
register_converter(InviteCodeConverter, "code")

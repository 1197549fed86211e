"""The ``token`` plugin: verifies the caller's access token and yields the principal."""

from plugins.token.plugin import TokenPlugin

__all__ = ["TokenPlugin"]

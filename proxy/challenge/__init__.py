"""Challenge parsers, one module per DRM: untrusted bytes in, :class:`~proxy.model.ChallengeInfo`
out, or ``ProxyError(CHALLENGE_INVALID)`` with a short reason. Never another exception."""

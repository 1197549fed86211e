"""The access rules: each one a built-in plugin on ``proxy_authorize``, configured under ``[access]``.

| plugin | module | section | denies with |
| --- | --- | --- | --- |
| ``access_ip`` | :mod:`plugins.access.ip` | ``[access.ip]`` | IP_NOT_ALLOWED |
| ``access_device`` | :mod:`plugins.access.device` | ``[access.device]`` | DEVICE_NOT_ALLOWED |
| ``access_entitlement`` | :mod:`plugins.access.entitlement` | ``[access.entitlement]`` | NOT_ENTITLED |
| ``access_replay`` | :mod:`plugins.access.replay` | ``[access.replay]`` | TOKEN_REPLAYED |
| ``access_concurrency`` | :mod:`plugins.access.concurrency` | ``[access.concurrency]`` | CONCURRENCY_LIMIT_EXCEEDED |
| ``access_rate_limit`` | :mod:`plugins.access.ratelimit` | ``[access.rate_limit]`` | RATE_LIMITED |
| ``access_state`` | :mod:`plugins.access.state` | ``[access.state]`` | STATE_UNAVAILABLE |

The three state rules (replay, concurrency, rate limits) only queue what they
need; ``access_state`` runs last and settles the whole queue in one store call
(one Redis round trip), so a request another rule refuses spends nothing.
"""

"""``license-proxy init``: a commented starter config for production.

The embedded default is for a laptop (loopback, a development signing key and
ClearKey seed). A production config replaces it whole, so ``init`` writes one
to start from: every section a platform team needs, what to change marked
``CHANGE``, secrets as ``env:`` references, no development key. It passes
``check-config`` once the referenced environment variables are set.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

#: The variables the starter's secrets refer to (``check-config`` needs them set).
STARTER_VARIABLES = ("AXINOM_COM_KEY",)

STARTER = """\
# license-proxy configuration: a production starter written by `license-proxy init`.
#
# Lines marked CHANGE hold placeholders. Check the file before every deploy:
#     license-proxy check-config license-proxy.toml
# and run it with:
#     license-proxy serve --config license-proxy.toml
# Every key is described in docs/configuration.md. Secrets are references,
# never values: env:NAME (an environment variable) or file:PATH (a mounted file,
# relative to this file). There is no development key here: tokens come from
# your own identity provider.

# -- listeners and limits -----------------------------------------------------

[server]
# The load balancers in front: their X-Forwarded-For (or Forwarded), X-Request-Id
# and gRPC client fields are believed, and they are exempt from the per-client
# connection cap. Nobody is trusted by default.
trusted_proxies = []                  # CHANGE, e.g. ["10.0.0.0/8"]
# On SIGTERM: report not-ready this long first, so the load balancer stops
# sending; then give requests in flight this long to finish. The process exits
# within shutdown_delay + shutdown_grace + 2 s (docs/operations.md, Reliability).
shutdown_delay = "5s"
shutdown_grace = "10s"
# A request's headers must arrive within header_timeout of its first byte; one
# client address may hold at most max_connections_per_client HTTP connections.
header_timeout = "5s"
max_connections_per_client = 128

[server.grpc]
host = "0.0.0.0"
port = 50051

[server.http]
host = "0.0.0.0"
port = 8080

[server.cors]
# The web origins of your players (browsers call the HTTP bridge cross-origin).
allow_origins = ["https://player.example.com"]   # CHANGE

[log]
level = "INFO"
format = "json"                       # one JSON object per line, request id in each

# -- who may ask: your identity provider ---------------------------------------

[[auth.issuers]]
issuer = "https://sts.example.com/"   # CHANGE: the exact `iss` of your tokens
audiences = ["license-proxy"]         # CHANGE: the `aud` your tokens carry
algorithms = ["RS256", "ES256"]
# Keys come from the provider's discovery document and rotate without a restart.
openid_configuration = "https://sts.example.com/.well-known/openid-configuration"   # CHANGE
# Or name the key set directly:  jwks_uri = "https://sts.example.com/jwks.json"
# Or a shared secret (HS256):    [[auth.issuers.keys]]  secret = "env:STS_SECRET"
# Players renew licenses after short tokens expired: accept a renewal of a session
# this proxy licensed for this long past the token's exp (docs/auth.md):
# renewal_grace = "4h"

# -- access rules (docs/access.md); each is off until its section is present ----

# [access.replay]
# max_uses = 1                        # single-use tokens (needs `jti`)
# retry_window = "30s"                # a player's retry of the same request is the same use
#
# [access.concurrency]
# limit = 3                           # live playbacks per subject
# mode = "block_new"                  # or "stop_oldest": the oldest stops at its next renewal
# heartbeat_timeout = "6m"            # a playback lapses this long after its last request
#
# [access.rate_limit]
# subject = { requests = 30, per = "1m" }
#
# With more than one proxy instance, share their counts in Redis:
# [access.state]
# store = "redis://redis.internal:6379/0"

# -- policies (docs/policies.md) -----------------------------------------------

[[policies]]
name = "default"
backends = ["axinom"]

[policies.license]
can_play = true
persistent = false
license_duration = "1d"

# -- backends: your DRM vendor accounts (docs/vendors.md) ----------------------

[backends.axinom]
vendor = "axinom"                     # CHANGE to your vendor: verimatrix, azure, widevine_cloud
com_key_id = "00000000-0000-0000-0000-000000000000"   # CHANGE: from the Axinom portal
com_key = "env:AXINOM_COM_KEY"        # base64 of the 32-byte communication key
"""


def cmd_init(args: argparse.Namespace) -> int:
    """Write the starter config to a file (never over an existing one unless --force)."""
    if args.path == "-":
        sys.stdout.write(STARTER)
        return 0
    path = Path(args.path)
    if path.exists() and not args.force:
        print(f"{path} exists; pass --force to replace it", file=sys.stderr)
        return 1
    try:
        path.write_text(STARTER, encoding="utf-8")
    except OSError as exc:
        print(f"{path}: cannot write: {exc.strerror}", file=sys.stderr)
        return 1
    print(
        f"wrote {path}: change the lines marked CHANGE, set "
        f"{' and '.join(STARTER_VARIABLES)}, then run: license-proxy check-config {path}",
        file=sys.stderr,
    )
    return 0


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The ``init`` subcommand."""
    init = sub.add_parser("init", help="write a commented starter config for production")
    init.add_argument(
        "path",
        nargs="?",
        default="license-proxy.toml",
        help="where to write it (default: license-proxy.toml; - for standard output)",
    )
    init.add_argument("--force", action="store_true", help="replace the file if it exists")
    init.set_defaults(run=cmd_init)


__all__ = ["STARTER", "STARTER_VARIABLES", "add_parser", "cmd_init"]

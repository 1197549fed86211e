"""The ``license-proxy`` command: serve, check-config, init, plugins, token, inspect, explain,
challenge."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from proxy import cli_init as init_command
from proxy import event_loop
from proxy.builder import build_pipeline, load_config
from proxy.cli_challenge import add_challenge_parser
from proxy.errors import ConfigError
from proxy.hookspecs import HOOKS
from proxy.logs import setup_logging
from proxy.overrides import listener_overrides, port, with_overrides
from proxy.pipeline import Pipeline


def _print_errors(exc: ConfigError, source: str) -> None:
    print(f"{source}: {len(exc.errors)} error(s)", file=sys.stderr)
    for path, message in exc.errors:
        print(f"  {path}: {message}", file=sys.stderr)


def _build(config: str | None, overrides: dict[str, Any] | None = None) -> Pipeline:
    raw, base_dir = load_config(config)
    return build_pipeline(with_overrides(raw, overrides or {}), base_dir=base_dir)


def _workers(text: str) -> int | str:
    if text == "auto":
        return text
    try:
        count = int(text)
    except ValueError:
        count = 0
    if count < 1:
        raise argparse.ArgumentTypeError("a number of workers (1 or more), or auto")
    return count


def cmd_serve(args: argparse.Namespace) -> int:
    """Run both listeners until SIGTERM (in worker processes when asked for)."""
    from proxy.server import ProxyApp
    from proxy.worker import build

    overrides = listener_overrides(
        host=args.host,
        grpc_port=args.grpc_port,
        http_port=args.http_port,
        admin_port=args.admin_port,
    )
    if args.sandbox:
        if args.workers not in (None, 1):
            print("--sandbox serves in one process: leave --workers out", file=sys.stderr)
            return 2
        from proxy.testing.sandbox import serve_sandbox

        return serve_sandbox(args.config, overrides)
    source = args.config or "embedded default"
    if args.workers is not None:
        overrides.setdefault("server", {})["workers"] = args.workers
    try:
        pipeline = build(args.config, overrides)
    except ConfigError as exc:
        _print_errors(exc, source)
        return 2
    setup_logging(pipeline.log.level, pipeline.log.format)
    for path, message in pipeline.warnings:
        print(f"warning: {path}: {message}", file=sys.stderr)

    if pipeline.server.worker_count > 1:
        from proxy.supervisor import Supervisor

        supervisor = Supervisor(
            args.config, overrides, pipeline, lambda: build(args.config, overrides)
        )
        del pipeline  # validated only: each worker builds and serves its own
        try:
            return asyncio.run(supervisor.run())
        except OSError as exc:
            print(f"cannot start: {exc}", file=sys.stderr)
            return 1

    def rebuild() -> Pipeline:
        fresh = build(args.config, overrides)
        setup_logging(fresh.log.level, fresh.log.format)
        return fresh

    app = ProxyApp(pipeline, rebuild=rebuild, access_log=pipeline.log.access)
    try:
        event_loop.run(app.serve_forever(), pipeline.server.event_loop)
    except OSError as exc:
        print(f"cannot start: {exc}", file=sys.stderr)
        return 1
    return 0


def cmd_check_config(args: argparse.Namespace) -> int:
    """Validate a config file and print every error with its key path."""
    try:
        pipeline = _build(args.file)
    except ConfigError as exc:
        _print_errors(exc, args.file)
        return 1
    for path, message in pipeline.warnings:
        print(f"warning: {path}: {message}")
    print(
        f"{args.file}: OK ({len(pipeline.host.infos)} plugins, {len(pipeline.backends)} backends)"
    )
    store = pipeline.services.state
    where = "this process only" if store.mode == "memory" else store.describe()
    print(f"access.state: {store.mode} mode ({where})")
    choice = pipeline.server.event_loop
    print(f"server.event_loop: {choice} ({event_loop.loop_name(choice)} here)")
    return 0


def cmd_plugins(args: argparse.Namespace) -> int:
    """List loaded plugins, their hooks and where they came from."""
    try:
        pipeline = _build(args.config)
    except ConfigError as exc:
        _print_errors(exc, args.config or "embedded default")
        return 1
    for info in pipeline.host.infos:
        idle = "  [idle: nothing configured]" if info.idle else ""
        print(f"{info.name}  ({info.source}){idle}")
        for hook in info.hooks:
            print(f"    {hook}")
    print("\ncalling order (idle plugins left out):")
    for hook in HOOKS:
        print(f"  {hook}: {', '.join(pipeline.host.implementations(hook)) or '-'}")
    _print_vendors(args.config)
    return 0


def _print_vendors(config: str | None) -> None:
    """The vendors the plugins registered: what ``[backends.NAME] vendor`` may name."""
    from proxy.builder import installed_vendors

    raw, base_dir = load_config(config)
    registry = installed_vendors(raw, base_dir=base_dir)
    print("vendors:")
    for name, spec in sorted(registry.specs.items()):
        drms = ", ".join(sorted(drm.value for drm in spec.drm_systems))
        extras = ["sandbox"] if spec.sandbox is not None else []
        extras += [f"fairplay convention {c.name}" for c in spec.fairplay_conventions]
        more = f"; {', '.join(extras)}" if extras else ""
        print(f"  {name}  ({drms}{more}): {spec.description}")


def _claim_value(text: str) -> Any:
    try:
        return json.loads(text)
    except ValueError:
        return text


def cmd_token(args: argparse.Namespace) -> int:
    """Print a signed test token (alone, on standard output)."""
    import jwt

    from proxy.secrets import resolve_secret
    from proxy.tokens import default_algorithm, development_token, mint

    claims: dict[str, Any] = {}
    for item in args.claims:
        name, sep, value = item.partition("=")
        if not sep or not name:
            print(f"claims are name=value pairs, not {item!r}", file=sys.stderr)
            return 2
        claims[name] = _claim_value(value)
    now = int(time.time())
    if args.alg is not None and args.alg.lower() == "none":
        print("--alg none: unsigned tokens are refused by every issuer", file=sys.stderr)
        return 2
    if args.key is None:
        if args.alg not in (None, "HS256"):
            print(
                f"--alg {args.alg} needs --key: the development key signs HS256 only",
                file=sys.stderr,
            )
            return 2
        named = {"iss": args.iss, "aud": args.aud}
        claims = {**{k: v for k, v in named.items() if v is not None}, **claims}
        print(development_token(claims, ttl=args.ttl, now=now, kid=args.kid))
        return 0
    try:
        material = resolve_secret(args.key, Path.cwd()).value
    except ValueError as exc:
        print(f"--key: {exc}", file=sys.stderr)
        return 2
    key: Any = material
    if material.lstrip().startswith(b"-----BEGIN"):
        from cryptography.hazmat.primitives.serialization import load_pem_private_key

        key = load_pem_private_key(material, password=None)
    body = {"iat": now, "exp": now + args.ttl}
    if args.iss:
        body["iss"] = args.iss
    if args.aud:
        body["aud"] = args.aud
    body.update(claims)
    algorithm = args.alg or default_algorithm(key)
    try:
        print(mint(body, key, algorithm=algorithm, kid=args.kid))
    except (jwt.exceptions.PyJWTError, NotImplementedError, TypeError, ValueError) as exc:
        print(f"--alg {algorithm} can't sign with this --key: {exc}", file=sys.stderr)
        return 2
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    """Print what the challenge in a file holds, read by the configured inspectors."""
    import base64
    import binascii

    from proxy.challenge.report import describe, render_text
    from proxy.encoding import parse_key_id
    from proxy.errors import ProxyError
    from proxy.model import DrmSystem, LicenseRequest

    try:
        body = sys.stdin.buffer.read() if args.file == "-" else Path(args.file).read_bytes()
    except OSError as exc:
        print(f"{args.file}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    if args.base64:
        try:
            body = base64.b64decode(b"".join(body.split()), validate=True)
        except (binascii.Error, ValueError):
            print(f"{args.file}: not base64", file=sys.stderr)
            return 2
    try:
        key_ids = tuple(parse_key_id(k) for k in args.key_id)
    except ValueError as exc:
        print(f"--key-id: {exc}", file=sys.stderr)
        return 2
    try:
        pipeline = _build(args.config)
    except ConfigError as exc:
        _print_errors(exc, args.config or "embedded default")
        return 2
    request = LicenseRequest(
        challenge=body,
        drm_system=DrmSystem(args.drm) if args.drm else None,
        content_id=args.content_id,
        key_ids=key_ids,
        transport="cli",
        request_id="cli",
    )
    try:
        info = asyncio.run(pipeline.inspect_only(request))
    except ProxyError as error:
        if args.json:
            print(json.dumps({"reason": error.reason.value, "detail": error.detail}))
        else:
            print(f"{error.reason.value}: {error.detail}", file=sys.stderr)
        return 1
    summary = describe(info)
    print(json.dumps(summary, indent=2) if args.json else render_text(summary))
    return 0


def _read_token(value: str) -> str:
    return sys.stdin.readline().strip() if value == "-" else value


def cmd_explain(args: argparse.Namespace) -> int:
    """Run one dry-run request in-process and print every decision and the elected policy."""
    from proxy.builder import build_pipeline
    from proxy.encoding import parse_key_id
    from proxy.explain import ContextKeeper, SyntheticInspector, explain, explanation_request
    from proxy.model import DrmSystem

    drm = DrmSystem(args.drm)
    try:
        key_ids = [parse_key_id(k) for k in args.key_id]
    except ValueError as exc:
        print(f"--key-id: {exc}", file=sys.stderr)
        return 2
    challenge = None
    if args.challenge is not None:
        try:
            challenge = Path(args.challenge).read_bytes()
        except OSError as exc:
            print(f"--challenge: cannot read {args.challenge}: {exc.strerror}", file=sys.stderr)
            return 2
    keeper = ContextKeeper()
    helpers: list[Any] = [("explain_keeper", keeper)]
    if challenge is None:
        helpers.append(("explain", SyntheticInspector(drm, key_ids, args.content_id)))
    try:
        raw, base_dir = load_config(args.config)
        pipeline = build_pipeline(raw, base_dir=base_dir, plugins=helpers)
    except ConfigError as exc:
        _print_errors(exc, args.config or "embedded default")
        return 2
    request = explanation_request(
        drm=drm,
        token=_read_token(args.token),
        content_id=args.content_id,
        key_ids=key_ids,
        challenge=challenge,
        client_ip=args.client_ip,
        device_id=args.device_id,
    )
    explanation = asyncio.run(explain(pipeline, keeper, request))
    if args.json:
        print(json.dumps(explanation.to_dict(), indent=2, sort_keys=True))
    else:
        print(explanation.render())
    return 1 if explanation.error is not None else 0


def make_parser() -> argparse.ArgumentParser:
    """The argument parser with every subcommand."""
    parser = argparse.ArgumentParser(
        prog="license-proxy", description="A DRM license proxy over gRPC and HTTP."
    )
    parser.add_argument(
        "--version",
        action="version",
        version=f"%(prog)s {_version()}",
        help="print the version and exit",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the gRPC and HTTP listeners")
    serve.add_argument("--config", help="TOML config file (default: the embedded default)")
    serve.add_argument(
        "--workers",
        type=_workers,
        help="worker processes sharing both ports: a number, or auto for one per CPU "
        "(default: server.workers, 1)",
    )
    serve.add_argument(
        "--host", help="listen on this address, both listeners (overrides server.*.host)"
    )
    serve.add_argument(
        "--grpc-port", type=port, help="the gRPC listener's port (overrides server.grpc.port)"
    )
    serve.add_argument(
        "--http-port", type=port, help="the HTTP listener's port (overrides server.http.port)"
    )
    serve.add_argument(
        "--admin-port",
        type=port,
        help="the admin listener's port, when [admin] configures one (overrides admin.port)",
    )
    serve.add_argument(
        "--sandbox",
        action="store_true",
        help="also run every vendor emulator on loopback, one backend and policy each",
    )
    serve.set_defaults(run=cmd_serve)

    check = sub.add_parser("check-config", help="validate a config file")
    check.add_argument("file", help="the TOML config file to check")
    check.set_defaults(run=cmd_check_config)

    init_command.add_parser(sub)

    plugins = sub.add_parser("plugins", help="list loaded plugins and their hooks")
    plugins.add_argument("--config", help="TOML config file (default: the embedded default)")
    plugins.set_defaults(run=cmd_plugins)

    token = sub.add_parser("token", help="mint a test token (development key by default)")
    token.add_argument("claims", nargs="*", help="extra claims as name=value (JSON values allowed)")
    token.add_argument("--ttl", type=int, default=3600, help="lifetime in seconds")
    token.add_argument("--key", help="signing key by reference (env:, file:, hex:) instead")
    token.add_argument(
        "--alg",
        help="signing algorithm (default: HS256, or the --key's own: RS256, ES256, EdDSA); "
        "the development key signs HS256 only, and none is refused",
    )
    token.add_argument("--kid", help="the key id (kid) in the token's header")
    token.add_argument("--iss", help="the issuer claim (default: the development issuer)")
    token.add_argument("--aud", help="the audience claim (default: the development audience)")
    token.set_defaults(run=cmd_token)

    inspect = sub.add_parser("inspect", help="print what a license challenge holds")
    inspect.add_argument("file", help="the challenge bytes (- for standard input)")
    inspect.add_argument(
        "--drm",
        choices=["widevine", "playready", "fairplay", "clearkey"],
        help="the DRM system (default: detect it)",
    )
    inspect.add_argument("--content-id", help="the request's content id (FairPlay: skd:// URI)")
    inspect.add_argument(
        "--key-id", action="append", default=[], help="a key id hint to check (repeatable)"
    )
    inspect.add_argument("--base64", action="store_true", help="the file holds base64 text")
    inspect.add_argument("--json", action="store_true", help="print JSON")
    inspect.add_argument("--config", help="TOML config file (default: the embedded default)")
    inspect.set_defaults(run=cmd_inspect)

    explain = sub.add_parser(
        "explain", help="dry-run one request and show every decision and the elected policy"
    )
    explain.add_argument("--config", help="TOML config file (default: the embedded default)")
    explain.add_argument("--token", required=True, help="the access token ('-' reads stdin)")
    explain.add_argument(
        "--drm",
        required=True,
        choices=["widevine", "playready", "fairplay", "clearkey"],
        help="the DRM system of the request",
    )
    explain.add_argument("--content-id", help="the request's content id")
    explain.add_argument(
        "--key-id", action="append", default=[], help="a requested key id (repeatable)"
    )
    explain.add_argument(
        "--challenge", help="a challenge file (default: a synthetic one for the DRM)"
    )
    explain.add_argument("--client-ip", help="the end user's address, as a trusted caller says")
    explain.add_argument("--device-id", help="the end user's device id, as a trusted caller says")
    explain.add_argument("--json", action="store_true", help="print JSON instead of text")
    explain.set_defaults(run=cmd_explain)

    add_challenge_parser(sub)

    return parser


def _version() -> str:
    try:
        return metadata.version("drm-license-proxy")
    except metadata.PackageNotFoundError:
        return "unknown (not installed)"


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``license-proxy`` command."""
    args = make_parser().parse_args(argv)
    try:
        code: int = args.run(args)
        sys.stdout.flush()
    except BrokenPipeError:
        # The reader went away (`license-proxy plugins | head -1`): nothing to report, and
        # the interpreter's own flush at exit must not hit the closed pipe again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code


if __name__ == "__main__":
    sys.exit(main())

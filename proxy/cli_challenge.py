"""``license-proxy challenge``: a synthetic, well-formed challenge for trying a backend.

Built with :mod:`proxy.challenge.samples` (the builders the tests use), so the sandbox
(``license-proxy serve --sandbox``) can be tried for every DRM with curl::

    license-proxy challenge --drm widevine --kid 4060a865-8878-4267-9cbf-91ae5bae1e72 \\
        --out challenge.bin
    curl --data-binary @challenge.bin -H "Authorization: Bearer $(license-proxy token)" \\
        http://127.0.0.1:8080/v1/licenses/widevine

Nothing in it comes from a real CDM: signatures and encrypted parts are stand-in bytes,
so a vendor that checks them (a real license service, not an emulator) refuses it.
"""

from __future__ import annotations

import argparse
import base64
import sys
from pathlib import Path

from proxy.challenge import samples
from proxy.challenge.widevine import SERVICE_CERTIFICATE_REQUEST
from proxy.drm import DrmSystem
from proxy.encoding import parse_key_id

TYPES = ("new", "renewal", "release", "service-certificate")
_WIDEVINE_TYPES = {"new": 1, "renewal": 2, "release": 3}


class ChallengeUsageError(ValueError):
    """The options do not describe a challenge this DRM has."""


def build_challenge(
    drm: DrmSystem,
    key_ids: list[bytes],
    *,
    request_type: str = "new",
    content_id: str | None = None,
    fairplay_framing: str = "raw",
    android_legacy: bool = False,
) -> bytes:
    """The challenge bytes for ``drm``; :class:`ChallengeUsageError` when the options
    ask for something the DRM's challenges can't say."""
    if request_type == "service-certificate" and drm is not DrmSystem.WIDEVINE:
        raise ChallengeUsageError("only Widevine has service-certificate requests")
    if android_legacy and drm is not DrmSystem.CLEARKEY:
        raise ChallengeUsageError("--android-legacy is a ClearKey option")
    if drm is DrmSystem.WIDEVINE:
        return _widevine(key_ids, request_type, content_id)
    if drm is DrmSystem.FAIRPLAY:
        if request_type != "new":
            raise ChallengeUsageError("a FairPlay SPC asks for a new license only")
        spc = samples.fairplay_spc()
        if fairplay_framing == "form":
            return samples.fairplay_form(spc, content_id)
        if fairplay_framing == "json":
            return samples.fairplay_json(spc, **({"assetId": content_id} if content_id else {}))
        return spc
    if not key_ids:
        raise ChallengeUsageError(f"a {drm.value} challenge names its key ids: give --kid")
    if drm is DrmSystem.PLAYREADY:
        if request_type != "new":
            raise ChallengeUsageError("the PlayReady builder writes license acquisitions only")
        return samples.playready_challenge(samples.wrm_header("4.3.0.0", key_ids))
    if request_type not in ("new", "release"):
        raise ChallengeUsageError("a ClearKey message is a license request or a release")
    return samples.clearkey_request(
        *key_ids,
        session_type="temporary" if request_type == "new" else None,
        standard_base64=android_legacy,
    )


def _widevine(key_ids: list[bytes], request_type: str, content_id: str | None) -> bytes:
    if request_type == "service-certificate":
        return SERVICE_CERTIFICATE_REQUEST
    if request_type != "new":
        # Renewals and releases name the license they continue, not key ids.
        return samples.widevine_license_request(
            form="existing_license", request_type=_WIDEVINE_TYPES[request_type]
        )
    if not key_ids:
        raise ChallengeUsageError("a new Widevine license request names key ids: give --kid")
    return samples.widevine_license_request(
        key_ids=key_ids, content_id=content_id.encode() if content_id else None
    )


def cmd_challenge(args: argparse.Namespace) -> int:
    """Write a synthetic challenge to ``--out`` or standard output."""
    drm = DrmSystem(args.drm)
    try:
        key_ids = [parse_key_id(k) for k in args.kid]
        body = build_challenge(
            drm,
            key_ids,
            request_type=args.type,
            content_id=args.content_id,
            fairplay_framing=args.fairplay_framing,
            android_legacy=args.android_legacy,
        )
    except ValueError as exc:
        print(f"license-proxy challenge: {exc}", file=sys.stderr)
        return 2
    data = base64.b64encode(body) + b"\n" if args.base64 else body
    if args.out:
        try:
            Path(args.out).write_bytes(data)
        except OSError as exc:
            print(f"--out: cannot write {args.out}: {exc.strerror}", file=sys.stderr)
            return 2
    elif sys.stdout.isatty() and not args.base64:
        print("the challenge is binary: give --out FILE or --base64", file=sys.stderr)
        return 2
    else:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    print(_hint(drm, args), file=sys.stderr)
    return 0


def _hint(drm: DrmSystem, args: argparse.Namespace) -> str:
    source = f"@{args.out}" if args.out else "@challenge.bin"
    query = ""
    if drm is DrmSystem.FAIRPLAY:
        query = "?content_id=skd://" + (args.content_id or "KEY-ID-OR-ASSET")
    elif args.content_id:
        query = f"?content_id={args.content_id}"
    return (
        f"try it: curl --data-binary {source} "
        f'-H "Authorization: Bearer $(license-proxy token)" '
        f"http://127.0.0.1:8080/v1/licenses/{drm.value}{query}"
    )


def add_challenge_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``license-proxy challenge`` on the command's subparsers."""
    parser = sub.add_parser(
        "challenge", help="write a synthetic challenge for trying a backend (e.g. the sandbox)"
    )
    parser.add_argument(
        "--drm",
        required=True,
        choices=[d.value for d in DrmSystem],
        help="the DRM system whose challenge to write",
    )
    parser.add_argument(
        "--kid",
        action="append",
        default=[],
        help="a key id: UUID, 32 hex digits or base64 (repeatable)",
    )
    parser.add_argument("--content-id", help="the content id (FairPlay: the asset id)")
    parser.add_argument("--type", choices=TYPES, default="new", help="what the challenge asks")
    parser.add_argument(
        "--fairplay-framing",
        choices=["raw", "form", "json"],
        default="raw",
        help="FairPlay: raw SPC, spc= form, or JSON",
    )
    parser.add_argument(
        "--android-legacy",
        action="store_true",
        help="ClearKey: key ids in standard base64, as Android's CDM before 8.1 writes them",
    )
    parser.add_argument("--base64", action="store_true", help="write base64 text")
    parser.add_argument("--out", help="write to this file instead of standard output")
    parser.set_defaults(run=cmd_challenge)


__all__ = ["ChallengeUsageError", "add_challenge_parser", "build_challenge", "cmd_challenge"]

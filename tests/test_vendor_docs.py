"""The configuration examples of docs/vendors.md load as they are written."""

from __future__ import annotations

import base64
import os
import re
import tomllib
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from proxy.builder import build_pipeline
from proxy.testing import proxy_config

DOC = Path(__file__).parent.parent / "docs" / "vendors.md"


def test_every_toml_example_validates(monkeypatch):
    monkeypatch.setenv("AXINOM_COM_KEY", base64.b64encode(os.urandom(32)).decode())
    monkeypatch.setenv("AMS_TOKEN_KEY", base64.b64encode(os.urandom(64)).decode())
    monkeypatch.setenv("WIDEVINE_SIGNING_KEY", os.urandom(32).hex())
    monkeypatch.setenv("WIDEVINE_SIGNING_IV", os.urandom(16).hex())
    keyos = rsa.generate_private_key(public_exponent=0x10001, key_size=2048)
    monkeypatch.setenv(
        "KEYOS_SIGNING_KEY",
        keyos.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode(),
    )
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    blocks = re.findall(r"```toml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)
    text = "\n".join(blocks).replace(
        "file:/etc/license-proxy/verimatrix-sak.pem", "base64:" + base64.b64encode(pem).decode()
    )
    examples = tomllib.loads(text)
    config = proxy_config()
    config["backends"].update(examples["backends"])
    config["policies"] += examples["policies"]
    pipeline = build_pipeline(config)
    assert {"axinom", "verimatrix", "ams", "widevine"} <= set(pipeline.backends)
    assert {"ezdrm", "keyos"} <= set(pipeline.backends)
    assert {p["name"] for p in examples["policies"]} == {"rental", "download", "sd-hd"}

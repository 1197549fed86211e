"""The adapter kit: what a vendor adapter needs besides the request model.

Adapters (built-in or an outside team's) import all of it from :mod:`proxy`,
which exports it; the modules here hold it, one job each:

- the call (:mod:`~proxy.adapters.call`): :class:`VendorCall` in,
  :class:`UpstreamRequest` out, :class:`UpstreamResponse` back in,
  :class:`VendorLicense` out;
- renderings (:mod:`~proxy.adapters.rendering`, :mod:`~proxy.adapters.prepare`):
  what the adapter renders per DRM, and the shared per-request check
  :func:`prepare` (license window, ``can_play``, rules it can't carry, durations
  capped by ``expiry``); :mod:`~proxy.adapters.widevine` renders Google's
  Widevine vocabulary;
- answers (:mod:`~proxy.adapters.answers`): license shape checks and PlayReady
  SOAP faults; vendor errors (:mod:`~proxy.adapters.vendor_errors`): refusals
  and outages with the vendor's own code, scrubbed;
- small encoders (:mod:`~proxy.adapters.wire`): key material, base64, GUIDs,
  compact JSON, content ids;
- signed vendor tokens (:mod:`~proxy.adapters.jws`): :class:`JwsSigner`, a compact
  JWS signer whose key and header are prepared once, at config load;
- the sandbox (:mod:`~proxy.adapters.sandbox`): a vendor's emulator, fresh keys
  and backend section for ``license-proxy serve --sandbox``.
"""

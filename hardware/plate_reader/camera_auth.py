"""Who may post plate reads (issue 15): an address allow-list, a secret per camera (or one shared), as a token
or an HMAC signature of the body. Checked before the body is parsed; see http_receiver.py's docstring.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol
from urllib.parse import parse_qs, unquote, urlsplit

MIN_SECRET_LENGTH = 16
TOKEN_HEADER = "X-Clarity-Token"
SIGNATURE_HEADER = "X-Clarity-Signature"
NO_SECRET = ("No camera secret is configured (hardware.plate_reader.options.secrets, or .secret): every plate read "
             "is refused with 401 until one is set.")

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class Headers(Protocol):
    """A request's headers: a dict, or http.server's message (whose lookup ignores case)."""

    def get(self, name: str, /) -> str | None: ...


class Unauthorized(Exception):
    """The request's credentials are missing or wrong; str() says which (never the secret)."""



Scope = frozenset[str] | None  # the camera ids a request's credentials cover (lower case); None: every camera


def _narrow(a: Scope, b: Scope) -> Scope:
    if a is None:
        return b
    if b is None:
        return a
    return a & b


def _check_secret(secret: Any, where: str) -> str:
    if not isinstance(secret, str):
        raise ValueError(f"{where} must be text.")
    if len(secret) < MIN_SECRET_LENGTH:
        raise ValueError(f"{where} is {len(secret)} characters: use at least {MIN_SECRET_LENGTH} random ones "
                         "(e.g. the output of `python -c \"import secrets; print(secrets.token_urlsafe(24))\"`).")
    if not secret.isprintable() or any(ch.isspace() for ch in secret) or not secret.isascii():
        raise ValueError(f"{where} must be printable ASCII without spaces (it may travel in a header or a URL).")
    return secret


def _network(entry: Any) -> Network:
    try:
        return ipaddress.ip_network(str(entry).strip(), strict=False)
    except ValueError:
        raise ValueError(f"allow_from entry {entry!r} is not an address or a network (e.g. 192.168.10.0/24).") from None


@dataclass(frozen=True)
class CameraAuth:
    """Who may post plate reads. Empty (the default): nobody, until a secret is configured."""

    secrets: Mapping[str, str] = field(default_factory=dict)  # camera_id -> its secret
    secret: str = ""  # one secret that every camera may use
    allow_from: tuple[Network, ...] = ()  # empty: any address
    require_signature: bool = False
    # (camera_id lower-cased, its secret as bytes), made once from `secrets`.
    _keys: tuple[tuple[str, bytes], ...] = field(init=False, repr=False, compare=False, default=())

    def __post_init__(self) -> None:
        for camera, secret in self.secrets.items():
            if not isinstance(camera, str) or not camera.strip():
                raise ValueError("secrets must map each camera_id to its secret.")
            _check_secret(secret, f"The secret for camera {camera!r}")
        if self.secret:
            _check_secret(self.secret, "The shared camera secret")
        object.__setattr__(self, "_keys", tuple((camera.strip().lower(), secret.encode())
                                                for camera, secret in self.secrets.items()))

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> CameraAuth:
        """From `hardware.plate_reader.options`: secrets = {camera_id = secret}, secret, allow_from, require_signature."""
        secrets = options.get("secrets") or {}
        if not isinstance(secrets, Mapping):
            raise ValueError("secrets must map each camera_id to its secret, e.g. secrets = {\"cam-lane1\" = \"...\"}.")
        allow = options.get("allow_from") or ()
        if isinstance(allow, str):
            allow = [part for part in allow.split(",") if part.strip()]
        if not isinstance(allow, (list, tuple)):
            raise ValueError("allow_from must be a list of addresses or networks, e.g. [\"192.168.10.0/24\"].")
        require = options.get("require_signature", False)
        if not isinstance(require, bool):
            raise ValueError("require_signature must be true or false.")
        return cls(secrets=dict(secrets), secret=options.get("secret") or "",
                   allow_from=tuple(_network(entry) for entry in allow), require_signature=require)

    @property
    def configured(self) -> bool:
        return bool(self.secrets or self.secret)

    def address_allowed(self, host: str) -> bool:
        if not self.allow_from:
            return True
        try:
            address = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
            address = address.ipv4_mapped
        return any(address.version == net.version and address in net for net in self.allow_from)

    def _match(self, check: Callable[[bytes], bool]) -> Scope | Literal[False]:
        """Every secret is tried (no early exit): the cameras whose secret passes `check`; None when the shared
        secret does; False when none does."""
        shared = bool(self.secret) and check(self.secret.encode())
        cameras = frozenset(camera for camera, secret in self._keys if check(secret))
        if shared:
            return None
        return cameras or False

    def authenticate(self, headers: Headers, path: str, body: bytes) -> Scope:
        """The cameras these credentials cover, or Unauthorized. Every credential presented must be right."""
        if not self.configured:
            raise Unauthorized(NO_SECRET)
        tokens: list[str] = []
        header_token = headers.get(TOKEN_HEADER)
        if header_token is not None:
            tokens.append(header_token.strip())
        authorization = headers.get("Authorization")
        if authorization is not None:
            scheme, _, value = authorization.strip().partition(" ")
            if scheme.lower() != "bearer":
                raise Unauthorized("Authorization must be 'Bearer <the camera's token>'.")
            tokens.append(value.strip())
        url = urlsplit(path)
        in_path = re.fullmatch(r"/plate/([^/]+)/?", url.path)
        if in_path:
            tokens.append(unquote(in_path.group(1)))
        tokens.extend(parse_qs(url.query, keep_blank_values=True).get("token", []))
        signature = headers.get(SIGNATURE_HEADER)
        if not tokens and signature is None:
            raise Unauthorized(f"No credentials: send the camera's token ({TOKEN_HEADER}, Authorization: Bearer, "
                               f"/plate/<token> or ?token=) or sign the body ({SIGNATURE_HEADER}: sha256=<hex>).")
        if self.require_signature and signature is None:
            raise Unauthorized(f"This receiver requires {SIGNATURE_HEADER}: sha256=<HMAC-SHA256 of the body>.")
        scope: Scope = None
        for token in tokens:
            given = token.encode("utf-8", "replace")
            matched = self._match(functools.partial(hmac.compare_digest, given))
            if matched is False:
                raise Unauthorized("Wrong token.")
            scope = _narrow(scope, matched)
        if signature is not None:
            digest = signature.strip()
            if digest[:7].lower() == "sha256=":
                digest = digest[7:]
            if not re.fullmatch(r"[0-9a-fA-F]{64}", digest):
                raise Unauthorized(f"{SIGNATURE_HEADER} must be sha256=<64 hex digits>.")
            digest = digest.lower()
            matched = self._match(lambda secret: hmac.compare_digest(
                hmac.new(secret, body, hashlib.sha256).hexdigest(), digest))
            if matched is False:
                raise Unauthorized("Bad signature: the body's HMAC does not match the camera's secret.")
            scope = _narrow(scope, matched)
        if scope is not None and not scope:
            raise Unauthorized("The credentials belong to different cameras.")
        return scope


def sign_body(body: bytes, secret: str) -> str:
    """The X-Clarity-Signature value for `body` (tests, and cameras configured by script)."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()

"""JWT bearer tokens for end-user sessions, verified with PyJWT against one pinned algorithm.

Keys come from a JWKS URL (cached, refetched on an unknown `kid`) or a static key (PEM public key
for RS/PS/ES/EdDSA, a shared secret for HS). `none`, any other algorithm and HS/RS confusion are
refused before a signature is checked; `exp` and `sub` are required, and so are `aud`/`iss` when
configured; `exp`/`nbf` have a small leeway.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from steward.errors import ConfigError
from steward.security.keys import Principal
from steward.security.roles import ROLES

if TYPE_CHECKING:
    from jwt import PyJWKClient

ASYMMETRIC = {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "EdDSA"}
SYMMETRIC = {"HS256", "HS384", "HS512"}


class TokenRejected(Exception):
    """The token is not acceptable; the message says why, precisely and without secrets."""


@dataclass(frozen=True)
class JwtSettings:
    algorithm: str
    issuer: str | None = None
    audience: str | None = None
    jwks_url: str | None = None
    public_key_file: Path | None = None
    shared_secret: str | None = None
    leeway_s: float = 30.0
    tenant_claim: str = "tenant"
    role_claim: str = "role"
    default_role: str = "runner"


def looks_like_jwt(token: str) -> bool:
    return token.count(".") == 2 and not token.startswith("stw_")


class JwtVerifier:
    def __init__(self, settings: JwtSettings) -> None:
        self.settings = settings
        self._jwks: PyJWKClient | None = None
        self._static_key: Any = None
        algorithm = settings.algorithm
        if algorithm in SYMMETRIC:
            if not settings.shared_secret or len(settings.shared_secret.encode()) < 32:
                raise ConfigError(f"{algorithm} needs STEWARD_JWT_SECRET of at least 32 bytes")
            self._static_key = settings.shared_secret
        elif algorithm in ASYMMETRIC:
            if settings.jwks_url:
                from jwt import PyJWKClient

                self._jwks = PyJWKClient(settings.jwks_url, cache_keys=True, lifespan=300)
            elif settings.public_key_file:
                self._static_key = settings.public_key_file.read_bytes()
            else:
                raise ConfigError(f"{algorithm} needs jwt_jwks_url or jwt_public_key_file")
        else:
            raise ConfigError(f"jwt_algorithm must be one of {sorted(ASYMMETRIC | SYMMETRIC)}")
        if settings.default_role not in ROLES:
            raise ConfigError(f"jwt_default_role must be one of {ROLES}")
        # Configured audience and issuer are required claims, not checks that only run when the
        # token happens to carry them (stated here rather than left to PyJWT's defaults).
        self._required_claims = ["exp", "sub"]
        if settings.audience is not None:
            self._required_claims.append("aud")
        if settings.issuer is not None:
            self._required_claims.append("iss")

    def verify(self, token: str) -> Principal:
        """The principal for a valid token; `TokenRejected` otherwise. Blocking (JWKS fetch)."""
        claims = self._claims(token)
        tenant = claims.get(self.settings.tenant_claim)
        if not isinstance(tenant, str) or not tenant or len(tenant) > 64:
            raise TokenRejected(f"the token has no {self.settings.tenant_claim!r} claim")
        role = claims.get(self.settings.role_claim, self.settings.default_role)
        if role not in ROLES:
            raise TokenRejected(f"the token's role must be one of {', '.join(ROLES)}")
        subject = claims["sub"]
        if not isinstance(subject, str) or len(subject) > 200:
            raise TokenRejected("the token's subject must be a string of at most 200 characters")
        return Principal(tenant, f"jwt:{subject}", role, user_id=subject)

    def _claims(self, token: str) -> dict[str, Any]:
        # PyJWT (and the cryptography backends it loads) is imported by a process that verifies
        # tokens, not by every process that could.
        import jwt

        settings = self.settings
        try:
            header = jwt.get_unverified_header(token)
        except jwt.DecodeError as exc:
            raise TokenRejected("the token is not a well-formed JWT") from exc
        if header.get("alg") != settings.algorithm:
            # Pinning: `none`, HS-with-a-public-key and every other switch stop here.
            raise TokenRejected(f"token algorithm {header.get('alg')!r} is not accepted")
        try:
            key = self._key_for(token)
            claims: dict[str, Any] = jwt.decode(
                token,
                key,
                algorithms=[settings.algorithm],
                audience=settings.audience,
                issuer=settings.issuer,
                leeway=settings.leeway_s,
                options={"require": self._required_claims},
            )
        except jwt.ExpiredSignatureError as exc:
            raise TokenRejected("the token has expired") from exc
        except jwt.ImmatureSignatureError as exc:
            raise TokenRejected("the token is not valid yet (nbf/iat in the future)") from exc
        except jwt.InvalidAudienceError as exc:
            raise TokenRejected("the token is for another audience") from exc
        except jwt.InvalidIssuerError as exc:
            raise TokenRejected("the token is from another issuer") from exc
        except jwt.MissingRequiredClaimError as exc:
            raise TokenRejected(f"the token lacks the {exc.claim!r} claim") from exc
        except jwt.InvalidSignatureError as exc:
            raise TokenRejected("the token's signature does not verify") from exc
        except jwt.PyJWKClientError as exc:
            raise TokenRejected("no key for the token's key id") from exc
        except (jwt.InvalidTokenError, jwt.exceptions.InvalidKeyError) as exc:
            raise TokenRejected(f"the token is invalid: {type(exc).__name__}") from exc
        return claims

    def _key_for(self, token: str) -> Any:
        if self._jwks is not None:
            return self._jwks.get_signing_key_from_jwt(token).key
        return self._static_key

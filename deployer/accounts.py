"""Users, API tokens and sign-in: who may look at and steer the pipeline.

Passwords are hashed with Argon2 (pwdlib, the only importer of it); API token secrets
are long random strings, so a SHA-256 of them is enough to look them up and useless to
a thief. Nothing here has a default password: every credential is chosen or generated
by the person who creates it and shown once.
"""

from __future__ import annotations

import hashlib
import logging
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

from pwdlib import PasswordHash
from pydantic import BaseModel
from sqlalchemy.engine import Engine
from sqlmodel import Session, col, func, select

from deployer import store
from deployer.exceptions import Conflict, DeployerError, NotFound
from deployer.model import ApiToken, Role, SignInFailure, User, utcnow
from deployer.settings import AuthSettings, Settings

log = logging.getLogger(__name__)

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$")
MIN_PASSWORD = 12
TOKEN_PREFIX = "dpl_"
SECRET_FILE = "session-secret"


class BadInput(DeployerError):
    """A name, password or role that cannot be used; the message says why and what would do."""


class Principal(BaseModel):
    """Who is asking: a signed-in user or an API token, with the role that decides what they may do."""

    name: str
    role: Role
    kind: str  # "user" or "token"
    user_id: int | None = None
    session_epoch: int = 0


class UserView(BaseModel):
    id: int
    name: str
    role: Role
    disabled: bool
    created_at: datetime


class TokenView(BaseModel):
    id: int
    name: str
    role: Role
    prefix: str
    created_by: str
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class NewToken(BaseModel):
    """A token just created: `secret` is shown this once and never stored."""

    token: TokenView
    secret: str


class SignInResult(BaseModel):
    principal: Principal | None
    failures: int  # recent failures for this name, this attempt included when it failed


def _user_view(user: User) -> UserView:
    assert user.id is not None
    return UserView(id=user.id, name=user.name, role=user.role, disabled=user.disabled, created_at=user.created_at)


def _token_view(token: ApiToken) -> TokenView:
    assert token.id is not None
    return TokenView(id=token.id, name=token.name, role=token.role, prefix=token.prefix,
                     created_by=token.created_by, created_at=token.created_at, last_used_at=token.last_used_at,
                     revoked_at=token.revoked_at)


def parse_role(value: str) -> Role:
    """'release-manager' or 'release_manager' -> Role, or BadInput naming the choices."""
    try:
        return Role(value.strip().lower().replace("-", "_"))
    except ValueError:
        raise BadInput(f"role: \"{value}\" is not a role; use one of: "
                       f"{', '.join(r.value for r in Role)}") from None


def check_name(name: str, *, what: str = "name") -> str:
    """A user or token name: letters, digits and . _ @ -, at most 100 characters."""
    if not NAME.match(name or ""):
        raise BadInput(f"{what}: \"{name}\" is not allowed; use letters, digits and . _ @ - "
                       f"(at most 100 characters), e.g. \"ana\"")
    return name


def check_password(password: str) -> str:
    """At least MIN_PASSWORD characters: there is no default or weak password anywhere."""
    if len(password or "") < MIN_PASSWORD:
        raise BadInput(f"password: is {len(password or '')} characters long; use at least {MIN_PASSWORD} "
                       f"(or --generate-password to have one made)")
    return password


def generate_password() -> str:
    """A random password for a new user (printed once by whoever asked for it)."""
    return secrets.token_urlsafe(18)


def token_digest(secret: str) -> str:
    """What is stored of a token's secret."""
    return hashlib.sha256(secret.encode()).hexdigest()


def session_secret(settings: Settings) -> str:
    """The key that signs session cookies: configured, or generated once and kept in the workdir."""
    if settings.auth.secret_key:
        return settings.auth.secret_key
    path = Path(settings.workdir_path) / SECRET_FILE
    if path.is_file():
        existing = path.read_text().strip()
        if len(existing) >= 32:
            return existing
    path.parent.mkdir(parents=True, exist_ok=True)
    secret = secrets.token_urlsafe(48)
    # Created private: whoever reads it can forge a sign-in.
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(secret + "\n")
    tmp.replace(path)
    return secret


@dataclass
class AccountService:
    """Users, tokens and sign-in over the controller's database."""

    engine: Engine
    auth: AuthSettings
    _hasher: PasswordHash | None = None

    @property
    def hasher(self) -> PasswordHash:
        if self._hasher is None:
            self._hasher = PasswordHash.recommended()
        return self._hasher

    # --- users ------------------------------------------------------------------------------

    def add_user(self, *, name: str, role: Role, password: str, actor: str = "admin") -> UserView:
        """Create a user; Conflict when the name is taken."""
        check_name(name)
        check_password(password)
        digest = self.hasher.hash(password)
        with store.session_scope(self.engine) as session:
            if session.exec(select(User).where(User.name == name)).first() is not None:
                raise Conflict(f"user \"{name}\" already exists; pick another name or use `deployer users "
                               f"set-password {name}`")
            user = User(name=name, role=role, password_hash=digest)
            session.add(user)
            session.flush()
            store.audit(session, kind="user_added", actor=actor, message=f"user {name} added as {role.value}")
            return _user_view(user)

    def set_password(self, *, name: str, password: str, actor: str = "admin") -> UserView:
        """Change a password; every session signed in before stops working."""
        check_password(password)
        digest = self.hasher.hash(password)
        with store.session_scope(self.engine) as session:
            user = self._user(session, name)
            user.password_hash = digest
            user.session_epoch += 1
            session.add(user)
            store.audit(session, kind="user_password", actor=actor, message=f"password of {name} changed")
            return _user_view(user)

    def set_disabled(self, *, name: str, disabled: bool, actor: str = "admin") -> UserView:
        """Disable (sign out everywhere, refuse sign-in) or enable a user."""
        with store.session_scope(self.engine) as session:
            user = self._user(session, name)
            user.disabled = disabled
            user.session_epoch += 1
            session.add(user)
            store.audit(session, kind="user_disabled" if disabled else "user_enabled", actor=actor,
                        message=f"user {name} {'disabled' if disabled else 'enabled'}")
            return _user_view(user)

    def users(self) -> list[UserView]:
        """Every user by name."""
        with store.session_scope(self.engine) as session:
            return [_user_view(u) for u in session.exec(select(User).order_by(col(User.name)))]

    @staticmethod
    def _user(session: Session, name: str) -> User:
        user = session.exec(select(User).where(User.name == name)).first()
        if user is None:
            raise NotFound("user", name)
        return user

    # --- sign-in -------------------------------------------------------------------------------

    def recent_failures(self, name: str) -> int:
        """Failed sign-ins for this name within the window."""
        since = utcnow() - timedelta(seconds=self.auth.signin_window)
        with store.session_scope(self.engine) as session:
            query = select(func.count()).select_from(SignInFailure).where(
                SignInFailure.name == name[:100], col(SignInFailure.at) >= since)
            return int(session.exec(query).one())

    def signin_delay(self, failures: int) -> float:
        """Seconds to wait before answering the next attempt: doubles with each failure past the free ones."""
        over = failures - self.auth.signin_free_failures
        if over < 0:
            return 0.0
        return float(min(self.auth.signin_delay * (2 ** over), self.auth.signin_max_delay))

    def sign_in(self, *, name: str, password: str, client: str = "") -> SignInResult:
        """Check a password; a failure is recorded, logged and audited (never with the password)."""
        with store.session_scope(self.engine) as session:
            user = session.exec(select(User).where(User.name == name[:100])).first()
            digest = user.password_hash if user is not None else None
        # Verify even for unknown names so timing does not tell which names exist.
        ok = self.hasher.verify(password, digest) if digest else (self.hasher.hash(password) and False)
        if ok and user is not None and not user.disabled:
            assert user.id is not None
            with store.session_scope(self.engine) as session:
                store.audit(session, kind="signin", actor=user.name, message=f"{user.name} signed in",
                            data={"client": client})
            return SignInResult(principal=Principal(name=user.name, role=user.role, kind="user", user_id=user.id,
                                                    session_epoch=user.session_epoch), failures=0)
        with store.session_scope(self.engine) as session:
            session.add(SignInFailure(name=name[:100], client=client[:100]))
            store.audit(session, kind="signin_failed", actor=name[:100] or "-",
                        message=f"failed sign-in for \"{name[:100]}\"", data={"client": client})
        failures = self.recent_failures(name)
        log.warning("failed sign-in for %r from %s (%d within %.0fs)", name[:100], client or "?", failures,
                    self.auth.signin_window)
        return SignInResult(principal=None, failures=failures)

    def session_user(self, *, user_id: int, epoch: int) -> Principal | None:
        """The user a session cookie names, if it still exists, is enabled and the cookie is current."""
        with store.session_scope(self.engine) as session:
            user = session.get(User, user_id)
            if user is None or user.disabled or user.session_epoch != epoch:
                return None
            return Principal(name=user.name, role=user.role, kind="user", user_id=user.id,
                             session_epoch=user.session_epoch)

    # --- API tokens ----------------------------------------------------------------------------

    def create_token(self, *, name: str, role: Role, actor: str = "admin") -> NewToken:
        """A new token with its secret (shown this once)."""
        check_name(name, what="token name")
        secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
        with store.session_scope(self.engine) as session:
            token = ApiToken(name=name, role=role, prefix=secret[:10], secret_hash=token_digest(secret),
                             created_by=actor)
            session.add(token)
            session.flush()
            store.audit(session, kind="token_created", actor=actor,
                        message=f"API token {token.id} \"{name}\" created as {role.value}")
            return NewToken(token=_token_view(token), secret=secret)

    def revoke_token(self, *, token_id: int, actor: str = "admin") -> TokenView:
        """Revoke a token at once; Conflict when it already is."""
        with store.session_scope(self.engine) as session:
            token = session.get(ApiToken, token_id)
            if token is None:
                raise NotFound("API token", token_id)
            if token.revoked_at is not None:
                raise Conflict(f"API token {token_id} was already revoked at {token.revoked_at.isoformat()}")
            token.revoked_at = utcnow()
            session.add(token)
            store.audit(session, kind="token_revoked", actor=actor,
                        message=f"API token {token_id} \"{token.name}\" revoked")
            return _token_view(token)

    def tokens(self) -> list[TokenView]:
        """Every token, newest first (secrets are never listed: they are not stored)."""
        with store.session_scope(self.engine) as session:
            return [_token_view(t) for t in session.exec(select(ApiToken).order_by(col(ApiToken.id).desc()))]

    def token_principal(self, secret: str) -> Principal | None:
        """Who a bearer token belongs to, or None when unknown or revoked."""
        if not secret.startswith(TOKEN_PREFIX):
            return None
        with store.session_scope(self.engine) as session:
            token = session.exec(select(ApiToken).where(ApiToken.secret_hash == token_digest(secret))).first()
            if token is None or token.revoked_at is not None:
                return None
            now = utcnow()
            last = token.last_used_at
            # Written at most once a minute so that busy clients do not turn every read into a write.
            if last is None or (now - _aware(last)).total_seconds() > 60:
                token.last_used_at = now
                session.add(token)
            return Principal(name=f"token:{token.name}", role=token.role, kind="token")


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)

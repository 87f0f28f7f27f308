"""Service settings: where to bind, which API keys belong to which tenant, and the limits.

API keys come from the ``api_keys`` field or, when that is not given, from the
``REMASK_API_KEYS`` environment variable (``key1:tenant1,key2:tenant2``; a key without a
tenant belongs to the tenant ``default``). Keys are held as :class:`pydantic.SecretStr`,
so neither ``repr`` nor a log line of the settings ever shows them.

A service bound to anything but a loopback address must have keys: ``Settings`` refuses
to validate otherwise, so a misconfigured server never starts open to the network.

Job webhooks go to public addresses only (:mod:`workflows.queue.webhook`): a ``webhook_url``
whose host resolves to a loopback, private, link-local, metadata or other internal address is
refused with 422. ``webhook_allow`` (default: the ``REMASK_WEBHOOK_ALLOW`` environment
variable, ``host1,10.0.0.0/8,127.0.0.1``) lists host names and IP ranges allowed even if
internal; workers read the same variable when they send, so set it for both.
"""

from __future__ import annotations

import hmac
import ipaddress
import os

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, SecretStr, model_validator

from workflows.engine.responses import SERVED_MODEL_NAME
from workflows.limits import Limits
from workflows.queue.webhook import ALLOW_ENV as WEBHOOK_ALLOW_ENV
from workflows.queue.webhook import WebhookPolicy

KEYS_ENV = "REMASK_API_KEYS"
DEFAULT_TENANT = "default"
ANONYMOUS_TENANT = "anonymous"  # the tenant of every request when no keys are configured


class ApiKey(BaseModel):
    """One bearer token and the tenant it belongs to."""

    model_config = ConfigDict(frozen=True)
    key: SecretStr = Field(description="the bearer token; never logged or echoed")
    tenant: str = Field(DEFAULT_TENANT, min_length=1, description="who the key belongs to")


def parse_api_keys(spec: str) -> list[ApiKey]:
    """Parse ``key1:tenant1,key2:tenant2``; errors name the entry's position, never the key."""
    keys: list[ApiKey] = []
    for i, entry in enumerate(p.strip() for p in spec.split(",")):
        if not entry:
            continue
        key, sep, tenant = entry.rpartition(":")
        if not sep:
            key, tenant = entry, DEFAULT_TENANT
        if not key or not tenant:
            raise ValueError(f"{KEYS_ENV}: entry {i + 1} must be KEY:TENANT with both parts non-empty")
        keys.append(ApiKey(key=SecretStr(key), tenant=tenant))
    return keys


def _keys_from_env() -> list[ApiKey]:
    return parse_api_keys(os.environ.get(KEYS_ENV, ""))


def _webhook_allow_from_env() -> list[str]:
    return [e.strip() for e in os.environ.get(WEBHOOK_ALLOW_ENV, "").split(",") if e.strip()]


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:  # a host name other than localhost may resolve to anything
        return False


class Settings(BaseModel):
    """Everything the HTTP layer needs to know, validated at start-up."""

    model_config = ConfigDict(extra="forbid")
    host: str = Field("127.0.0.1", description="bind address; anything but loopback requires API keys")
    port: int = Field(8000, ge=0, le=65535, description="bind port (0: any free port)")
    api_keys: list[ApiKey] = Field(default_factory=_keys_from_env,
                                   description=f"bearer keys and their tenants; default: ${KEYS_ENV}")
    limits: Limits = Field(default_factory=Limits, description="request limits")
    served_model_name: str = Field(SERVED_MODEL_NAME, min_length=1,
                                   description="model id reported by /v1/models and in responses")
    max_pending: int = Field(16, ge=1, description="requests admitted to the engine at once; more are answered 429")
    queue_timeout_s: float = Field(30.0, gt=0, description="longest wait for a model before answering 503")
    retry_after_s: int = Field(1, ge=1, description="Retry-After seconds sent with 429 and 503")
    ready_timeout_s: float = Field(10.0, gt=0, description="longest /ready health check before answering 503")
    webhook_allow: list[str] = Field(default_factory=_webhook_allow_from_env,
                                     description="webhook host names and IP ranges allowed although internal; "
                                                 f"default: ${WEBHOOK_ALLOW_ENV}")
    _webhook_policy: WebhookPolicy = PrivateAttr(default_factory=WebhookPolicy)

    @model_validator(mode="after")
    def _keys_off_loopback(self) -> Settings:
        if not self.api_keys and not is_loopback(self.host):
            raise ValueError(f"host {self.host!r} is not loopback: configure API keys (api_keys or ${KEYS_ENV})")
        return self

    @model_validator(mode="after")
    def _parse_webhook_allow(self) -> Settings:
        self._webhook_policy = WebhookPolicy.parse(self.webhook_allow)  # a bad entry stops start-up
        return self

    @property
    def webhook_policy(self) -> WebhookPolicy:
        """Where job webhooks may go: public addresses and :attr:`webhook_allow`."""
        return self._webhook_policy

    @property
    def auth_required(self) -> bool:
        return bool(self.api_keys)

    def tenant_of(self, token: str) -> str | None:
        """The tenant of a bearer token, or ``None``; compares in constant time per key."""
        found: str | None = None
        given = token.encode()
        for k in self.api_keys:
            if hmac.compare_digest(given, k.key.get_secret_value().encode()):
                found = k.tenant
        return found

"""Settings: defaults < TOML file < environment (CLARITY_*) < CLI flags.

Built by `load_settings()` and injected; never at import time.
"""

from __future__ import annotations

import datetime as dt
import os
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal

import tomllib

from pydantic import BaseModel, Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from clarity_tui.errors import UserFacingError
from clarity_tui.paths import APP_NAME, data_dir, default_config_file  # noqa: F401 - re-exported


class LaneConfig(BaseModel):
    name: str
    kind: Literal["pre_gate", "lane", "pay_station"] = "lane"
    camera_id: str | None = None
    # Members' cars on this lane go to the tunnel, and the gate opens, with no key press (issue 18).
    auto_dispatch: bool = False


def _default_lanes() -> list[LaneConfig]:
    return [
        LaneConfig(name="Pre-Gate", kind="pre_gate", camera_id="cam-pregate"),
        LaneConfig(name="Lane 1", camera_id="cam-lane1"),
        LaneConfig(name="Lane 2", camera_id="cam-lane2"),
        LaneConfig(name="Lane 3", camera_id="cam-lane3"),
    ]


class SiteConfig(BaseModel):
    code: str = "SITE-001"
    name: str = "Clarity Express Wash"
    # Region used to parse phone numbers typed without a country code.
    phone_region: str = "US"
    plate_region: str = "US-TX"
    lanes: list[LaneConfig] = Field(default_factory=_default_lanes)
    # The site's IANA time zone (e.g. "America/Chicago"): what "today" means for billing dates and
    # day reports. Unset: this terminal's own zone.
    timezone: str | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        from clarity_tui.sitetime import check_zone_name

        return check_zone_name(value) if value else None

    @property
    def zone(self) -> dt.tzinfo:
        from clarity_tui.sitetime import site_zone

        return site_zone(self.timezone)


class DeviceConfig(BaseModel):
    driver: str = "simulated"
    port: str | None = None
    options: dict[str, Any] = Field(default_factory=dict)


class SignaturePadConfig(DeviceConfig):
    """The pad, and when a signature counts as finished so Agree comes on (issue 14): at least one
    stroke of `min_points` pen points and `min_length` of travel (in pad widths; 0 turns a test off),
    then the pen lifted for `settle_ms`, or the pad's own OK button. The driver's options may
    override these per pad."""

    min_points: int = Field(default=20, ge=0, le=5000)
    min_length: float = Field(default=0.15, ge=0, le=20)
    settle_ms: int = Field(default=400, ge=0, le=10_000)


class HardwareConfig(BaseModel):
    card_reader: DeviceConfig = Field(default_factory=DeviceConfig)
    signature_pad: SignaturePadConfig = Field(default_factory=SignaturePadConfig)
    plate_reader: DeviceConfig = Field(default_factory=DeviceConfig)
    # The gate and tunnel controller (issue 18): "simulated", or "modbus_tcp" with port "host:port" and
    # the register map in options (hardware/tunnel/modbus_tcp.py says which keys).
    tunnel: DeviceConfig = Field(default_factory=DeviceConfig)


class StripeConfig(BaseModel):
    api_key: str = ""
    api_base: str | None = None
    terminal_reader_id: str | None = None
    # Payments (issue 4): a short timeout so a dead network fails fast and the
    # order goes to "pending sync"; the outbox retries, not the SDK.
    timeout_seconds: float = 20.0
    max_network_retries: int = 0
    # Card present at the lane (issue 12; README "PCI scope"). With a Stripe Terminal reader the first
    # payment is taken on the reader (a card_present PaymentIntent that saves the card for renewals).
    card_present_first_payment: bool = True
    # Keyed entry when the card cannot be read: "auto" = on the reader (MOTO) when moto_enabled, else
    # a Stripe-hosted page sent by text message; "raw" sends the number from this terminal and needs
    # raw_card_data_access (PCI SAQ D).
    keyed_entry: Literal["auto", "reader_moto", "hosted_page", "raw"] = "auto"
    # Stripe enabled MOTO (mail/telephone order) keyed entry on this account's readers.
    moto_enabled: bool = False
    # Stripe granted this account raw card data access: only then may a keyed number leave this process.
    raw_card_data_access: bool = False
    # Where the hosted card page sends the customer when they are done (required by Stripe Checkout).
    hosted_page_success_url: str = ""


class PaymentsConfig(BaseModel):
    gateway: Literal["simulated", "stripe"] = "simulated"
    stripe: StripeConfig = Field(default_factory=StripeConfig)
    currency: str = "usd"
    # The running app sends due outbox rows this often; a failing row backs off from this
    # interval, doubling up to 5 minutes.
    replay_every_seconds: float = Field(default=30.0, gt=0)


class TaxConfig(BaseModel):
    """The site's sales tax (issue 13): on lane charges and, through the gateway's tax rates, on renewals."""

    # "exclusive": added on top of the price; "inclusive": the price already holds it; "none": no tax.
    behavior: Literal["none", "exclusive", "inclusive"] = "none"
    # Percent, up to 4 decimal places (8.25 = 8.25%).
    rate_percent: Decimal = Field(default=Decimal("0"), ge=0, le=50, decimal_places=4)
    display_name: str = Field(default="Sales tax", min_length=1, max_length=50)

    @property
    def applies(self) -> bool:
        return self.behavior != "none" and self.rate_percent > 0


class WebhookConfig(BaseModel):
    """The optional Stripe webhook receiver, for sites that can expose one (the sync loop needs none)."""

    enabled: bool = False
    host: str = "0.0.0.0"
    port: int = Field(default=8790, ge=1, le=65535)
    # The endpoint's signing secret (whsec_...): requests without a valid Stripe-Signature get 400.
    signing_secret: str = ""
    tolerance_seconds: int = Field(default=300, ge=1)


class BillingConfig(BaseModel):
    """The membership lifecycle (issue 13): what the billing engine tells us, and what the lane shows."""

    # A member stays MEMBER this many days past the date they paid through (a renewal in flight).
    grace_days: int = Field(default=3, ge=0, le=60)
    # The sync loop pulls the gateway's events this often (one leader per site database).
    sync_every_seconds: float = Field(default=60.0, gt=0)
    # No successful sync for longer than this: the board shows a banner (entitlement already fails
    # closed after the grace, because nothing moves `paid_through` on).
    sync_stale_after_hours: float = Field(default=6.0, gt=0)
    # Past-due text messages on these days after the first failed renewal, each with a card-update link.
    dunning_days: list[int] = Field(default_factory=lambda: [1, 4, 11])
    dunning_enabled: bool = True
    # Where the gateway's card-update page sends the customer when they are done.
    card_update_return_url: str = "https://example.invalid/account"
    # The simulated gateway's billing clock: the share of renewals whose card fails.
    simulated_failure_rate: float = Field(default=0.0, ge=0, le=1)
    tax: TaxConfig = Field(default_factory=TaxConfig)
    webhook: WebhookConfig = Field(default_factory=WebhookConfig)

    @field_validator("dunning_days")
    @classmethod
    def _days_ascending(cls, days: list[int]) -> list[int]:
        if any(d < 0 for d in days) or sorted(set(days)) != days:
            raise ValueError("dunning days must be distinct, ascending and not negative (e.g. [1, 4, 11])")
        return days


class SmtpConfig(BaseModel):
    """The mail server for customer emails (web-login password resets)."""

    host: str = "localhost"
    port: int = 25
    from_address: str = "no-reply@clarity.invalid"
    starttls: bool = False
    username: str | None = None
    password: str | None = None
    timeout: float = 10.0
    # The customer web portal's reset page; the token is appended as ?token=...
    reset_url: str = "https://example.invalid/reset-password"


class TwilioConfig(BaseModel):
    """A Twilio-compatible Messages API (sent with HTTP basic auth; replies are polled)."""

    account_sid: str = ""
    auth_token: str = ""
    from_number: str = ""
    api_base: str = "https://api.twilio.com"
    timeout_seconds: float = 10.0


class MessagingConfig(BaseModel):
    """SMS to customers (migration asks for the email by text)."""

    provider: Literal["simulated", "twilio"] = "simulated"
    twilio: TwilioConfig = Field(default_factory=TwilioConfig)
    # How long the lane waits for the customer's reply before the attendant types the email in.
    reply_timeout_seconds: int = 90
    poll_interval_seconds: float = 2.0
    # The simulated provider: "auto" replies with an email after a few seconds, "never" does not reply.
    simulated_reply: Literal["auto", "never"] = "auto"
    simulated_reply_after_seconds: float = 4.0


class WashItemConfig(BaseModel):
    """One line of the wash menu: a package (a single wash) or an extra."""

    code: str = Field(min_length=1, max_length=32)
    name: str = Field(min_length=1, max_length=80)
    kind: Literal["package", "extra"] = "package"
    price_cents: int = Field(ge=0, le=1_000_00)
    # What the tunnel controller is sent for it (a package number, or an extra's bit number).
    tunnel_code: int = Field(default=0, ge=0, le=65535)
    # The membership plans (by code) that include it.
    plans: list[str] = Field(default_factory=list)
    active: bool = True


class CommissionConfig(BaseModel):
    """What an operator earns per order they take (issue 18); a manager's rates in the database win."""

    per_sale_cents: int = Field(default=500, ge=0, le=100_000)
    per_migration_cents: int = Field(default=200, ge=0, le=100_000)
    # 0: upgrades earn nothing.
    per_upgrade_cents: int = Field(default=0, ge=0, le=100_000)
    # Per plan code, instead of per_sale_cents.
    per_plan_cents: dict[str, int] = Field(default_factory=dict)
    # A refund within this many days of the sale takes the commission back.
    clawback_days: int = Field(default=30, ge=0, le=366)


class WashConfig(BaseModel):
    """The lane's day (issue 18): the menu and commissions."""

    # Empty: the menu in the database is left as it is (set it with `clarity-tui menu`, or the demo seed).
    menu: list[WashItemConfig] = Field(default_factory=list)
    commissions: CommissionConfig = Field(default_factory=CommissionConfig)


class UIConfig(BaseModel):
    # Poll interval for the SQLite change feed, in seconds.
    poll_interval: float = 0.05
    idle_signout_seconds: int = 300
    # Operator sign-in (issue 8): a PIN pad at start; wrong PINs lock that operator out for a while.
    require_signin: bool = True
    lockout_attempts: int = 5
    lockout_seconds: int = 300
    animations: bool = False
    show_clock: bool = True


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="CLARITY_",
        env_nested_delimiter="__",
        extra="ignore",
    )

    database_url: str | None = None
    terminal_id: str = Field(default_factory=lambda: os.uname().nodename)
    simulate: bool = False
    site: SiteConfig = Field(default_factory=SiteConfig)
    hardware: HardwareConfig = Field(default_factory=HardwareConfig)
    payments: PaymentsConfig = Field(default_factory=PaymentsConfig)
    ui: UIConfig = Field(default_factory=UIConfig)
    smtp: SmtpConfig = Field(default_factory=SmtpConfig)
    messaging: MessagingConfig = Field(default_factory=MessagingConfig)
    billing: BillingConfig = Field(default_factory=BillingConfig)
    wash: WashConfig = Field(default_factory=WashConfig)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit values (CLI) > environment > TOML file.
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    def resolved_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        name = "simulator.db" if self.simulate else "clarity.db"
        return f"sqlite:///{data_dir() / name}"


def load_settings(config_file: str | Path | None = None, **overrides: Any) -> Settings:
    """Build Settings from an optional TOML file (or CLARITY_CONFIG), the env, and overrides."""
    path = Path(config_file or os.environ.get("CLARITY_CONFIG") or default_config_file())
    if config_file and not path.exists():
        raise ConfigError(f"Settings file {path} does not exist: check --config / CLARITY_CONFIG.")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path if path.exists() else None})

    values = {k: v for k, v in overrides.items() if v is not None}
    try:
        return FileSettings(**values)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(x) for x in first["loc"])
        raise ConfigError(f"Settings problem at {where}: {first['msg']} (file {path}, or CLARITY_* variables).") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"Settings file {path} is not valid TOML: {exc}.") from exc
    except OSError as exc:
        raise ConfigError(f"Settings file {path} cannot be read ({exc.strerror}): check its permissions.") from exc


class ConfigError(UserFacingError, ValueError):
    """Settings that cannot be used; str() names the fix."""

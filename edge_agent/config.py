"""Configuration: a TOML file validated once at start.

Every key has a default, so the agent runs with no file at all (the embedded
default: the synthetic ``demo`` source, data under ``./edge-agent-data``, MQTT to
localhost:1883). ``config/edge-agent.example.toml`` documents every key.
"""

from __future__ import annotations

import re
import socket
import tomllib
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from edge_agent.core.formats import DEFAULT_ORDER as DEFAULT_FORMAT_ORDER
from edge_agent.core.formats import FORMATS
from edge_agent.core.redact import redact

_TOPIC_SAFE = re.compile(r"^[A-Za-z0-9._-]{1,64}$")


def _is_file(p: Path) -> bool:
    # Path.is_file() raises on names the OS refuses (too long, NUL byte): those are "not found", not a crash.
    try:
        return p.is_file()
    except (OSError, ValueError):
        return False


def _existing_file(p: Path) -> Path:
    if not _is_file(p):
        raise ValueError(f"file not found: {p}")
    return p


# A path that must name an existing file when the config is loaded: checked once, at start.
ExistingFile = Annotated[Path, AfterValidator(_existing_file)]


class ConfigError(Exception):
    """The configuration cannot be used; the message names the key and why."""


class _Section(BaseModel):
    # Unknown keys are almost always typos of real keys: refuse them instead of ignoring them.
    model_config = ConfigDict(extra="forbid", validate_default=True)


Point = tuple[float, float]


class CameraConfig(_Section):
    source: str = "demo"
    width: Annotated[int, Field(ge=64, le=8192)] = 1280
    height: Annotated[int, Field(ge=48, le=8192)] = 720
    fps: Annotated[float, Field(gt=0, le=120)] = 10.0
    loop: bool = True
    reconnect_min_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = 30.0
    read_timeout_s: Annotated[float, Field(gt=0, le=600)] = 10.0

    @field_validator("source")
    @classmethod
    def _source_known(cls, v: str) -> str:
        v = v.strip()
        if not v:
            raise ValueError("must not be empty (use 'demo', 'picamera2', a URL, /dev/videoN, a file or a folder)")
        return v

    @model_validator(mode="after")
    def _backoff_order(self) -> CameraConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        return self


def check_polygons(v: list[list[Point]], what: str) -> list[list[Point]]:
    """Polygons of at least 3 points, each a fraction (0..1) of the frame's width and height."""
    for i, poly in enumerate(v):
        if len(poly) < 3:
            raise ValueError(f"{what} {i} needs at least 3 points, got {len(poly)}")
        for x, y in poly:
            if not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
                raise ValueError(f"{what} {i} point ({x}, {y}) is outside 0..1 (points are fractions of the frame)")
    return v


class DemoConfig(_Section):
    seed: int = 1
    car_interval_s: Annotated[float, Field(gt=0, le=3600)] = 4.0
    car_speed_px_s: Annotated[float, Field(gt=0, le=5000)] = 420.0


class MotionConfig(_Section):
    enabled: bool = True
    height: Annotated[int, Field(ge=40, le=480)] = 120
    blur: Annotated[int, Field(ge=1, le=31)] = 5
    threshold: Annotated[int, Field(ge=1, le=255)] = 25
    alpha: Annotated[float, Field(gt=0, le=1)] = 0.1
    min_area: Annotated[float, Field(gt=0, le=1)] = 0.002
    end_after_s: Annotated[float, Field(ge=0, le=600)] = 2.0
    scan_interval_s: Annotated[float, Field(ge=0, le=3600)] = 5.0
    masks: list[list[Point]] = Field(default_factory=list)

    @field_validator("blur")
    @classmethod
    def _odd(cls, v: int) -> int:
        if v % 2 == 0:
            raise ValueError("must be odd (a Gaussian kernel size)")
        return v

    @field_validator("masks")
    @classmethod
    def _polygons(cls, v: list[list[Point]]) -> list[list[Point]]:
        return check_polygons(v, "mask")


class AlprConfig(_Section):
    enabled: bool = True
    detector_model: ExistingFile | None = None
    ocr_model: ExistingFile | None = None
    threads: Annotated[int, Field(ge=1, le=16)] = 1
    min_confidence: Annotated[float, Field(ge=0, le=1)] = 0.5
    second_look: bool = True


class LaneConfig(_Section):
    name: str
    polygon: list[Point]

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _TOPIC_SAFE.fullmatch(v):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return v


class EventsConfig(_Section):
    motion_events: bool = True
    dedup_window_s: Annotated[float, Field(ge=0, le=86400)] = 30.0
    crop_max_height: Annotated[int, Field(ge=16, le=256)] = 64
    crop_jpeg_quality: Annotated[int, Field(ge=10, le=100)] = 80
    # The vehicle in its frame, JPEG, at most this many KB in the event (0: no context image).
    context_max_kb: Annotated[float, Field(ge=0, le=1024)] = 40.0
    context_max_px: Annotated[int, Field(ge=64, le=4096)] = 640
    lanes: list[LaneConfig] = Field(default_factory=list)
    # A pass with motion but no readable plate still makes a transit record (read_status "unread").
    unread_events: bool = True
    unread_min_s: Annotated[float, Field(ge=0, le=60)] = 0.5
    unread_min_area: Annotated[float, Field(gt=0, le=1)] = 0.02

    @field_validator("lanes")
    @classmethod
    def _lanes(cls, v: list[LaneConfig]) -> list[LaneConfig]:
        check_polygons([lane.polygon for lane in v], "lane")
        names = [lane.name for lane in v]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise ValueError(f"lane names must be unique; given more than once: {twice}")
        return v


class TrackingConfig(_Section):
    max_gap_s: Annotated[float, Field(gt=0, le=600)] = 1.5
    max_delay_s: Annotated[float, Field(gt=0, le=3600)] = 6.0
    low_confidence: Annotated[float, Field(ge=0, le=1)] = 0.6


class FormatsConfig(_Section):
    enabled: list[str] = Field(default_factory=lambda: list(DEFAULT_FORMAT_ORDER))

    @field_validator("enabled")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        unknown = [c for c in v if c not in FORMATS]
        if unknown:
            raise ValueError(f"unknown format(s) {unknown}; known: {sorted(FORMATS)}")
        if not v:
            raise ValueError("enable at least one format (\"any\" accepts every read)")
        return v


class HotlistConfig(_Section):
    fuzzy: bool = True


class OutboxConfig(_Section):
    max_events: Annotated[int, Field(ge=10, le=10_000_000)] = 200_000
    max_mb: Annotated[float, Field(ge=1, le=1_000_000)] = 512.0


class TlsConfig(_Section):
    ca_file: ExistingFile | None = None
    cert_file: ExistingFile | None = None
    key_file: ExistingFile | None = None
    # Skips only the check that the broker's certificate names mqtt.host: the chain is still verified
    # against ca_file. (Called insecure_skip_verify before, which promised more than it did.)
    insecure_skip_hostname_check: bool = False

    @model_validator(mode="before")
    @classmethod
    def _renamed(cls, data: Any) -> Any:
        if isinstance(data, dict) and "insecure_skip_verify" in data:
            raise ValueError("insecure_skip_verify was renamed insecure_skip_hostname_check: it only skips the "
                             "check that the certificate names mqtt.host (the chain is still verified)")
        return data

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("cert_file and key_file must be given together")
        return self


class MqttConfig(_Section):
    host: str = "localhost"
    port: Annotated[int, Field(ge=1, le=65535)] = 1883
    prefix: str = "edge"
    client_id: str = ""
    keepalive_s: Annotated[int, Field(ge=5, le=3600)] = 30
    username: str = ""
    password_file: ExistingFile | None = None
    tls: TlsConfig | None = None
    reconnect_min_s: Annotated[float, Field(gt=0, le=600)] = 1.0
    reconnect_max_s: Annotated[float, Field(gt=0, le=3600)] = 60.0
    max_inflight: Annotated[int, Field(ge=1, le=1000)] = 50
    # MQTT 5 is what lets the node see a broker refuse a publish (PUBACK reason code) or a subscription
    # (SUBACK); 3.1.1 stays for brokers that lack it, where a refused publish is acknowledged like any other.
    protocol: Literal["5", "3.1.1"] = "5"
    # MQTT 5 only: how long the broker keeps this node's session (its cmd subscription and the commands
    # queued for it) after the link drops. 4294967295 = never expires.
    session_expiry_s: Annotated[int, Field(ge=60, le=4_294_967_295)] = 7 * 24 * 3600

    @field_validator("prefix")
    @classmethod
    def _prefix(cls, v: str) -> str:
        parts = v.split("/")
        if not v or any(not _TOPIC_SAFE.fullmatch(p) for p in parts):
            raise ValueError("must be topic levels of letters, digits, '.', '_' or '-' separated by '/'")
        return v

    @model_validator(mode="after")
    def _backoff_order(self) -> MqttConfig:
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s must be >= reconnect_min_s")
        if self.password_file is not None and not self.username:
            raise ValueError("password_file needs username")
        return self


class RecorderConfig(_Section):
    enabled: bool = False
    camera_id: str = "cam0"
    codec: Literal["libx264", "h264_v4l2m2m"] = "libx264"
    crf: Annotated[int, Field(ge=0, le=51)] = 28
    preset: Literal["ultrafast", "superfast", "veryfast", "faster", "fast", "medium"] = "ultrafast"
    keyframe_interval_s: Annotated[float, Field(gt=0, le=10)] = 1.0
    segment_s: Annotated[float, Field(ge=2, le=600)] = 10.0
    max_age_days: Annotated[float, Field(gt=0, le=366)] = 7.0
    max_disk_mb: Annotated[float, Field(ge=10, le=10_000_000)] = 20_000.0
    retention_interval_s: Annotated[float, Field(ge=1, le=3600)] = 60.0
    queue_frames: Annotated[int, Field(ge=2, le=1000)] = 30
    event_clips: bool = False
    event_pre_roll_s: Annotated[float, Field(ge=0, le=300)] = 5.0
    event_post_roll_s: Annotated[float, Field(ge=0, le=300)] = 5.0

    @field_validator("camera_id")
    @classmethod
    def _camera_id(cls, v: str) -> str:
        if not _TOPIC_SAFE.fullmatch(v):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-'")
        return v


class ClipsConfig(_Section):
    max_clip_s: Annotated[float, Field(gt=0, le=86400)] = 900.0
    max_pending: Annotated[int, Field(ge=1, le=100)] = 4
    wait_for_footage_s: Annotated[float, Field(ge=0, le=3600)] = 60.0
    # Refuse a request whose upload token travels in clear (upload_token) instead of sealed to this
    # node's key (upload_token_sealed): whoever can read cmd/# on the broker would hold the token.
    require_sealed_token: bool = True


class UploadConfig(_Section):
    max_kbps: Annotated[float, Field(gt=0, le=1_000_000)] = 2000.0
    chunk_kb: Annotated[int, Field(ge=4, le=65536)] = 256
    timeout_s: Annotated[float, Field(gt=0, le=600)] = 30.0
    retry_min_s: Annotated[float, Field(gt=0, le=600)] = 2.0
    retry_max_s: Annotated[float, Field(gt=0, le=3600)] = 120.0
    give_up_after_s: Annotated[float, Field(gt=0, le=30 * 86400)] = 86400.0
    progress_interval_s: Annotated[float, Field(gt=0, le=3600)] = 5.0
    ca_file: ExistingFile | None = None
    allow_http: bool = False
    allowed_hosts: list[str] = Field(default_factory=list)

    @field_validator("allowed_hosts")
    @classmethod
    def _hosts(cls, v: list[str]) -> list[str]:
        for h in v:
            if not re.fullmatch(r"[A-Za-z0-9.-]{1,253}|\[[0-9A-Fa-f:.]{2,45}\]|[0-9A-Fa-f:]{2,45}", h):
                raise ValueError(f"{h!r} is not a host name or IP address (no scheme, port or path)")
        return [h.strip("[]").lower() for h in v]

    @model_validator(mode="after")
    def _backoff_order(self) -> UploadConfig:
        if self.retry_max_s < self.retry_min_s:
            raise ValueError("retry_max_s must be >= retry_min_s")
        return self


class SecurityConfig(_Section):
    trusted_keys: dict[str, Path] = Field(default_factory=dict)
    node_key_file: Path | None = None
    max_command_ttl_s: Annotated[float, Field(gt=0, le=7 * 86400)] = 3600.0

    @field_validator("node_key_file")
    @classmethod
    def _node_key(cls, v: Path | None) -> Path | None:
        if v is not None and not _is_file(v):
            raise ValueError(f"file not found: {v} (create it with 'edge-agent provision', or leave this key "
                             "out to have the agent create one under data_dir)")
        return v

    @field_validator("trusted_keys")
    @classmethod
    def _keys(cls, v: dict[str, Path]) -> dict[str, Path]:
        from edge_agent.core.keys import KeyFileError, load_public_key

        for key_id, path in v.items():
            if not _TOPIC_SAFE.fullmatch(key_id):
                raise ValueError(f"key id {key_id!r} must be 1-64 letters, digits, '.', '_' or '-'")
            try:
                load_public_key(path)
            except KeyFileError as exc:
                raise ValueError(f"{key_id}: {exc}") from None
        return v


class AuditConfig(_Section):
    max_file_mb: Annotated[float, Field(ge=0.01, le=1024)] = 16.0
    refusal_summary_s: Annotated[float, Field(ge=1, le=86400)] = 60.0
    # Access logs of police data are kept 5 years (DPR 15/2018 art. 24); rotated files older go.
    keep_days: Annotated[float, Field(ge=1, le=36525)] = 1827.0


class PrivacyConfig(_Section):
    # Areas not needed (private gardens, windows) blacked out before anything reaches disk or the link.
    masks: list[list[Point]] = Field(default_factory=list)
    # One bound for every store of personal data on the pole (footage has recorder.max_age_days).
    max_age_days: Annotated[float, Field(gt=0, le=366)] = 7.0

    @field_validator("masks")
    @classmethod
    def _polygons(cls, v: list[list[Point]]) -> list[list[Point]]:
        return check_polygons(v, "privacy mask")


class HealthConfig(_Section):
    interval_s: Annotated[float, Field(ge=1, le=86400)] = 30.0


class RemoteConfigConfig(_Section):
    self_check_s: Annotated[float, Field(ge=1, le=3600)] = 30.0


class LogConfig(_Section):
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


def _default_node_id() -> str:
    name = re.sub(r"[^A-Za-z0-9._-]", "-", socket.gethostname())[:64]
    return name or "edge-node"


class Config(_Section):
    node_id: str = Field(default_factory=_default_node_id)
    data_dir: Path = Path("./edge-agent-data")
    camera: CameraConfig = Field(default_factory=CameraConfig)
    demo: DemoConfig = Field(default_factory=DemoConfig)
    motion: MotionConfig = Field(default_factory=MotionConfig)
    alpr: AlprConfig = Field(default_factory=AlprConfig)
    events: EventsConfig = Field(default_factory=EventsConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    formats: FormatsConfig = Field(default_factory=FormatsConfig)
    hotlist: HotlistConfig = Field(default_factory=HotlistConfig)
    outbox: OutboxConfig = Field(default_factory=OutboxConfig)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    health: HealthConfig = Field(default_factory=HealthConfig)
    log: LogConfig = Field(default_factory=LogConfig)
    recorder: RecorderConfig = Field(default_factory=RecorderConfig)
    clips: ClipsConfig = Field(default_factory=ClipsConfig)
    upload: UploadConfig = Field(default_factory=UploadConfig)
    security: SecurityConfig = Field(default_factory=SecurityConfig)
    remote_config: RemoteConfigConfig = Field(default_factory=RemoteConfigConfig)
    audit: AuditConfig = Field(default_factory=AuditConfig)
    privacy: PrivacyConfig = Field(default_factory=PrivacyConfig)

    @field_validator("node_id")
    @classmethod
    def _node_id(cls, v: str) -> str:
        if not _TOPIC_SAFE.fullmatch(v):
            raise ValueError("must be 1-64 letters, digits, '.', '_' or '-' (it is an MQTT topic level)")
        return v

    def summary(self) -> str:
        tls = "tls" if self.mqtt.tls else "plain"
        return (
            f"node {self.node_id}: camera {redact(self.camera.source)} {self.camera.width}x{self.camera.height}"
            f"@{self.camera.fps:g}fps, motion {'on' if self.motion.enabled else 'off'}, "
            f"alpr {'on' if self.alpr.enabled else 'off'}, mqtt {self.mqtt.host}:{self.mqtt.port} ({tls}) "
            f"prefix {self.mqtt.prefix}, data {self.data_dir}"
        )


def _did_you_mean(loc: tuple[Any, ...]) -> str | None:
    """The nearest known key where an unknown one was found ("camera.soruce" -> "source")."""
    import difflib

    model: Any = Config
    for part in loc[:-1]:
        field_info = getattr(model, "model_fields", {}).get(part)
        if field_info is None:
            return None
        ann = field_info.annotation
        # "TlsConfig | None" and similar: the section model inside the annotation.
        candidates = [a for a in getattr(ann, "__args__", (ann,)) if hasattr(a, "model_fields")]
        if not candidates:
            return None
        model = candidates[0]
    known = list(getattr(model, "model_fields", {}))
    match = difflib.get_close_matches(str(loc[-1]), known, n=1, cutoff=0.6)
    return match[0] if match else None


def _describe(err: dict[str, Any]) -> str:
    key = ".".join(str(p) for p in err["loc"])
    kind = err["type"]
    if kind == "extra_forbidden":
        hint = _did_you_mean(err["loc"])
        return f"{key}: unknown key" + (f" (did you mean {hint}?)" if hint else "")
    if kind == "missing":
        return f"{key}: required key is missing"
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = err.get("input")
    shown = "" if isinstance(got, dict | list) else f" (got {got!r})"
    return f"{key}: {msg}{shown}"


def validate(raw: dict[str, Any], origin: str = "config") -> Config:
    """Builds a Config from parsed TOML, or raises ConfigError naming every bad key."""
    try:
        return Config.model_validate(raw)
    except ValidationError as exc:
        lines = [_describe(dict(e)) for e in exc.errors()]
        raise ConfigError(f"{origin}: " + "; ".join(lines)) from None


_MAX_NESTING = 100  # a real config nests 3 deep (motion.masks); tomllib itself has no limit


def _nesting(text: str) -> int:
    """Deepest bracket/brace nesting, counting those inside strings too (an over-estimate, which is safe).

    tomllib recurses once per level: near the interpreter's recursion limit the RecursionError can turn into
    a fatal "cannot recover from stack overflow" when anything else runs Python code at that depth (a GC
    callback), so deep input is refused before it is parsed, not only caught."""
    depth = deepest = 0
    for ch in text:
        if ch in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif ch in "]}":
            depth = max(depth - 1, 0)
    return deepest


DEFAULT_CONFIG = Path("/etc/edge-agent/edge-agent.toml")


def resolve_config(given: Path | None) -> Path | None:
    """The one default every command uses: the file given, else the pole's file when it exists, else None
    (the embedded defaults)."""
    if given is not None:
        return given
    return DEFAULT_CONFIG if DEFAULT_CONFIG.is_file() else None


def load(path: Path | None) -> Config:
    """Loads and validates a config file; None gives the embedded defaults."""
    if path is None:
        return Config()
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: config file not found") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read config file: {exc}") from None
    if _nesting(text) > _MAX_NESTING:
        raise ConfigError(f"{path}: not valid TOML: nested too deeply (more than {_MAX_NESTING} levels)")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    except RecursionError:
        # tomllib recurses per nesting level: a deeply nested array or table would escape as a traceback.
        raise ConfigError(f"{path}: not valid TOML: nested too deeply") from None
    return validate(raw, str(path))

"""Certification documents: in-toto Statements, DSSE envelopes signed with Ed25519, and
their verification against the ledger.

A certificate is an in-toto Statement v1 (https://in-toto.io/Statement/v1) whose subject is
the release (``<app>@<release>``, digests: the artifact's and ``gitCommit``) and whose
predicate (type ``https://gonogo.dev/certification/v1``) says what was checked. Unsigned, the
file is the Statement as JSON. Signed, it is a DSSE envelope: ``payloadType``
``application/vnd.in-toto+json``, ``payload`` the base64 of the Statement's bytes, and one
signature over ``PAE(payloadType, payload)`` (DSSE v1) with an Ed25519 key.

The ledger ties a certificate to the run that issued it. The issuing run records a
``certification.issued`` event whose payload holds ``statement_sha256``, the sha256 of the
Statement's canonical JSON *without* the two ledger fields of the predicate; only then are
``ledger_event_hash`` and ``ledger_event_seq`` added to the predicate, so the event and the
file refer to each other without a circle. Verification: the signature (when signed), the
event (known, same hash, same run), the chain of events up to it, and the digest.

Keys (``GONOGO_SIGNING_KEY``; never logged, never in an error message): the value is either a
path to a key file or the key itself. A file may hold a PEM PKCS#8 private key (``openssl
genpkey -algorithm ed25519``), an OpenSSH private key (``ssh-keygen -t ed25519``, no
passphrase), the raw 32-byte seed, or the seed as base64 or hex text. The value itself may be
PEM text or the seed as base64 or hex. A public key (``--public-key``) likewise: a file or the
value, as PEM (``openssl pkey -pubout``), an OpenSSH ``ssh-ed25519 AAAA…`` line, raw 32 bytes,
base64 or hex. The signature's ``keyid`` is the sha256 (hex) of the raw 32-byte public key.
"""

from __future__ import annotations

import base64
import binascii
import copy
import hashlib
import json
import os
import re
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gonogo.errors import GonogoError

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )

    from gonogo.ledger.store import Ledger

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://gonogo.dev/certification/v1"
PAYLOAD_TYPE = "application/vnd.in-toto+json"
EVENT_KIND = "certification.issued"
SIGNING_KEY_ENV = "GONOGO_SIGNING_KEY"
LEDGER_FIELDS = ("ledger_event_hash", "ledger_event_seq")

_HEX_KEY = re.compile(r"[0-9a-fA-F]{64}")


class CertificateInvalid(Exception):
    """The certificate does not check out. ``kind``: bad signature, not signed, not a
    certificate, unknown event, tampered ledger, digest mismatch."""

    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail


# -- the Statement ------------------------------------------------------------------------------


def subject(app: str, release: str, artifact: str, sha: str) -> dict[str, Any]:
    """The in-toto subject of a release: its artifact digest and its git commit."""
    algorithm, sep, value = artifact.partition(":")
    digest: dict[str, str] = {}
    if sep and value:
        digest[algorithm.lower()] = value.lower()
    elif artifact:
        digest["sha256"] = artifact.lower()
    digest["gitCommit"] = sha
    return {"name": f"{app}@{release}", "digest": digest}


def statement(subjects: list[dict[str, Any]], predicate: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "_type": STATEMENT_TYPE,
        "subject": subjects,
        "predicateType": PREDICATE_TYPE,
        "predicate": dict(predicate),
    }


def canonical(value: Any) -> bytes:
    """The canonical JSON bytes that are hashed and signed (sorted keys, no spaces)."""
    return json.dumps(
        value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def content_digest(doc: Mapping[str, Any]) -> str:
    """sha256 (hex) of the Statement without the predicate's ledger fields: what the
    ``certification.issued`` event records."""
    bare = copy.deepcopy(dict(doc))
    predicate = bare.get("predicate")
    if isinstance(predicate, dict):
        for name in LEDGER_FIELDS:
            predicate.pop(name, None)
    return hashlib.sha256(canonical(bare)).hexdigest()


def with_ledger_event(doc: Mapping[str, Any], *, event_hash: str, seq: int) -> dict[str, Any]:
    out = copy.deepcopy(dict(doc))
    out["predicate"]["ledger_event_hash"] = event_hash
    out["predicate"]["ledger_event_seq"] = seq
    return out


def render(doc: Mapping[str, Any]) -> bytes:
    """The certificate file's bytes: readable JSON (key order as built), newline-terminated."""
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode()


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file in the same folder and a rename:
    a reader sees the old file or the new one, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        tmp.chmod(0o644)
        tmp.replace(path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


# -- keys ---------------------------------------------------------------------------------------


def load_signing_key(value: str) -> Ed25519PrivateKey:
    """The Ed25519 private key named or held by ``value`` (see the module docstring)."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    raw, from_file = _key_material(value)
    where = "the file it names" if from_file else "its value"
    key: Any = None
    text = raw.strip()
    if text.startswith(b"-----BEGIN"):
        key = _load_pem_private(text)
    else:
        seed = _decode_text(text)
        if seed is None and from_file and len(raw) in (32, 64):
            seed = raw
        if seed is not None and len(seed) == 64:  # NaCl's seed || public key
            seed = seed[:32]
        if seed is not None and len(seed) == 32:
            key = Ed25519PrivateKey.from_private_bytes(seed)
    if not isinstance(key, Ed25519PrivateKey):
        raise GonogoError(
            f"{SIGNING_KEY_ENV}: {where} is not an Ed25519 private key (PEM, OpenSSH without a "
            "passphrase, or the 32-byte seed raw, base64 or hex)"
        )
    return key


def load_public_key(value: str) -> Ed25519PublicKey:
    """The Ed25519 public key named or held by ``value`` (see the module docstring)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

    raw, from_file = _key_material(value)
    where = "the file given" if from_file else "the value given"
    text = raw.strip()
    key: Any = None
    try:
        if text.startswith(b"-----BEGIN"):
            key = serialization.load_pem_public_key(text)
        elif text.startswith(b"ssh-ed25519 "):
            key = serialization.load_ssh_public_key(text)
        else:
            data = _decode_text(text)
            if data is None and from_file and len(raw) == 32:
                data = raw
            if data is not None and len(data) == 32:
                key = Ed25519PublicKey.from_public_bytes(data)
    except (ValueError, TypeError):
        key = None
    if not isinstance(key, Ed25519PublicKey):
        raise GonogoError(
            f"--public-key: {where} is not an Ed25519 public key (PEM, an ssh-ed25519 line, or "
            "the 32 bytes raw, base64 or hex)"
        )
    return key


def raw_public(key: Ed25519PublicKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def key_id(key: Ed25519PublicKey) -> str:
    """sha256 (hex) of the raw public key: the DSSE ``keyid``."""
    return hashlib.sha256(raw_public(key)).hexdigest()


def public_key_text(key: Ed25519PublicKey) -> str:
    """The public key as base64 of its 32 raw bytes (what ``--public-key`` accepts)."""
    return base64.b64encode(raw_public(key)).decode("ascii")


def _key_material(value: str) -> tuple[bytes, bool]:
    """(bytes, read from a file?) for a key given as a path or as the key itself."""
    text = value.strip()
    if not text:
        raise GonogoError("the key is empty")
    if not text.startswith("-----BEGIN") and "\n" not in text and len(text) < 4096:
        path = Path(text).expanduser()
        try:
            if path.is_file():
                return path.read_bytes(), True
        except OSError as exc:
            raise GonogoError(f"cannot read the key file: {exc.strerror or exc}") from None
    return text.encode("utf-8"), False


def _load_pem_private(text: bytes) -> Any:
    from cryptography.hazmat.primitives import serialization

    try:
        if b"OPENSSH PRIVATE KEY" in text:
            return serialization.load_ssh_private_key(text, password=None)
        return serialization.load_pem_private_key(text, password=None)
    except (ValueError, TypeError):
        return None


def _decode_text(text: bytes) -> bytes | None:
    """Hex or base64 (standard or URL-safe) text as bytes; None when it is neither."""
    compact = b"".join(text.split())
    if _HEX_KEY.fullmatch(compact.decode("ascii", errors="replace")):
        return bytes.fromhex(compact.decode("ascii"))
    return b64decode(compact)


def b64decode(data: bytes | str) -> bytes | None:
    """Standard or URL-safe base64, padding optional; None when it is neither."""
    raw = data.encode("ascii", errors="replace") if isinstance(data, str) else data
    raw = raw.strip()
    padded = raw + b"=" * (-len(raw) % 4)
    for altchars in (None, b"-_"):
        try:
            return base64.b64decode(padded, altchars=altchars, validate=True)
        except (binascii.Error, ValueError):
            continue
    return None


# -- DSSE ---------------------------------------------------------------------------------------


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE v1 pre-authentication encoding: the bytes a signature covers.

    ``"DSSEv1" SP LEN(type) SP type SP LEN(body) SP body``, lengths in bytes, ASCII decimal.
    """
    kind = payload_type.encode("utf-8")
    return b"DSSEv1 %d %b %d %b" % (len(kind), kind, len(payload), payload)


def sign(doc: Mapping[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """The Statement in a DSSE envelope with one Ed25519 signature."""
    payload = canonical(doc)
    signature = key.sign(pae(PAYLOAD_TYPE, payload))
    return {
        "payloadType": PAYLOAD_TYPE,
        "payload": base64.b64encode(payload).decode("ascii"),
        "signatures": [
            {
                "keyid": key_id(key.public_key()),
                "sig": base64.b64encode(signature).decode("ascii"),
            }
        ],
    }


def is_envelope(doc: Mapping[str, Any]) -> bool:
    return "payloadType" in doc or ("payload" in doc and "signatures" in doc)


def open_envelope(envelope: Mapping[str, Any], key: Ed25519PublicKey) -> dict[str, Any]:
    """The Statement inside a DSSE envelope, once a signature verifies with ``key``."""
    from cryptography.exceptions import InvalidSignature

    kind = envelope.get("payloadType")
    if kind != PAYLOAD_TYPE:
        raise CertificateInvalid(
            "not a certificate", f"payloadType is {kind!r}, not {PAYLOAD_TYPE}"
        )
    payload = b64decode(str(envelope.get("payload", "")))
    signatures = envelope.get("signatures")
    if payload is None or not isinstance(signatures, list) or not signatures:
        raise CertificateInvalid("not a certificate", "the envelope has no payload or signature")
    message = pae(PAYLOAD_TYPE, payload)
    wanted = key_id(key)
    keyids: list[str] = []
    for entry in signatures[:16]:  # a bounded number of tries
        if not isinstance(entry, Mapping):
            continue
        keyids.append(str(entry.get("keyid") or "?"))
        sig = b64decode(str(entry.get("sig", "")))
        if sig is None:
            continue
        try:
            key.verify(sig, message)
        except InvalidSignature:
            continue
        break
    else:
        signed_by = ", ".join(k[:16] for k in keyids) or "?"
        detail = (
            f"no signature verifies with public key {wanted[:16]} (signed by key {signed_by})"
            if wanted not in keyids
            else f"the signature of key {wanted[:16]} does not match the payload (altered)"
        )
        raise CertificateInvalid("bad signature", detail)
    try:
        doc = json.loads(payload)
    except ValueError:
        raise CertificateInvalid("not a certificate", "the payload is not JSON") from None
    if not isinstance(doc, dict):
        raise CertificateInvalid("not a certificate", "the payload is not a JSON object")
    return doc


# -- verification -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verified:
    statement: dict[str, Any]
    signed: bool
    keyid: str | None
    event_seq: int
    event_hash: str
    warnings: list[str] = field(default_factory=list)

    @property
    def predicate(self) -> dict[str, Any]:
        value = self.statement["predicate"]
        assert isinstance(value, dict)
        return value


def verify(
    doc: Mapping[str, Any],
    ledger: Ledger,
    *,
    public_key: Ed25519PublicKey | None = None,
    require_signature: bool = False,
) -> Verified:
    """Check a certificate (a Statement or a DSSE envelope) against its signature and the
    ledger. Raises CertificateInvalid naming the first thing that is wrong."""
    signed = is_envelope(doc)
    if signed:
        if public_key is None:
            raise CertificateInvalid("bad signature", "the certificate is signed; no key given")
        stmt = open_envelope(doc, public_key)
    else:
        if require_signature:
            raise CertificateInvalid(
                "not signed", "the certificate has no signature, but a public key was given"
            )
        stmt = dict(doc)
    predicate = _check_shape(stmt)
    event = _find_event(ledger, predicate)
    intact, bad_seq, why = ledger.verify_chain()
    warnings: list[str] = []
    if not intact and bad_seq is not None:
        if bad_seq <= int(event["seq"]):
            raise CertificateInvalid("tampered ledger", f"ledger event #{bad_seq}: {why}")
        warnings.append(f"the ledger chain breaks after the certification, at #{bad_seq}: {why}")
    try:
        recorded = json.loads(event["payload"])
    except (TypeError, ValueError):
        recorded = {}
    expected = recorded.get("statement_sha256") if isinstance(recorded, dict) else None
    actual = content_digest(stmt)
    if expected != actual:
        raise CertificateInvalid(
            "digest mismatch",
            f"the certificate's sha256 is {actual[:16]}…, ledger event "
            f"#{event['seq']} recorded {str(expected)[:16]}…: the file was altered",
        )
    _check_release(ledger, predicate)
    return Verified(
        statement=stmt,
        signed=signed,
        keyid=key_id(public_key) if signed and public_key is not None else None,
        event_seq=int(event["seq"]),
        event_hash=str(event["hash"]),
        warnings=warnings,
    )


_REQUIRED = ("app", "environment", "release", "sha", "run_id", *LEDGER_FIELDS)


def _check_shape(stmt: Mapping[str, Any]) -> dict[str, Any]:
    if stmt.get("_type") != STATEMENT_TYPE:
        raise CertificateInvalid(
            "not a certificate", f"_type is {stmt.get('_type')!r}, not {STATEMENT_TYPE}"
        )
    if stmt.get("predicateType") != PREDICATE_TYPE:
        raise CertificateInvalid(
            "not a certificate",
            f"predicateType is {stmt.get('predicateType')!r}, not {PREDICATE_TYPE}",
        )
    predicate = stmt.get("predicate")
    if not isinstance(predicate, dict):
        raise CertificateInvalid("not a certificate", "it has no predicate")
    missing = [k for k in _REQUIRED if predicate.get(k) in (None, "")]
    if missing:
        raise CertificateInvalid("not a certificate", f"the predicate lacks {', '.join(missing)}")
    return predicate


def _find_event(ledger: Ledger, predicate: Mapping[str, Any]) -> dict[str, Any]:
    wanted = str(predicate["ledger_event_hash"])
    env = str(predicate["environment"])
    for event in ledger.events(kind=EVENT_KIND, env=env):
        if event["hash"] != wanted:
            continue
        if str(event["seq"]) != str(predicate["ledger_event_seq"]):
            raise CertificateInvalid(
                "unknown event",
                f"event {wanted[:16]}… is #{event['seq']} in the ledger, the certificate "
                f"says #{predicate['ledger_event_seq']}",
            )
        if event["run_id"] != predicate["run_id"]:
            raise CertificateInvalid(
                "unknown event",
                f"event #{event['seq']} belongs to run {event['run_id']}, the certificate "
                f"names run {predicate['run_id']}",
            )
        return event
    raise CertificateInvalid(
        "unknown event",
        f"the ledger has no {EVENT_KIND} event {wanted[:16]}… for {env}",
    )


def _check_release(ledger: Ledger, predicate: Mapping[str, Any]) -> None:
    """The release the certificate names is the ledger's: same SHA, same artifact."""
    env, label = str(predicate["environment"]), str(predicate["release"])
    for rel in ledger.releases(env):
        if rel.label != label:
            continue
        artifact = predicate.get("artifact")
        if rel.sha != predicate["sha"] or (artifact and artifact != rel.artifact):
            raise CertificateInvalid(
                "digest mismatch",
                f"the ledger's {env} {label} is {rel.sha[:12]} ({rel.artifact[:19]}…), the "
                f"certificate says {str(predicate['sha'])[:12]} ({str(artifact)[:19]}…)",
            )
        return
    raise CertificateInvalid("unknown event", f"the ledger has no release {env} {label}")

"""Certificates: in-toto Statements, DSSE signing with Ed25519, keys, and verification
against a real (SQLite) ledger."""

from __future__ import annotations

import base64
import copy
import json
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from gonogo import attest
from gonogo.errors import GonogoError
from gonogo.ledger import Ledger
from gonogo.ledger.store import ReleaseRow, now_iso

SHA = "4" * 40
ARTIFACT = "sha256:" + "a" * 64
RUN = "20250101T000000Z-abcdef"


@pytest.fixture
def ledger(tmp_path: Path) -> Iterator[Ledger]:
    led = Ledger.open(None, tmp_path / "ledger.db")
    for run_id, command in (("deploy-run", "deploy"), (RUN, "certify")):
        led.start_run(run_id, command=command, env="staging", actor="tester", host="h", pid=1)
    led.add_release(
        ReleaseRow(
            env="staging",
            version=3,
            run_id="deploy-run",
            sha=SHA,
            artifact=ARTIFACT,
            vars={},
            state="live",
            description="deploy",
            created_at=now_iso(),
            verified_at=None,
            live_since=None,
        ),
        actor="tester",
    )
    try:
        yield led
    finally:
        led.close()


def issue(ledger: Ledger, *, release: str = "v3") -> dict[str, Any]:
    """What `gonogo certify` does once every check passed: event first, then the file."""
    subject = attest.subject("webapp", release, ARTIFACT, SHA)
    stmt = attest.statement(
        [subject],
        {
            "app": "webapp",
            "environment": "staging",
            "release": release,
            "sha": SHA,
            "artifact": ARTIFACT,
            "run_id": RUN,
            "log_scan": {"counts": {"traceback": 0}},
        },
    )
    event = ledger.record(
        attest.EVENT_KIND,
        actor="tester",
        env="staging",
        run_id=RUN,
        payload={"statement_sha256": attest.content_digest(stmt)},
    )
    [row] = [e for e in ledger.events(kind=attest.EVENT_KIND) if e["hash"] == event]
    return attest.with_ledger_event(stmt, event_hash=event, seq=int(row["seq"]))


def raw(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption()
    )


def test_pae_matches_the_dsse_specification_vector() -> None:
    assert (
        attest.pae("http://example.com/HelloWorld", b"hello world")
        == b"DSSEv1 29 http://example.com/HelloWorld 11 hello world"
    )
    assert attest.pae("t\u00e9", b"") == "DSSEv1 3 t\u00e9 0 ".encode()  # lengths in bytes


def test_the_statement_is_in_toto_v1_with_artifact_and_commit_digests() -> None:
    subject = attest.subject("webapp", "v3", ARTIFACT, SHA)
    assert subject == {"name": "webapp@v3", "digest": {"sha256": "a" * 64, "gitCommit": SHA}}
    stmt = attest.statement([subject], {"release": "v3"})
    assert list(stmt) == ["_type", "subject", "predicateType", "predicate"]
    assert stmt["_type"] == "https://in-toto.io/Statement/v1"
    assert stmt["predicateType"] == "https://gonogo.dev/certification/v1"


def test_the_digest_leaves_out_the_ledger_fields_and_nothing_else() -> None:
    stmt = attest.statement([attest.subject("a", "v1", ARTIFACT, SHA)], {"release": "v1"})
    digest = attest.content_digest(stmt)
    linked = attest.with_ledger_event(stmt, event_hash="e" * 64, seq=7)
    assert (
        linked["predicate"]["ledger_event_seq"] == 7 and "ledger_event_seq" not in stmt["predicate"]
    )
    assert attest.content_digest(linked) == digest
    changed = copy.deepcopy(linked)
    changed["predicate"]["release"] = "v2"
    assert attest.content_digest(changed) != digest


def test_sign_and_open_an_envelope() -> None:
    key = Ed25519PrivateKey.generate()
    stmt = attest.statement([attest.subject("a", "v1", ARTIFACT, SHA)], {"release": "v1"})
    envelope = attest.sign(stmt, key)
    assert envelope["payloadType"] == "application/vnd.in-toto+json"
    assert envelope["signatures"][0]["keyid"] == attest.key_id(key.public_key())
    assert attest.open_envelope(envelope, key.public_key()) == stmt

    other = Ed25519PrivateKey.generate().public_key()
    with pytest.raises(attest.CertificateInvalid, match="bad signature: no signature verifies"):
        attest.open_envelope(envelope, other)
    altered = dict(envelope, payload=base64.b64encode(b'{"_type": "x"}').decode())
    with pytest.raises(attest.CertificateInvalid, match="does not match the payload"):
        attest.open_envelope(altered, key.public_key())
    with pytest.raises(attest.CertificateInvalid, match="not a certificate: payloadType"):
        attest.open_envelope(dict(envelope, payloadType="text/plain"), key.public_key())


def test_signing_keys_from_files_and_values(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    want = attest.key_id(key.public_key())
    pem = tmp_path / "key.pem"
    pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    openssh = tmp_path / "id_ed25519"
    openssh.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    seed_file = tmp_path / "seed.bin"
    seed_file.write_bytes(raw(key))
    b64_file = tmp_path / "seed.b64"
    b64_file.write_text(base64.b64encode(raw(key)).decode() + "\n")
    values = [
        str(pem),
        str(openssh),
        str(seed_file),
        str(b64_file),
        pem.read_text(),
        base64.b64encode(raw(key)).decode(),
        base64.urlsafe_b64encode(raw(key)).decode().rstrip("="),
        raw(key).hex(),
        base64.b64encode(raw(key) + attest.raw_public(key.public_key())).decode(),  # NaCl
    ]
    for value in values:
        assert attest.key_id(attest.load_signing_key(value).public_key()) == want, value


def test_a_bad_signing_key_is_one_line_without_the_key(tmp_path: Path) -> None:
    secret = base64.b64encode(b"x" * 31).decode()  # 31 bytes: not a seed
    for value in (secret, "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----", "  "):
        with pytest.raises(GonogoError) as err:
            attest.load_signing_key(value)
        assert "\n" not in err.value.message
        if value.strip():
            assert secret not in err.value.message and "nope" not in err.value.message
    public_pem = tmp_path / "pub.pem"
    public_pem.write_bytes(
        Ed25519PrivateKey.generate()
        .public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(GonogoError, match="the file it names is not an Ed25519 private key"):
        attest.load_signing_key(str(public_pem))


def test_public_keys_from_files_and_values(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate().public_key()
    want = attest.key_id(key)
    pem = key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    ssh = key.public_bytes(serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH)
    (tmp_path / "k.pem").write_bytes(pem)
    (tmp_path / "k.pub").write_bytes(ssh + b" me@host\n")
    (tmp_path / "k.raw").write_bytes(attest.raw_public(key))
    values = [
        str(tmp_path / "k.pem"),
        str(tmp_path / "k.pub"),
        str(tmp_path / "k.raw"),
        pem.decode(),
        ssh.decode(),
        attest.public_key_text(key),
        attest.raw_public(key).hex(),
    ]
    for value in values:
        assert attest.key_id(attest.load_public_key(value)) == want, value
    with pytest.raises(GonogoError, match="--public-key: the value given is not an Ed25519"):
        attest.load_public_key("AAAA")


def test_an_openssl_generated_key_signs_and_verifies(tmp_path: Path) -> None:
    """The key the documentation tells people to make, with the tool it names."""
    pem, pub = tmp_path / "certify.pem", tmp_path / "certify.pub.pem"
    # openssl is a CI dependency (.ci/run installs it); a missing one fails here.
    subprocess.run(
        ["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(pem)],
        check=True,
        capture_output=True,
    )
    subprocess.run(
        ["openssl", "pkey", "-in", str(pem), "-pubout", "-out", str(pub)],
        check=True,
        capture_output=True,
    )
    stmt = attest.statement([attest.subject("a", "v1", ARTIFACT, SHA)], {"release": "v1"})
    envelope = attest.sign(stmt, attest.load_signing_key(str(pem)))
    assert attest.open_envelope(envelope, attest.load_public_key(str(pub))) == stmt


def test_a_certificate_verifies_against_the_ledger(ledger: Ledger) -> None:
    stmt = issue(ledger)
    verified = attest.verify(stmt, ledger)
    assert verified.signed is False and verified.keyid is None
    assert verified.event_seq == stmt["predicate"]["ledger_event_seq"]
    assert verified.warnings == []

    key = Ed25519PrivateKey.generate()
    envelope = attest.sign(stmt, key)
    signed = attest.verify(envelope, ledger, public_key=key.public_key(), require_signature=True)
    assert signed.signed and signed.keyid == attest.key_id(key.public_key())
    assert signed.statement == stmt


def test_what_is_wrong_is_named(ledger: Ledger) -> None:
    stmt = issue(ledger)

    def problem(doc: dict[str, Any], **kw: Any) -> str:
        with pytest.raises(attest.CertificateInvalid) as err:
            attest.verify(doc, ledger, **kw)
        return str(err.value)

    edited = copy.deepcopy(stmt)
    edited["predicate"]["log_scan"]["counts"]["traceback"] = 1
    assert problem(edited).startswith("digest mismatch: ")
    unknown = copy.deepcopy(stmt)
    unknown["predicate"]["ledger_event_hash"] = "b" * 64
    assert problem(unknown).startswith("unknown event: the ledger has no certification.issued")
    wrong_seq = copy.deepcopy(stmt)
    wrong_seq["predicate"]["ledger_event_seq"] = 1
    assert problem(wrong_seq).startswith("unknown event: ")
    other_run = copy.deepcopy(stmt)
    other_run["predicate"]["run_id"] = "someone-else"
    assert "belongs to run" in problem(other_run)
    key = Ed25519PrivateKey.generate().public_key()
    assert problem(stmt, public_key=key, require_signature=True).startswith("not signed: ")
    assert problem({"_type": "x"}).startswith("not a certificate: _type")
    no_release = issue(ledger, release="v9")
    assert problem(no_release) == "unknown event: the ledger has no release staging v9"


def test_a_tampered_ledger_is_caught_up_to_the_event_only(ledger: Ledger, tmp_path: Path) -> None:
    stmt = issue(ledger)
    seq = stmt["predicate"]["ledger_event_seq"]
    ledger.record("later.event", actor="tester", payload={"n": 1})
    db = tmp_path / "ledger.db"

    def edit(sql: str, *args: Any) -> None:
        conn = sqlite3.connect(db)
        with conn:
            conn.execute(sql, args)
        conn.close()

    # Broken after the certification: still valid, with a warning.
    edit("UPDATE events SET payload = ? WHERE kind = 'later.event'", json.dumps({"n": 2}))
    verified = attest.verify(stmt, ledger)
    assert verified.warnings and "breaks after the certification" in verified.warnings[0]
    # The event itself edited: invalid, naming the row.
    edit("UPDATE events SET actor = 'mallory' WHERE seq = ?", seq)
    with pytest.raises(attest.CertificateInvalid) as err:
        attest.verify(stmt, ledger)
    # (the reason after the row number is the ledger's own wording)
    assert str(err.value).startswith(f"tampered ledger: ledger event #{seq}: ")


def test_the_file_is_written_atomically(tmp_path: Path) -> None:
    path = tmp_path / "release" / "app_certified"
    attest.write_atomic(path, b"one\n")
    attest.write_atomic(path, attest.render({"b": 1, "a": 2}))
    assert json.loads(path.read_text()) == {"b": 1, "a": 2}
    assert path.read_text().endswith("}\n")
    assert [p.name for p in path.parent.iterdir()] == ["app_certified"]  # no temp left
    assert path.stat().st_mode & 0o777 == 0o644

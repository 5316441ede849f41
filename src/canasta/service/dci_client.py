"""Pulling registrations from another SPDCI registry (``canasta registry import --from-dci``).

canasta asks the other registry's ``/registry/sync/search`` page by page, signing each
request with its own ``dci`` key (the other registry must have registered canasta as a
partner, with the key canasta publishes at ``/.well-known/jwks.json``), and checks each answer's
signature against the key the other registry publishes. The ``Member`` records are written
as a registrations file and imported through ``import_registrations_file``: the same
validation as any file, with refused rows reported by file, row and field, and the same
deduplication afterwards (``canasta registry dedup``).
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import sqlalchemy as sa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from canasta.domain import dci_signature
from canasta.domain.errors import CanastaError
from canasta.registry.registrations import REGISTRATION_COLUMNS
from canasta.service import registry
from canasta.service.dci_exchange import now_ts

#: Every person in the other registry (everyone has a registration id, which an import
#: needs anyway, so the query asks for nothing the registry would not give).
DEFAULT_QUERY: dict[str, Any] = {"query_type": "expression", "query": {"registration_id": {"$ne": ""}}}
PAGE_SIZE = 500
MAX_PAGES = 100_000


class DciUnreachable(CanastaError):
    """The other registry did not answer, or answered what canasta cannot use."""

    code = "dci-unreachable"


def _sexes(value: object) -> str:
    return {"female": "F", "f": "F", "male": "M", "m": "M"}.get(
        str(value).strip().lower(), "X" if value else ""
    )


def _identifier(record: Mapping[str, Any], kind: str) -> str:
    lists = [
        record.get("member_identifier") or [],
        (record.get("demographic_info") or {}).get("identifier") or [],
    ]
    for identifiers in lists:
        for found in identifiers if isinstance(identifiers, list) else []:
            if isinstance(found, Mapping) and found.get("identifier_type") == kind:
                return str(found.get("identifier_value", ""))
    return ""


def row_of(record: Mapping[str, Any], declared: set[str]) -> dict[str, str]:
    """A ``Member`` record as a registrations row (empty where the record is silent: the
    import then refuses the row and says which field)."""
    person = record.get("demographic_info") if isinstance(record.get("demographic_info"), Mapping) else {}
    assert isinstance(person, Mapping)
    name = person.get("name") if isinstance(person.get("name"), Mapping) else {}
    address = person.get("address") if isinstance(person.get("address"), Mapping) else {}
    assert isinstance(name, Mapping) and isinstance(address, Mapping)
    row = {
        "registration_id": _identifier(record, "UIN"),
        "given_names": str(name.get("given_name", "")),
        "family_name": str(name.get("surname", "")),
        "second_family_name": str(name.get("second_surname", "")),
        "sex": _sexes(person.get("sex", "")),
        "date_of_birth": str(person.get("birth_date", "")),
        "region": str(address.get("region", "")),
        "municipality": str(address.get("city", "")),
        "address": str(address.get("street_address", "")),
        "phone": str(person.get("phone_number", "")),
        "household_ref": _identifier(record, "HOUSEHOLD_ID"),
    }
    for extra in record.get("additional_attributes") or []:
        if isinstance(extra, Mapping) and extra.get("name") in declared:
            row[str(extra["name"])] = "" if extra.get("value") is None else str(extra["value"])
    return row


class Client:
    """Signed synchronous searches of another registry."""

    def __init__(
        self,
        base_url: str,
        token: str,
        sender_id: str,
        key: Ed25519PrivateKey,
        http: httpx.Client | None = None,
        now: Callable[[], int] = lambda: int(datetime.now(UTC).timestamp()),
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise CanastaError(f"the registry's address must be http(s)://host[/prefix], not {base_url!r}")
        self.base = base_url.rstrip("/") + "/"
        self.token, self.sender_id, self.key = token, sender_id, key
        self.kid = dci_signature.key_id(sender_id, "dci")
        self.http = http or httpx.Client(timeout=60.0)
        self.now = now
        self._keys: dict[str, Ed25519PublicKey] | None = None

    def _their_keys(self) -> dict[str, Ed25519PublicKey]:
        if self._keys is None:
            try:
                answer = self.http.get(self.base + ".well-known/jwks.json")
                answer.raise_for_status()
                keys = answer.json()["keys"]
                self._keys = {
                    str(k["kid"]): dci_signature.public_key_from(str(k["x"]))
                    for k in keys
                    if isinstance(k, Mapping) and k.get("kty") == "OKP" and "kid" in k
                }
            except (httpx.HTTPError, ValueError, KeyError, TypeError) as failed:
                raise DciUnreachable(
                    f"cannot read the registry's keys at {self.base}.well-known/jwks.json: {failed}"
                ) from None
        return self._keys

    def search(self, criteria: Mapping[str, Any], page_number: int, page_size: int) -> Mapping[str, Any]:
        """One page: the ``search_response`` item of a signed sync search."""
        message = {
            "transaction_id": str(uuid.uuid4()),
            "search_request": [
                {
                    "reference_id": str(uuid.uuid4()),
                    "timestamp": now_ts(),
                    "search_criteria": {
                        "version": "1.0.0",
                        "reg_type": "ns:org:RegistryType:Social",
                        "response_entity": "Member",
                        **criteria,
                        "pagination": {"page_size": page_size, "page_number": page_number},
                    },
                }
            ],
        }
        header = {
            "version": "1.0.0",
            "message_id": str(uuid.uuid4()),
            "message_ts": now_ts(),
            "action": "search",
            "sender_id": self.sender_id,
            "total_count": 1,
            "is_msg_encrypted": False,
        }
        body = {
            "signature": dci_signature.sign(header, message, self.key, self.kid, self.now()),
            "header": header,
            "message": message,
        }
        try:
            answer = self.http.post(
                self.base + "registry/sync/search",
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            )
        except httpx.HTTPError as failed:
            raise DciUnreachable(f"the registry at {self.base} did not answer: {failed}") from None
        try:
            envelope = answer.json()
        except ValueError:
            raise DciUnreachable(f"the registry answered {answer.status_code} without JSON") from None
        if not isinstance(envelope, dict):
            raise DciUnreachable(f"the registry answered {answer.status_code} with no envelope")
        if answer.status_code != 200:
            error = (envelope.get("message") or {}).get("error") or {} if isinstance(envelope, dict) else {}
            code, why = error.get("code", ""), error.get("message", "")
            raise DciUnreachable(f"the registry refused the search ({answer.status_code} {code}): {why}")
        keys = self._their_keys()
        try:
            dci_signature.verify(
                envelope.get("signature"), envelope["header"], envelope["message"], keys.get, self.now()
            )
        except (dci_signature.SignatureMissing, dci_signature.SignatureInvalid, KeyError, TypeError) as bad:
            raise DciUnreachable(f"the registry's answer is not signed by its published key: {bad}") from None
        if not isinstance(envelope["message"], Mapping):
            raise DciUnreachable("the registry's answer has no message")
        items = envelope["message"].get("search_response") or []
        if len(items) != 1 or not isinstance(items[0], Mapping):
            raise DciUnreachable("the registry's answer holds no search result")
        item = items[0]
        if item.get("status") != "succ":
            code, why = item.get("status_reason_code"), item.get("status_reason_message", "")
            raise DciUnreachable(f"the registry refused the query ({code}): {why}")
        return item

    def records(self, criteria: Mapping[str, Any], page_size: int = PAGE_SIZE) -> Iterator[Mapping[str, Any]]:
        """Every record the query finds, page by page, by the page size the registry says it
        used (it may cap what was asked), until an empty page or the total it gives."""
        seen = 0
        for page in range(1, MAX_PAGES + 1):
            item = self.search(criteria, page, page_size)
            data = item.get("data")
            found = data.get("reg_records") if isinstance(data, Mapping) else []
            if not isinstance(found, list):
                raise DciUnreachable("the registry's records are not a list")
            yield from (r for r in found if isinstance(r, Mapping))
            seen += len(found)
            pagination = item.get("pagination") if isinstance(item.get("pagination"), Mapping) else {}
            assert isinstance(pagination, Mapping)
            total, used = pagination.get("total_count"), pagination.get("page_size")
            if isinstance(used, int) and 0 < used < page_size:
                page_size = used  # the next pages are asked at the size the registry keeps to
            if not found or (isinstance(total, int) and seen >= total):
                return
        raise DciUnreachable(f"the registry returned more than {MAX_PAGES:,} pages")


def import_from_dci(
    engine: sa.Engine,
    client: Client,
    criteria: Mapping[str, Any] | None = None,
    all_or_nothing: bool = False,
    keep: Path | None = None,
) -> tuple[registry.ImportSummary, Path]:
    """Import what the other registry returns, through the file import. The records are
    written to ``keep`` (or a temporary file named after the registry) first, so refused
    rows can be named by row and field. Returns the summary and that file."""
    declared = set(registry.declared_attributes(engine))
    columns = [*REGISTRATION_COLUMNS, *sorted(declared)]
    host = urlsplit(client.base).netloc.replace(":", "_") or "registry"
    scratch = None if keep is not None else Path(tempfile.mkdtemp(prefix="canasta-dci-"))
    target = keep or Path(str(scratch)) / f"{host}.csv"
    try:
        with target.open("w", encoding="utf-8", newline="") as out:
            writer = csv.DictWriter(out, columns, extrasaction="ignore")
            writer.writeheader()
            for record in client.records(criteria or DEFAULT_QUERY):
                writer.writerow(row_of(record, declared))
        return registry.import_registrations_file(engine, target, all_or_nothing=all_or_nothing), target
    finally:
        # The records are people's data: a temporary copy does not outlive the import.
        if scratch is not None:
            shutil.rmtree(scratch, ignore_errors=True)

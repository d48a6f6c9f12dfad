"""Mask personal data and secrets in ticket text before it leaves for a frontier API.

Masking errs on the side of hiding: a reference number masked as ``[PHONE]`` costs little, a
leaked card number or API key costs a lot. Card numbers and IBANs are checksum-validated so that
ordinary long numbers (order ids, amounts) are left readable for the model.
"""

from __future__ import annotations

import re
from collections.abc import Callable

EMAIL = "[EMAIL]"
PHONE = "[PHONE]"
CARD = "[CARD]"
IBAN = "[IBAN]"
SECRET = "[SECRET]"


def mask_personal_data(text: str) -> str:
    """`text` with emails, phones, card numbers, IBANs and secrets replaced by placeholders."""
    # Order matters: secrets first (they contain digit runs that look like phones or cards),
    # then emails, then the checksum-validated numbers, and phones last as the loosest pattern.
    for pattern, replace in _RULES:
        text = pattern.sub(replace, text)
    return text


def luhn_ok(digits: str) -> bool:
    """Whether a string of digits passes the Luhn checksum of payment card numbers."""
    total = 0
    for i, char in enumerate(reversed(digits)):
        value = int(char)
        if i % 2 == 1:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_ok(compact: str) -> bool:
    """Whether an IBAN without separators passes its ISO 13616 mod-97 check."""
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(char, 36)) for char in rearranged.upper())
    return int(number) % 97 == 1


# -- patterns ---------------------------------------------------------------------------------

_SECRET_PATTERNS = [
    r"\bsk-[A-Za-z0-9_-]{16,}",  # OpenAI / Anthropic style keys (sk-..., sk-proj-..., sk-ant-...)
    r"\bgh[pousr]_[A-Za-z0-9]{20,}",  # GitHub tokens
    r"\bgithub_pat_[A-Za-z0-9_]{20,}",
    r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",  # AWS access key ids
    r"\bxox[abprs]-[A-Za-z0-9-]{10,}",  # Slack tokens
    r"\b[rsp]k_(?:live|test)_[A-Za-z0-9]{10,}",  # Stripe keys
    r"\bglpat-[A-Za-z0-9_-]{20,}",  # GitLab tokens
    r"\beyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{8,}",  # JWTs
    r"\b[0-9a-fA-F]{32,}\b",  # long hex: hashes, session ids, hex-encoded keys
]
_SECRET = re.compile("|".join(_SECRET_PATTERNS))
# A Bearer token or a "password: ..." pair: keep the word so the model knows what was there.
_BEARER = re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/-]{8,}=*")
_KEY_VALUE = re.compile(
    r"(?i)\b(password|passwd|passcode|pwd|secret|token|api[_-]?key|access[_-]?key)"
    r"(\s*[:=]\s*)[^\s,;]{4,}"
)
# Base64-like runs; only masked when they mix upper case, lower case and digits (see below).
_OPAQUE = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{32,}={0,2}")
# Parts bounded by RFC 5321's lengths (local part 64, label 63): unbounded, a long run of
# address characters without an "@" cost quadratic time (seconds for a 50 kB ticket).
# \w: addresses may be internationalised (josé@exämple.de); ' is common (o'brien@...).
_EMAIL = re.compile(r"[\w.%+'-]{1,64}@[\w-]{1,63}(?:\.[\w-]{1,63}){0,8}\.[^\W\d_]{2,63}\b")
# Greedy candidates; the longest checksum-valid prefix is what gets masked.
_IBAN = re.compile(r"\b[A-Za-z]{2}\d{2}(?:[ -]?[A-Za-z0-9]){11,30}\b")
_CARD = re.compile(r"(?<!\d)\d(?:[ -]?\d){12,18}(?!\d)")
_PHONE = re.compile(r"(?<![\w+])(?:\+|\b00)?\(?\d[\d ().-]{6,}\d(?!\d)")


def _mask_opaque(match: re.Match[str]) -> str:
    token = match.group()
    # Long words, paths and slugs rarely mix all three classes; keys and tokens nearly always do.
    mixed = (
        any(c.isdigit() for c in token)
        and any(c.islower() for c in token)
        and any(c.isupper() for c in token)
    )
    return SECRET if mixed else token


def _checked(
    placeholder: str, valid: Callable[[str], bool], min_len: int
) -> Callable[[re.Match[str]], str]:
    """A replacer that masks the longest prefix of the match whose alphanumerics pass `valid`.

    Only prefixes that end where a group ends (before a space or dash, or at the end of the match,
    which the patterns anchor at a word end) count: "DE89 ... 00 is" must not end inside "is".
    """

    def replace(match: re.Match[str]) -> str:
        raw = match.group()
        # End offsets in `raw` after each alphanumeric character, so a valid compact prefix
        # maps back to a span of the original text, separators included.
        ends = [i + 1 for i, char in enumerate(raw) if char.isalnum()]
        compact = "".join(char for char in raw if char.isalnum())
        for n in range(len(compact), min_len - 1, -1):
            end = ends[n - 1]
            if (end == len(raw) or not raw[end].isalnum()) and valid(compact[:n]):
                return placeholder + raw[end:]
        return raw

    return replace


def _mask_phone(match: re.Match[str]) -> str:
    raw = match.group()
    digits = sum(c.isdigit() for c in raw)
    # International numbers have at most 15 digits; with no "+" or "00" prefix, ask for 9 so
    # that dates (2024-01-15, 8 digits) stay readable.
    international = raw.startswith(("+", "00"))
    if digits > 15 or digits < (8 if international else 9):
        return raw
    return PHONE


_RULES: list[tuple[re.Pattern[str], str | Callable[[re.Match[str]], str]]] = [
    (_BEARER, rf"\1 {SECRET}"),
    (_KEY_VALUE, rf"\1\2{SECRET}"),
    (_SECRET, SECRET),
    (_OPAQUE, _mask_opaque),
    (_EMAIL, EMAIL),
    (_IBAN, _checked(IBAN, iban_ok, 15)),
    (_CARD, _checked(CARD, luhn_ok, 13)),
    (_PHONE, _mask_phone),
]

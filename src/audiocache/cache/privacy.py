"""Does a phrase look personal? Text that carries a caller's data — an account number, an
address, a balance, an appointment — is synthesized for that caller but never stored, so that
one caller's details are never served to, or kept for, anyone else.

The rules err on the side of not caching: a phrase that is skipped costs one synthesis, a
phrase that is wrongly kept leaks. They stay narrow enough for the prompts that make a cache
worth having ("One moment please", "Is there anything else?") to pass.
"""

from __future__ import annotations

import re


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_DIGIT = re.compile(r"\d")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)+")
_SPOKEN_EMAIL = re.compile(r"\b\w+ at \w+(?: \w+)? dot (?:com|org|net|co|io|edu|gov)\b", re.I)
_URL = re.compile(
    r"(?:\bhttps?://|\bwww\.|\b[\w-]+\.(?:com|org|net|io|co|uk|de|fr|info|biz|app|dev)\b"
    r"|\bdot (?:com|org|net|co uk)\b)",
    re.I,
)
_CURRENCY_SIGN = re.compile(r"[$£€¥₹₩₽¢]")

_UNITS = _words(
    "zero oh one two three four five six seven eight nine ten eleven twelve thirteen fourteen "
    "fifteen sixteen seventeen eighteen nineteen"
)
_TENS = _words("twenty thirty forty fifty sixty seventy eighty ninety")
_SCALES = _words("hundred thousand million billion trillion")
_ORDINALS = _words(
    "first second third fourth fifth sixth seventh eighth ninth tenth eleventh twelfth "
    "thirteenth fourteenth fifteenth sixteenth seventeenth eighteenth nineteenth twentieth "
    "thirtieth"
)
_NUMBER_WORDS = _UNITS | _TENS | _SCALES | {"double", "triple"}
# A lone "one" or "two" is ordinary prose ("one moment", "no one", "two options"); these
# words make a single number word a quantity that belongs to someone.
_QUANTITY_NOUNS = {
    "dollar", "dollars", "pound", "pounds", "euro", "euros", "cent", "cents", "pence",
    "penny", "bucks", "quid", "yen", "rupees", "percent",
}  # fmt: skip
_CLOCK = {"o'clock", "am", "pm", "a.m", "p.m"}
_MONTHS = _words(
    "january february march april may june july august september october november december"
)
_NATO = _words(
    "alpha alfa bravo charlie delta echo foxtrot golf hotel india juliet juliett kilo lima "
    "mike november oscar papa quebec romeo sierra tango uniform victor whiskey whisky xray "
    "x-ray yankee zulu"
)
_WORD = re.compile(r"[a-z]+(?:[-'.][a-z]+)*\.?", re.I)
_LETTER_RUN = re.compile(r"\b[A-Za-z](?:[\s.-]+[A-Za-z]\b){2,}")
_AS_IN = re.compile(r"\b[A-Za-z] (?:as|for) in \w+", re.I)
_TIME_OF_DAY = re.compile(r"\b(?:noon|midnight)\b|\bhalf past\b|\bquarter (?:past|to)\b", re.I)


def personal_data_reason(text: str) -> str | None:
    """Why ``text`` must not be stored ("digits", "email", "url", "money", "number",
    "date", "time", "code"), or None when nothing in it looks personal."""
    if _DIGIT.search(text):
        return "digits"
    if _EMAIL.search(text) or _SPOKEN_EMAIL.search(text):
        return "email"
    if _URL.search(text):
        return "url"
    if _CURRENCY_SIGN.search(text):
        return "money"
    if _TIME_OF_DAY.search(text):
        return "time"
    if _LETTER_RUN.search(text) or _AS_IN.search(text):
        return "code"
    words = [w.lower().rstrip(".") for w in _WORD.findall(text)]
    return _reason_in_words(words)


def is_personal(text: str) -> bool:
    return personal_data_reason(text) is not None


def _reason_in_words(words: list[str]) -> str | None:
    for i, word in enumerate(words):
        after = words[i + 1] if i + 1 < len(words) else ""
        before = words[i - 1] if i else ""
        if word in _MONTHS and (_is_number_word(after) or _is_number_word(before)):
            if word == "may" and after not in _ORDINALS and before not in _ORDINALS:
                continue  # "you may one day": the verb, not the month
            return "date"
        if word in _ORDINALS and (after == "of" and _at(words, i + 2) in _MONTHS):
            return "date"
        if word in _NATO and _at(words, i + 1) in _NATO:
            return "code"
        if _is_number_word(word):
            if word in _ORDINALS:
                continue
            if _is_number_word(after) and after not in _ORDINALS:
                return "number"
            if after in _QUANTITY_NOUNS:
                return "money"
            if after in _CLOCK:
                return "time"
    return None


def _is_number_word(word: str) -> bool:
    if word in _NUMBER_WORDS or word in _ORDINALS:
        return True
    # "twenty-five", "forty-second"
    parts = word.split("-")
    return len(parts) == 2 and parts[0] in _TENS and (parts[1] in _UNITS or parts[1] in _ORDINALS)


def _at(words: list[str], index: int) -> str:
    return words[index] if index < len(words) else ""

"""The personal-data rules against a corpus: what must never be stored, and the everyday
prompts that must still be cached."""

from __future__ import annotations

import pytest

from audiocache.cache.privacy import is_personal, personal_data_reason

PERSONAL = [
    ("Your order number is 48213.", "digits"),
    ("Your balance is ٣٤ dinars.", "digits"),  # Arabic-Indic digits are digits too
    ("Call us on 0800 123 456.", "digits"),
    ("Your appointment is on 12/03.", "digits"),
    ("I have sent it to jane.doe+calls@example.co.uk.", "email"),
    ("Is your e-mail john at example dot com?", "email"),
    ("Visit https://example.com/reset to reset it.", "url"),
    ("Go to www.example.org for details.", "url"),
    ("You can find it on acme-bank.com today.", "url"),
    ("That comes to $forty.", "money"),
    ("You owe fifty dollars.", "money"),
    ("A refund of twenty-five euros is on its way.", "money"),
    ("The fee is five percent.", "money"),
    ("Your code is four seven two nine.", "number"),
    ("It is twenty three in total.", "number"),
    ("Your balance is two hundred.", "number"),
    ("Press double seven to continue.", "number"),
    ("Your appointment is on March third.", "date"),
    ("Your appointment is on the fifth of June.", "date"),
    ("We will call you on May twelfth.", "date"),
    ("The engineer comes at seven o'clock.", "time"),
    ("The engineer comes at nine a.m. tomorrow.", "time"),
    ("The branch closes at noon.", "time"),
    ("Your slot is at half past four.", "time"),
    ("Your reference is A B C.", "code"),
    ("Your reference is X-Y-Z-Q.", "code"),
    ("That is B as in bravo.", "code"),
    ("Your booking code is alpha bravo charlie.", "code"),
]

NOT_PERSONAL = [
    "Thanks for calling Acme Bank, how can I help you today?",
    "One moment please.",
    "Let me transfer you to one of my colleagues.",
    "No one is available right now.",
    "I can help with two things: billing and orders.",
    "Is this your first call with us?",
    "You may hold or call back later.",
    "Is there anything else I can help you with?",
    "I'm sorry, I didn't catch that.",
    "Please say yes or no.",
    "Our offices are closed on public holidays.",
    "I am transferring you now.",
    "Could you spell your surname for me?",
    "A member of our team will be with you shortly.",
    "Press the star key to go back.",
    "Goodbye, and have a great day!",
    "What is your e-mail address?",
    "We take payments in dollars and euros.",
    "I'll send you a text message with a link.",
]


@pytest.mark.parametrize(("text", "reason"), PERSONAL)
def test_personal_phrases_are_recognised(text: str, reason: str) -> None:
    assert personal_data_reason(text) == reason
    assert is_personal(text)


@pytest.mark.parametrize("text", NOT_PERSONAL)
def test_everyday_prompts_are_not_personal(text: str) -> None:
    assert personal_data_reason(text) is None

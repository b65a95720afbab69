"""Personal data to plant in texts: emails, phone numbers in several formats, card numbers.

Every value is fake by construction (reserved example domains, 555 numbers, test-style cards)
but shaped like the real thing, so a redactor has to recognise the shape, not a list.
"""

from __future__ import annotations

import random

from pipelines.generate.lexicon import EMAIL_DOMAINS, PEOPLE, SURNAMES


def passes_luhn(number: str) -> bool:
    """Whether the digits of `number` (separators ignored) pass the Luhn check."""
    digits = [int(char) for char in number if char.isdigit()]
    total = 0
    # From the right, every second digit is doubled, and a doubled digit over 9 loses 9.
    for distance, value in enumerate(reversed(digits)):
        doubled = value * 2 if distance % 2 == 1 else value
        total += doubled - 9 if doubled > 9 else doubled
    return bool(digits) and total % 10 == 0


def _with_check_digit(body: str) -> str:
    return next(body + str(digit) for digit in range(10) if passes_luhn(body + str(digit)))


def card_number(rng: random.Random) -> str:
    """A Luhn-valid Visa, Mastercard or Amex number, grouped with spaces or dashes."""
    brand = rng.choice(("visa", "mastercard", "amex"))
    if brand == "amex":
        body = rng.choice(("34", "37")) + "".join(rng.choice("0123456789") for _ in range(12))
        digits = _with_check_digit(body)
        groups = [digits[:4], digits[4:10], digits[10:]]
    else:
        prefix = "4" if brand == "visa" else str(rng.randint(51, 55))
        body = prefix + "".join(rng.choice("0123456789") for _ in range(15 - len(prefix)))
        digits = _with_check_digit(body)
        groups = [digits[i : i + 4] for i in range(0, 16, 4)]
    return rng.choice((" ", "-", " ", "")).join(groups)


def phone_number(rng: random.Random) -> str:
    """A phone number in one of several national and international formats."""
    area = rng.choice(("206", "303", "512", "312", "617", "415"))
    line = f"{rng.randint(100, 199):04d}"
    shape = rng.randrange(6)
    if shape == 0:
        return f"+1 ({area}) 555-{line}"
    if shape == 1:
        return f"{area}-555-{line}"
    if shape == 2:
        return f"{area}.555.{line}"
    if shape == 3:
        return f"({area}) 555 {line}"
    if shape == 4:
        return f"+44 20 7946 0{rng.randint(100, 999)}"
    return f"+49 30 {rng.randint(1000, 9999)} {rng.randint(1000, 9999)}"


def email_address(rng: random.Random) -> str:
    """An address on a reserved example domain."""
    first = rng.choice(PEOPLE).lower()
    last = rng.choice(SURNAMES)
    local = rng.choice(
        (f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}{rng.randint(1, 99)}")
    )
    return f"{local}@{rng.choice(EMAIL_DOMAINS)}"

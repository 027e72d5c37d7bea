"""mailgate.pii: the SPEC's PII rule, as tables.

Valid identifiers are computed here from the published algorithms (NHS Modulus 11,
Luhn, HMRC's NINO prefix rules), never taken from the detector, and every negative
case sits beside a positive one built the same way, so a detector that found nothing
(or everything) fails.
"""

from __future__ import annotations

import dataclasses
import html
import pickle
import random
import unicodedata
from datetime import date

import pytest

from mailgate.pii import (
    ACCOUNT_DISTANCE,
    KEYWORD_DISTANCE,
    LABEL_DISTANCE,
    NAME_DISTANCE,
    ClientRegister,
    Finding,
    RegisterEntry,
    detect,
    detect_table,
    findings,
)
from mailgate.textnorm import normalise

# --------------------------------------------------------------------------- helpers


def nhs_check_digit(nine: str) -> int | None:
    """NHS Data Dictionary: weights 10..2, 11 - (sum mod 11); 11 -> 0; 10 -> no number."""
    total = sum(int(d) * w for d, w in zip(nine, range(10, 1, -1), strict=True))
    check = 11 - total % 11
    return None if check == 10 else (0 if check == 11 else check)


def nhs_numbers(n: int, seed: int) -> list[str]:
    r = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        nine = "".join(str(r.randint(0, 9)) for _ in range(9))
        check = nhs_check_digit(nine)
        if check is not None and len(set(nine + str(check))) > 1:
            out.append(nine + str(check))
    return out


def luhn_check_digit(body: str) -> int:
    total = 0
    for i, ch in enumerate(reversed(body)):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return (10 - total % 10) % 10


def card(prefix: str, length: int, seed: int = 0) -> str:
    r = random.Random(f"{prefix}-{length}-{seed}")
    body = prefix + "".join(str(r.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    return body + str(luhn_check_digit(body))


def grouped(digits: str, sizes: tuple[int, ...], sep: str = " ") -> str:
    parts, i = [], 0
    for size in sizes:
        parts.append(digits[i : i + size])
        i += size
    return sep.join(parts)


def nhs_grouped(n: str, sep: str = " ") -> str:
    return grouped(n, (3, 3, 4), sep)


NHS = nhs_numbers(40, seed=1)
# The NHS Digital example number; also checks the helper above against a known value.
EXAMPLE_NHS = "9434765919"
assert nhs_check_digit(EXAMPLE_NHS[:9]) == int(EXAMPLE_NHS[9])


def test_helper_builds_what_it_should() -> None:
    assert all(nhs_check_digit(n[:9]) == int(n[9]) for n in NHS)
    assert luhn_check_digit("7992739871") == 3  # the textbook Luhn example


# --------------------------------------------------------------------------- NHS


@pytest.mark.parametrize("n", NHS[:20])
@pytest.mark.parametrize("sep", [" ", "-"])
def test_grouped_nhs_number_counts_without_keyword(n: str, sep: str) -> None:
    assert detect(f"Ref {nhs_grouped(n, sep)} attached.") == {"nhs_number": 1}


@pytest.mark.parametrize("n", NHS[:10])
def test_contiguous_nhs_number_needs_a_keyword(n: str) -> None:
    assert detect(f"Reference {n} attached.") == {}
    assert detect(f"Patient reference {n} attached.") == {"nhs_number": 1}


@pytest.mark.parametrize(
    "keyword",
    [
        "NHS",
        "nhs",
        "patient",
        "Patient",
        "GP",
        "DOB",
        "date of birth",
        "Date of Birth",
        "hospital",
        "resident",
        "service user",
        "Service User",
        "client",
        "care plan",
        "Care Plan",
        "health",
        "HEALTH",
    ],
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_every_health_keyword_counts(keyword: str, where: str) -> None:
    text = f"{keyword}: {EXAMPLE_NHS}" if where == "before" else f"{EXAMPLE_NHS} ({keyword})"
    assert detect(text) == {"nhs_number": 1}


@pytest.mark.parametrize(
    "text",
    [
        f"NHSX {EXAMPLE_NHS}",
        f"inpatients {EXAMPLE_NHS}",
        f"healthy {EXAMPLE_NHS}",
        f"clientele {EXAMPLE_NHS}",
        f"hospitality {EXAMPLE_NHS}",
        f"{EXAMPLE_NHS} careplan",
    ],
)
def test_keywords_are_whole_words(text: str) -> None:
    assert detect(text) == {}


@pytest.mark.parametrize(
    ("gap", "expected"),
    [
        (1, 1),
        (2, 1),
        (KEYWORD_DISTANCE - 1, 1),
        (KEYWORD_DISTANCE, 1),
        (KEYWORD_DISTANCE + 1, 0),
        (KEYWORD_DISTANCE + 50, 0),
    ],
)
@pytest.mark.parametrize("where", ["before", "after"])
def test_keyword_distance_is_300_characters(gap: int, expected: int, where: str) -> None:
    assert KEYWORD_DISTANCE == 300
    # The gap is the characters strictly between keyword and number.
    filler = " " * gap
    text = f"patient{filler}{EXAMPLE_NHS}" if where == "before" else f"{EXAMPLE_NHS}{filler}patient"
    assert detect(text).get("nhs_number", 0) == expected


@pytest.mark.parametrize("gap", [299, 301])
def test_keyword_distance_through_prose(gap: int) -> None:
    prose = (" The boiler was serviced on time and the garden looks lovely." * 10)[: gap - 1]
    text = f"Our GP{prose} {EXAMPLE_NHS}"
    assert len(text) - len("Our GP") - 10 == gap
    assert detect(text).get("nhs_number", 0) == (1 if gap <= 300 else 0)


@pytest.mark.parametrize("n", NHS[:10])
def test_wrong_check_digit_never_counts(n: str) -> None:
    for digit in "0123456789":
        candidate = n[:9] + digit
        expected = 1 if digit == n[9] else 0
        assert detect(nhs_grouped(candidate)).get("nhs_number", 0) == expected, candidate
        assert detect(f"NHS {candidate}").get("nhs_number", 0) == expected, candidate


def test_check_value_of_ten_means_no_number() -> None:
    r = random.Random(5)
    tested = 0
    while tested < 10:
        nine = "".join(str(r.randint(0, 9)) for _ in range(9))
        if nhs_check_digit(nine) is not None:
            continue
        tested += 1
        for digit in "0123456789":
            assert detect(f"NHS number {nhs_grouped(nine + digit)}") == {}


@pytest.mark.parametrize("digit", "0123456789")
def test_all_same_digits_never_count(digit: str) -> None:
    n = digit * 10
    assert detect(f"NHS {nhs_grouped(n)} and NHS {n}") == {}


def test_some_all_same_numbers_do_pass_the_checksum() -> None:
    # So the test above is about the all-same rule, not just the checksum.
    assert any(nhs_check_digit(d * 9) == int(d) for d in "0123456789")


@pytest.mark.parametrize(
    "text",
    [
        "943 476-5919",  # mixed separators
        "943-476 5919",
        "943  476 5919",  # double space
        "943 4765 919",  # wrong grouping
        "9434 76 5919",
        "943.476.5919",  # not a separator the SPEC allows
        "943/476/5919",
        "1943 476 5919",  # inside a longer run of digits
        "943 476 59190",
        "943 476 5919123",
        "patient 19434765919",
        "patient 943476591900",
        "patient 94347659191234",
        "943\n476\n5919",  # two line breaks
        "943\t476\t5919",  # tabs separate table cells, not groups
    ],
)
def test_nhs_number_shapes_that_do_not_count(text: str) -> None:
    assert detect(text).get("nhs_number", 0) == 0
    # ...while the same number written properly does
    assert detect("943 476 5919") == {"nhs_number": 1}


@pytest.mark.parametrize(
    "text",
    ["943 476\n5919", "943 476\r\n5919", "943 476 \n5919", "943\n476 5919", "943-476-\n5919"],
)
def test_one_line_break_inside_a_grouped_number_still_counts(text: str) -> None:
    assert detect(text) == {"nhs_number": 1}


def test_nhs_number_inside_a_card_number_does_not_count() -> None:
    # A 16-digit card whose first ten digits are a valid NHS number.
    n = NHS[0]
    body = n + "12345"
    number = body + str(luhn_check_digit(body))
    assert detect(f"NHS patient card {number}").get("nhs_number", 0) == 0


@pytest.mark.parametrize(
    "header", ["NHS", "NHS No", "NHS No.", "NHS number", "nhs_number", "NHSNumber", "NHS #"]
)
def test_column_headed_nhs_counts_contiguous_numbers(header: str) -> None:
    rows = [["Name", header, "Room"], ["A. Person", NHS[0], "4"], ["B. Person", NHS[1], "5"]]
    assert detect_table(rows) == {"nhs_number": 2}
    assert detect("\n".join([NHS[0], NHS[1]]), headers=[header]) == {"nhs_number": 2}


def test_column_not_headed_nhs_needs_a_keyword() -> None:
    rows = [["Name", "Reference", "Room"], ["A. Person", NHS[0], "4"]]
    assert detect_table(rows) == {}
    assert detect(NHS[0], headers=["Reference"]) == {}
    assert detect(NHS[0], headers=["Ref (not nhs)"]) == {"nhs_number": 1}


def test_invalid_numbers_in_an_nhs_column_do_not_count() -> None:
    bad = NHS[0][:9] + str((int(NHS[0][9]) + 1) % 10)
    assert detect_table([["NHS No"], [bad], ["1111111111"], ["12345"]]) == {}


def test_international_phone_prefix_is_not_an_nhs_number() -> None:
    for n in NHS[:5]:
        assert detect(f"+44 {nhs_grouped(n)}") == {}
        assert detect(f"patient phone +44 (0) {nhs_grouped(n)}") == {}
        assert detect(f"0044 {nhs_grouped(n)}") == {}
        assert detect(f"ext 44 {nhs_grouped(n)}") == {"nhs_number": 1}
        assert detect(f"patient mobile +44 {n}") == {}
        assert detect(f"patient mobile 44 {n}") == {"nhs_number": 1}
        assert detect(f"box 1004 {nhs_grouped(n)}") == {"nhs_number": 1}  # not 0044


def test_counts_are_distinct_values() -> None:
    text = f"{nhs_grouped(NHS[0])}, again {nhs_grouped(NHS[0])}, {nhs_grouped(NHS[1], '-')}"
    assert detect(text) == {"nhs_number": 2}
    # the same number grouped and contiguous is one number
    assert detect(f"NHS {NHS[0]} / {nhs_grouped(NHS[0])}") == {"nhs_number": 1}


# --------------------------------------------------------------------------- NINO

NINO_FIRST = "ABCEGHJKLMNOPRSTWXYZ"
NINO_SECOND = "ABCEGHJKLMNPRSTWXYZ"
BAD_PREFIXES = {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}


def test_every_allowed_prefix_counts_and_every_other_does_not() -> None:
    letters = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
    allowed = 0
    for a in letters:
        for b in letters:
            ok = a in NINO_FIRST and b in NINO_SECOND and a + b not in BAD_PREFIXES
            allowed += ok
            assert detect(f"NI number {a}{b} 12 34 56 C.") == ({"nino": 1} if ok else {}), a + b
    assert allowed == 20 * 19 - 7  # HMRC: DFIQUV never; O never second; 7 barred pairs


@pytest.mark.parametrize(
    "text",
    [
        "AB123456C",
        "AB 12 34 56 C",
        "AB-12-34-56-C",
        "AB 123456 C",
        "AB 123456C",
        "ab123456c",
        "ab 12 34 56 c",
        "Ab 12 34 56 d",
        "(AB123456A)",
        "NINO: JG103759A.",
        "AB 12 34\n56 C",
    ],
)
def test_nino_forms(text: str) -> None:
    assert detect(text) == {"nino": 1}


@pytest.mark.parametrize(
    "text",
    [
        "QQ 12 34 56 C",  # Q never allowed (HMRC example prefix)
        "DA123456A",
        "FA123456A",
        "IA123456A",
        "UA123456A",
        "VA123456A",
        "AO123456A",  # O never second
        "AD123456A",
        "BG123456A",
        "GB123456A",
        "KN123456A",
        "NK123456A",
        "NT123456A",
        "TN123456A",
        "ZZ123456A",
        "AB123456E",  # suffix must be A-D
        "AB123456Z",
        "AB123456",
        "AB12345C",
        "AB1234567C",
        "XAB123456C",  # not a whole word
        "AB123456CD",
        "9AB123456C",
        "AB123456C9",
        "AB 12-34 56 C",  # mixed separators
        "AB 12  34 56 C",
        "AB.12.34.56.C",
    ],
)
def test_nino_rejections(text: str) -> None:
    assert detect(text) == {}


def test_nino_hyphen_form_that_presidio_misses() -> None:
    assert detect("NI: AB-12-34-56-C and ab123456c") == {"nino": 1}


# --------------------------------------------------------------------------- DOB

DOB_FORMS = [
    ("12/03/1950", date(1950, 3, 12)),
    ("12-03-1950", date(1950, 3, 12)),
    ("12.03.1950", date(1950, 3, 12)),
    ("1/3/1950", date(1950, 3, 1)),
    ("1/3/50", date(1950, 3, 1)),
    ("12 March 1950", date(1950, 3, 12)),
    ("12th Mar 1950", date(1950, 3, 12)),
    ("12th of March 1950", date(1950, 3, 12)),
    ("3rd Sept. 1950", date(1950, 9, 3)),
    ("March 12, 1950", date(1950, 3, 12)),
    ("Mar 12th, 1950", date(1950, 3, 12)),
    ("1950-03-12", date(1950, 3, 12)),
    ("12-Mar-1950", date(1950, 3, 12)),
    ("12-Mar-50", date(1950, 3, 12)),
    ("29/02/2000", date(2000, 2, 29)),
    ("03/25/1950", date(1950, 3, 25)),  # only makes sense US-style: still a birth date
]
DOB_LABELS = ["DOB", "dob", "D.O.B.", "D.O.B", "Date of birth", "DATE OF BIRTH", "Born", "born on"]


@pytest.mark.parametrize(("written", "_"), DOB_FORMS)
@pytest.mark.parametrize("label", DOB_LABELS)
def test_labelled_dates_are_dates_of_birth(written: str, _: date, label: str) -> None:
    assert detect(f"{label}: {written}") == {"date_of_birth": 1}
    assert detect(f"Resident details. {label} {written}, room 4.") == {"date_of_birth": 1}


@pytest.mark.parametrize(("written", "_"), DOB_FORMS)
def test_plain_dates_are_not_pii(written: str, _: date) -> None:
    assert detect(f"The meeting is on {written} in room 4.") == {}


@pytest.mark.parametrize(
    "written",
    [
        "31/02/1990",
        "30/02/2000",
        "29/02/1999",
        "29-02-1900",
        "32/01/1950",
        "00/01/1950",
        "13/13/1950",  # not a date read either way round
        "32/12/1950",
        "1950-02-30",
        "1950-13-01",
        "31 April 1950",
        "April 31, 1950",
        "0/0/00",
    ],
)
def test_labelled_non_dates_are_not_dates_of_birth(written: str) -> None:
    assert detect(f"DOB: {written}") == {}


@pytest.mark.parametrize(
    "text",
    [
        "born on the 12th of March 1950",
        "Date of birth is 12/03/1950",
        "DOB (12/03/1950)",
        "D.O.B.:\n12/03/1950",
        "dob=1950-03-12",
        "Birth date: 12/03/1950",
        "birthdate 12/03/1950",
    ],
)
def test_label_variants(text: str) -> None:
    assert detect(text) == {"date_of_birth": 1}


@pytest.mark.parametrize(
    ("gap", "expected"), [(1, 1), (LABEL_DISTANCE, 1), (LABEL_DISTANCE + 1, 0)]
)
def test_label_distance(gap: int, expected: int) -> None:
    assert LABEL_DISTANCE == 20
    text = "DOB:" + " " * (gap - 1) + "12/03/1950"
    assert detect(text).get("date_of_birth", 0) == expected


@pytest.mark.parametrize(
    "text",
    [
        "12/03/1950 DOB",  # label after the date
        "DOB: unknown, admitted 12/03/2024",  # other words in between
        "adobe 12/03/1950",  # not a whole word
        "reborn 12/03/1950",
        "newborn 12/03/1950",
        "DOB: 12/03/19501",  # not a date
        "DOB: 112/03/1950",
    ],
)
def test_dates_that_are_not_labelled(text: str) -> None:
    assert detect(text) == {}


@pytest.mark.parametrize(
    "header", ["DOB", "D.O.B.", "Date of birth", "date_of_birth", "DateOfBirth"]
)
def test_column_headed_dob_makes_dates_dates_of_birth(header: str) -> None:
    rows = [["Name", header], ["A. Person", "12/03/1950"], ["B. Person", "1 April 1941"]]
    assert detect_table(rows) == {"date_of_birth": 2}
    assert detect("12/03/1950\n1941-04-01", headers=[header]) == {"date_of_birth": 2}


@pytest.mark.parametrize(
    ("cell", "expected"),
    [
        ("12-Mar-50", 1),
        ("March 12, 1950", 1),
        ("12th of March 1950", 1),
        ("1950-03-12", 1),
        ("112 March 1950", 0),  # not a day
        ("Rmarch 12, 1950", 0),  # not a month
        ("12 Marchx 1950", 0),
        ("12/03/19501", 0),
        ("12-Mar-501", 0),
    ],
)
def test_dates_in_a_dob_column(cell: str, expected: int) -> None:
    assert detect(cell, headers=["DOB"]).get("date_of_birth", 0) == expected


def test_dates_in_other_columns_are_plain_dates() -> None:
    rows = [["Name", "Admitted"], ["A. Person", "12/03/2024"]]
    assert detect_table(rows) == {}
    assert detect_table([["Name", "DOB"], ["A. Person", "not known"]]) == {}


def test_same_birth_date_written_twice_is_one() -> None:
    assert detect("DOB 12/03/1950. Date of birth: 12 March 1950") == {"date_of_birth": 1}
    assert detect("DOB 12/03/1950. DOB 13/03/1950") == {"date_of_birth": 2}


# --------------------------------------------------------------------------- bank


@pytest.mark.parametrize("sort_code", ["20-00-00", "40 47 84", "12-34-56"])
@pytest.mark.parametrize(
    ("gap", "expected"), [(1, 1), (ACCOUNT_DISTANCE, 1), (ACCOUNT_DISTANCE + 1, 0)]
)
@pytest.mark.parametrize("order", ["sort first", "account first"])
def test_sort_code_with_account_nearby(sort_code: str, gap: int, expected: int, order: str) -> None:
    assert ACCOUNT_DISTANCE == 50
    filler = " " + "." * (gap - 2) + " " if gap >= 2 else " "
    text = (
        f"{sort_code}{filler}31926819" if order == "sort first" else f"31926819{filler}{sort_code}"
    )
    assert len(text) == 8 + len(sort_code) + gap
    assert detect(text).get("bank_account", 0) == expected


@pytest.mark.parametrize(
    "text",
    [
        "Sort code 20-00-00, account number 31926819.",
        "S/C: 40-47-84 A/C: 70872490",
        "40 47 84 70872490",
        "40-47-84 70872490",
        "70872490 40-47-84",
        "70872490 40 47 84",
        "Account 70872490 (sort code 40-47-84)",
    ],
)
def test_bank_details(text: str) -> None:
    assert detect(text) == {"bank_account": 1}


@pytest.mark.parametrize(
    "text",
    [
        "Sort code 20-00-00 only",
        "Account 31926819 only",
        "20-00-00 3192681",  # 7 digits
        "20-00-00 319268190",  # 9 digits
        "20-00-0 31926819",
        "20-00 00 31926819",  # mixed separators
        "11 20 00 00 31926819",  # inside a longer run of pairs
        "20 00 00 11 31926819",
        "20.00.00 31926819",
        "99 20-00-00 31926819",  # sort codes stand alone: no other number adjoins one
        "20-00-00 12 31926819",
    ],
)
def test_not_bank_details(text: str) -> None:
    assert detect(text) == {}


# --------------------------------------------------------------------------- cards

CARDS = [
    ("visa 13", "4", 13),
    ("visa 16", "4", 16),
    ("visa 19", "4", 19),
    ("mastercard 51", "51", 16),
    ("mastercard 55", "55", 16),
    ("mastercard 2221", "2221", 16),
    ("mastercard 2720", "2720", 16),
    ("amex 34", "34", 15),
    ("amex 37", "37", 15),
    ("discover 6011", "6011", 16),
    ("discover 6011/19", "6011", 19),
    ("discover 644", "644", 16),
    ("discover 649", "649", 16),
    ("discover 65", "65", 16),
    ("maestro 50", "50", 16),
    ("maestro 56", "56", 13),
    ("maestro 69", "69", 19),
    ("jcb 3528", "3528", 16),
    ("jcb 3589", "3589", 19),
    ("diners 300", "300", 14),
    ("diners 305", "305", 14),
    ("diners 36", "36", 14),
    ("diners 38", "38", 16),
]


@pytest.mark.parametrize(("name", "prefix", "length"), CARDS, ids=[c[0] for c in CARDS])
@pytest.mark.parametrize("form", ["contiguous", "spaces", "hyphens"])
def test_cards_per_scheme(name: str, prefix: str, length: int, form: str) -> None:
    number = card(prefix, length)
    if form == "contiguous":
        text = number
    else:
        sep = " " if form == "spaces" else "-"
        sizes: tuple[int, ...] = (4, 6, 5) if length == 15 else (4, 6, 4) if length == 14 else ()
        if not sizes:
            sizes = tuple([4] * (length // 4) + ([length % 4] if length % 4 else []))
        text = grouped(number, sizes, sep)
    assert detect(f"Card: {text} exp 09/27") == {"payment_card": 1}


@pytest.mark.parametrize(("name", "prefix", "length"), CARDS, ids=[c[0] for c in CARDS])
def test_cards_with_wrong_luhn(name: str, prefix: str, length: int) -> None:
    number = card(prefix, length)
    sizes = tuple([4] * (length // 4) + ([length % 4] if length % 4 else []))
    for digit in "0123456789":
        candidate = number[:-1] + digit
        valid = digit == number[-1]
        assert detect(candidate) == ({"payment_card": 1} if valid else {}), candidate
        # Grouped in fours, a 19-digit number whose first 16 digits are a card reads as
        # that card followed by three more digits (a CVV, say).
        first16 = candidate[:16]
        valid16 = length == 19 and luhn_check_digit(first16[:-1]) == int(first16[-1])
        expected = {"payment_card": 1} if valid or valid16 else {}
        assert detect(grouped(candidate, sizes)) == expected, candidate


@pytest.mark.parametrize(
    ("prefix", "length"),
    [
        ("1", 16),
        ("7", 16),
        ("8", 16),
        ("9", 16),
        ("2220", 16),
        ("2721", 16),
        ("3527", 16),
        ("3590", 16),
        ("306", 14),
        ("35", 15),
        ("0", 16),
    ],
)
def test_cards_with_no_scheme(prefix: str, length: int) -> None:
    assert detect(card(prefix, length)) == {}
    assert detect(grouped(card(prefix, length), (4, 4, 4, 4))) == {}


@pytest.mark.parametrize(
    ("prefix", "length"),
    [("4", 14), ("4", 15), ("4", 17), ("51", 15), ("51", 17), ("34", 16), ("37", 14), ("3528", 15)],
)
def test_cards_with_wrong_length_for_scheme(prefix: str, length: int) -> None:
    assert detect(card(prefix, length)) == {}


def test_card_edge_cases() -> None:
    visa = card("4", 16)
    assert detect(grouped(visa, (4, 4, 4, 4), " ")) == {"payment_card": 1}
    assert detect(grouped(visa, (4, 4, 4, 4), "-")) == {"payment_card": 1}
    assert (
        detect(grouped(visa, (4, 4, 4, 4), " ")[:9] + "-" + grouped(visa, (4, 4, 4, 4))[10:]) == {}
    )
    assert detect("1" + visa) == {}  # 17-digit run that is not a card
    assert detect(visa + "1") == {}
    assert detect(f"{grouped(visa, (4, 4, 4, 4))} 123") == {"payment_card": 1}  # CVV after it


# --------------------------------------------------------------------------- weak


@pytest.mark.parametrize(
    "text",
    [
        "Call me on 07700 900123.",
        "Office 0161 496 0000, fax 0161-496-0001",
        "+44 161 496 0000",
        "+44 (0)20 7946 0018",
        "020 7946 0018",
        "0800 123 4567",
        "(0161) 496 0999",
        "07700900123",
        "+447700900123",
        "SW1A 1AA",
        "M1 1AE",
        "margaret.jones@example.org",
        "Margaret Jones",
        "12/03/1950",
        "12 March 1950",
        "1950-03-12",
        "Order 12345678 shipped",
        "PO-2024-00123",
        "INV 1234567",
        "Tracking 1Z999AA10123456784",
        "ISBN 978-0-14-103614-4",
        "VAT GB 123 4567 89",
        "Company no. 01234567",
        "Meeting 10:30-11:45, room 12, £1,234.56",
        "Version 1.2.3 released 2024-03-12",
        "Visitors 12 34 56 78 90 today",
    ],
)
def test_weak_identifiers_alone_are_not_pii(text: str) -> None:
    assert detect(text) == {}
    # ...even in a care context full of keywords
    assert detect(f"Patient resident client NHS GP hospital health care plan: {text}") == {}


def test_realistic_mail_without_pii() -> None:
    mail = """Hi all,

Just a reminder that the resident's family meeting is on 12/03/2024 at 10:30 in room 4.
Please call the GP surgery on 0161 496 0000 (or +44 161 496 0001) to confirm, and
update the care plan afterwards. Order PO-2024-00123 (invoice 7716254, £1,234.56) for
gloves arrived on 11 March 2024. Kind regards, Sarah Jones, Deputy Manager, M14 5RB
On Tue, 12 Mar 2024 at 09:15, Tom Smith <tom@example.org> wrote:
> Thanks, see you on Tuesday 12th March.
"""
    assert detect(mail) == {}


# --------------------------------------------------------------------------- Unicode

NHS_TEXT = "943{s}476{s}5919"


@pytest.mark.parametrize(
    "space",
    [
        "\u00a0",  # no-break space
        "\u2009",  # thin space
        "\u202f",  # narrow no-break space
        "\u2007",  # figure space
        "\u2002",  # en space
        "\u3000",  # ideographic space
        "\u1680",  # ogham space mark (no NFKC mapping)
        "&nbsp;",
        "&#160;",
        "&#x2009;",
    ],
)
def test_unicode_spaces_separate_groups(space: str) -> None:
    assert detect(NHS_TEXT.format(s=space)) == {"nhs_number": 1}


@pytest.mark.parametrize(
    "dash", ["\u2010", "\u2011", "\u2012", "\u2013", "\u2212", "\ufe63", "\uff0d", "&#8211;"]
)
def test_unicode_dashes_separate_groups(dash: str) -> None:
    assert detect(NHS_TEXT.format(s=dash)) == {"nhs_number": 1}


@pytest.mark.parametrize(
    "invisible",
    ["\u200b", "\u200c", "\u200d", "\u2060", "\ufeff", "\u00ad", "\u202e", "&#8203;", "&shy;"],
)
def test_invisible_characters_inside_numbers_are_ignored(invisible: str) -> None:
    z = invisible
    assert detect(f"9{z}4{z}3 476 59{z}19") == {"nhs_number": 1}
    assert detect(f"AB{z}123{z}456C") == {"nino": 1}
    assert detect(f"D{z}O{z}B: 12/0{z}3/1950") == {"date_of_birth": 1}
    visa = card("4", 16)
    assert detect(z.join(visa)) == {"payment_card": 1}
    assert detect(f"pa{z}tient {z.join(EXAMPLE_NHS)}") == {"nhs_number": 1}


@pytest.mark.parametrize("mark", ["\u0301", "\u20e3", "\ufe0f", "\x80", "\x9f"])
def test_combining_marks_and_controls_inside_numbers_are_ignored(mark: str) -> None:
    assert detect(mark.join("943 476 5919")) == {"nhs_number": 1}
    assert detect(mark.join(card("4", 16))) == {"payment_card": 1}
    # ...while a name keeps its accent: "José" written decomposed is "José"
    assert normalise("Jose\u0301") == "José"


def test_fullwidth_and_other_compatibility_digits() -> None:
    fullwidth = str.maketrans("0123456789", "０１２３４５６７８９")
    assert detect("943 476 5919".translate(fullwidth)) == {"nhs_number": 1}
    assert detect("ＡＢ１２３４５６Ｃ") == {"nino": 1}
    bold = str.maketrans("0123456789", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗")
    assert detect("DOB 12/03/1950".translate(bold)) == {"date_of_birth": 1}
    assert detect(card("51", 16).translate(fullwidth)) == {"payment_card": 1}


def test_html_entities_are_decoded() -> None:
    assert detect("NHS&nbsp;number:&nbsp;&#57;434765919") == {"nhs_number": 1}
    assert detect("D&#46;O&#46;B&#46; 12/03/1950") == {"date_of_birth": 1}


def test_non_latin_text_around_identifiers() -> None:
    text = "Пацієнт 患者 – “Ann” ’s record: NHS 943 476 5919 🙂 £5 €6"
    assert detect(text) == {"nhs_number": 1}
    assert detect("Пацієнт 患者 – “Ann” 🙂 £5 €6 12/03/1950") == {}


def test_normalise_leaves_ordinary_text_alone() -> None:
    for text in ["plain ascii", "£5 for Zoë’s “café” – no", "Łukasz Żółć", "患者 🙂"]:
        expected = text.replace("–", "-")
        assert normalise(text) == expected


def test_normalise_is_idempotent_on_its_output() -> None:
    once = normalise("943\u00a0476\u2009５９１９ &amp; A\u200bB ﬁ")
    assert once == "943 476 5919 & AB fi"
    assert normalise(once) == once


# --------------------------------------------------------------------------- API


def test_findings_objects_hold_counts_only() -> None:
    counts = detect(f"{nhs_grouped(NHS[0])} AB123456C DOB 1/2/1950 {card('4', 16)}")
    assert counts == {"nhs_number": 1, "nino": 1, "date_of_birth": 1, "payment_card": 1}
    assert findings(counts) == [
        Finding("nhs_number", 1),
        Finding("nino", 1),
        Finding("date_of_birth", 1),
        Finding("payment_card", 1),
    ]
    assert [f.name for f in dataclasses.fields(Finding)] == ["type", "count"]
    with pytest.raises(dataclasses.FrozenInstanceError):
        findings(counts)[0].count = 2  # type: ignore[misc]
    assert findings({"nino": 0}) == []


def test_empty_and_huge_inputs() -> None:
    assert detect("") == {}
    assert detect_table([]) == {}
    assert detect_table([["NHS No"]]) == {}
    long_run = "1" * 100_000 + " " + "12 " * 50_000
    assert detect(long_run) == {}


# --------------------------------------------------------------------------- register

SALT = b"test-salt-0123456789abcdef"
PEOPLE = [
    RegisterEntry("Margaret Jones", "943 476 5919", "12/03/1941"),
    RegisterEntry("Albert O’Brien", None, date(1938, 11, 5)),
    RegisterEntry("Maria de Souza", NHS[3], None),
    RegisterEntry("Zoë Kowalska-Smith", None, "1950-01-31"),
]


@pytest.fixture(scope="module")
def register() -> ClientRegister:
    return ClientRegister.from_entries(SALT, PEOPLE)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Margaret Jones (12/03/1941) had a fall.", 1),
        ("Mrs Margaret Jones, born 12 March 1941", 1),
        ("MARGARET   JONES 1941-03-12", 1),
        ("Margaret Jones\n12-Mar-1941", 1),
        ("Margaret Jones, ref 9434765919", 1),
        ("Margaret Jones 943-476-5919", 1),
        ("Margaret Jones (12/03/1942)", 0),  # wrong date
        ("Margaret Jones", 0),  # name alone
        ("Resident born 12/03/1941", 0),  # date alone
        ("Margaret Smith 12/03/1941", 0),  # another name
        ("Albert Jones 12/03/1941", 0),
        ("Albert O'Brien 05/11/1938, Margaret Jones 12/03/1941", 2),
        ("Albert O’Brien 5 November 1938", 1),
        ("Albert O'Brien 12/03/1941", 0),  # somebody else's date
        (f"Maria de Souza {nhs_grouped(NHS[3])}", 1),
        (f"MARIA DE SOUZA {NHS[3]}", 1),
        ("Zoë Kowalska-Smith 31/01/1950", 1),
        ("zoë kowalska-smith 31/01/1950", 0),  # not capitalised: not read as a name
    ],
)
def test_register_matches_name_with_identifier(
    register: ClientRegister, text: str, expected: int
) -> None:
    assert register.match(text) == expected
    assert detect(text, register=register).get("client_register", 0) == expected


@pytest.mark.parametrize(("gap", "expected"), [(NAME_DISTANCE, 1), (NAME_DISTANCE + 1, 0)])
def test_register_name_distance(register: ClientRegister, gap: int, expected: int) -> None:
    assert NAME_DISTANCE == 1000
    assert register.match("Margaret Jones" + " " * gap + "12/03/1941") == expected
    assert register.match("12/03/1941" + " " * gap + "Margaret Jones") == expected


def test_register_in_a_table(register: ClientRegister) -> None:
    rows = [
        ["Name", "DOB", "Room"],
        ["Margaret Jones", "12/03/1941", "4"],
        ["Ann Other", "1/1/1950", "5"],
    ]
    assert detect_table(rows, register=register) == {"date_of_birth": 2, "client_register": 1}


def test_register_keeps_only_hashes(register: ClientRegister) -> None:
    blob = pickle.dumps(register.hashes) + repr(register.hashes).encode()
    for secret in (b"Margaret", b"margaret", b"Jones", b"1941", b"9434765919", b"943 476"):
        assert secret not in blob
    for person in register.hashes:
        assert all(h is None or len(h) == 32 for h in person)
    rebuilt = ClientRegister(SALT, register.hashes)
    assert rebuilt.match("Margaret Jones 12/03/1941") == 1
    assert len(rebuilt) == len(PEOPLE)


def test_register_keeps_nothing_personal_in_the_clear(register: ClientRegister) -> None:
    # It remembers dates that are nobody's birthday (a date alone is not personal
    # data), never a registered person's date, name or NHS number.
    register.match("Margaret Jones 12/03/1941 943 476 5919, Fred Bloggs 9434765919 1/2/2024")
    kept = repr(register._not_born_on)  # the only state that changes after construction
    assert "2024-02-01" in kept
    for secret in ("1941-03-12", "Margaret", "margaret", "Bloggs", "bloggs", "9434765919"):
        assert secret not in kept
    assert register.match("Margaret Jones 12/03/1941") == 1  # and still matches


def test_register_salt_matters(register: ClientRegister) -> None:
    other = ClientRegister(b"another-salt-0123456789", register.hashes)
    assert other.match("Margaret Jones 12/03/1941") == 0
    with pytest.raises(ValueError, match="salt"):
        ClientRegister(b"short", [])


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (RegisterEntry("Cher"), "two or three words"),
        (RegisterEntry("Anne Mary Jane Smith"), "two or three words"),
        (RegisterEntry("Ann Smith", "12345"), "10 digits"),
        (RegisterEntry("Ann Smith", None, "31/02/1950"), "calendar date"),
        (RegisterEntry("Ann Smith", None, "12/03/50"), "four-digit year"),
        (RegisterEntry("Ann Smith", None, "next Tuesday"), "four-digit year"),
    ],
)
def test_register_rejects_bad_entries(entry: RegisterEntry, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ClientRegister.from_entries(SALT, [entry])


def test_detect_without_register_never_reports_register() -> None:
    assert "client_register" not in detect("Margaret Jones 12/03/1941 9434765919")


# --------------------------------------------------------------------------- properties

try:
    from hypothesis import given, settings
    from hypothesis import strategies as st
except ImportError:  # the test extra does not list hypothesis yet
    HAVE_HYPOTHESIS = False
else:
    HAVE_HYPOTHESIS = True

if HAVE_HYPOTHESIS:
    # Text built from the characters that matter to the detector, so examples hit its
    # edges (digits, separators, look-alike spaces and digits, letters, labels).
    ALPHABET = st.sampled_from(
        [
            *"0123456789 -/.\n\r\tABCDOabcdo:,",
            *("\u00a0", "\u200b", "\u2013", "５", "&nbsp;", "DOB", "NHS", "born", "March"),
        ]
    )
    TEXTS = st.lists(ALPHABET, max_size=80).map("".join) | st.text(max_size=200)
    SEPARATORS = st.sampled_from([" ", "-", "\u00a0", "\u2009", "&nbsp;", "\u2013"])

    @settings(max_examples=400, deadline=None)
    @given(TEXTS)
    def test_detect_never_raises_and_reports_known_types(text: str) -> None:
        counts = detect(text)
        assert set(counts) <= {
            "nhs_number",
            "nino",
            "date_of_birth",
            "bank_account",
            "payment_card",
        }
        assert all(n > 0 for n in counts.values())
        assert detect(normalise(text).replace("&", " ")) is not None

    @settings(max_examples=300, deadline=None)
    @given(TEXTS, TEXTS, st.sampled_from(NHS), SEPARATORS)
    def test_grouped_nhs_number_is_found_in_any_surroundings(
        before: str, after: str, number: str, sep: str
    ) -> None:
        # ". " keeps "before" from ending in a dialling prefix ("+44 943 ...").
        text = f"{before}. {nhs_grouped(number, sep)} {after}"
        assert detect(text).get("nhs_number", 0) >= 1

    @settings(max_examples=300, deadline=None)
    @given(st.text(alphabet=st.characters(blacklist_categories=["Nd", "No"]), max_size=300))
    def test_text_without_digits_has_no_findings(text: str) -> None:
        # Every strong identifier has digits; NFKC could only make digits out of
        # characters in the excluded categories.
        assert detect(text.replace("&", "")) == {}

    def reference_normalise(text: str) -> str:
        """The normalisation spelled out slowly: unescape, NFKC, then fold."""
        out = []
        for ch in unicodedata.normalize("NFKC", html.unescape(text)):
            cat = unicodedata.category(ch)
            if cat in ("Zl", "Zp") or ch == "\x85":
                out.append("\n")
            elif cat in ("Cf", "Mn", "Me") or (cat == "Cc" and ord(ch) >= 0x80):
                continue
            elif cat == "Zs":
                out.append(" ")
            elif cat == "Pd" or ch == "\u2212":
                out.append("-")
            else:
                out.append(ch)
        return "".join(out)

    TRICKY = st.lists(
        st.sampled_from(
            [
                *"09aAé£’ -\n",
                *"\u00a0\u2009\u202f\u3000\u1680\u2028\x85\x80",  # spaces, breaks, C1
                *"\u200b\u200d\u2060\ufeff\u00ad\u202e",  # invisible
                *"\u2010\u2011\u2013\u2212\uff0d",  # dashes
                *"０９Ａ𝟗①ﬁ²",  # compatibility forms
                *"\u0301\u0308\u20e3\ufe0f",  # combining
                *"ｶﾞ",  # halfwidth kana and its voicing mark, which compose
                "&nbsp;",
                "&amp;",
                "&#57;",
                "&",
            ]
        ),
        max_size=40,
    ).map("".join)

    @settings(max_examples=1000, deadline=None)
    @given(TRICKY)
    def test_normalise_matches_the_slow_definition(text: str) -> None:
        assert normalise(text) == reference_normalise(text)

    @settings(max_examples=200, deadline=None)
    @given(TEXTS, st.sampled_from(NHS), st.sampled_from(NHS))
    def test_register_needs_the_same_persons_name_and_identifier(
        filler: str, own: str, other: str
    ) -> None:
        reg = ClientRegister.from_entries(SALT, [RegisterEntry("Edna Whitworth", own, None)])
        named = f"Edna Whitworth {filler[:100]} {nhs_grouped(own)}"
        assert reg.match(named) == 1
        if other != own:
            assert reg.match(f"Edna Whitworth {filler[:100]} {nhs_grouped(other)}") == 0

else:

    def test_property_tests_need_hypothesis() -> None:
        pytest.skip("hypothesis is not installed: add it to the test extra")


@pytest.mark.parametrize(
    ("rows", "expected"),
    [
        ([["NHS number 943 476 5919"]], {"nhs_number": 1}),
        ([["DOB: 12/03/1950"]], {"date_of_birth": 1}),
        ([["name", "NHS number 943 476 5919"], ["x", "y"]], {"nhs_number": 1}),
    ],
)
def test_identifiers_in_the_header_row_count(
    rows: list[list[str]], expected: dict[str, int]
) -> None:
    assert detect_table(rows) == expected

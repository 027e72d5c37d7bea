"""Throughput of the PII detector (mailgate.pii.detect) over realistic mail prose.

Standalone: `python bench/scanner.py [--mb 50] [--runs 3] [--no-naive]`. It generates
care-office email prose: a third of the sentences carry times, prices, dates, phone
numbers, order and room numbers, reply headers ("On Tue, 12 Mar 2024 at 10:30, ...");
curly apostrophes and pound signs make it non-ASCII, as real mail is. Every 20 kB it
plants one strong identifier, cycling through the types (client register people
included). A second, "digit-heavy" corpus puts numbers in nine sentences of ten.

For each corpus it prints MB/s (median of the runs, one core) for `detect` over the
whole text with every type on and a 200-person client register; the same without the
register; and part by part (~8 kB parts, as the gateway calls it per message part).
The planted identifiers are a self-check: each type must be found exactly as often as
planted (distinct values), so a fast but blind detector cannot pass. For comparison it
times a naive scanner written the way Presidio-style recognisers work: one regex per
type over the whole text, with a context-word search around each hit.

Contract: at least 50 MB/s on the "prose" corpus, whole text, every type on. The exit
status is non-zero if the contract or a self-check fails.
"""

from __future__ import annotations

import argparse
import random
import re
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from results import figure

from mailgate.pii import ClientRegister, RegisterEntry, detect

CONTRACT_MBPS = 50.0

PLAIN = [
    "Thanks for covering the late shift, it really helped the team.",
    "I’ve attached the minutes from the last meeting; let me know if anything is missing.",
    "Please remember to sign the visitors’ book when you arrive and when you leave.",
    "Can everyone make sure the medication room is locked when it’s not in use?",
    "The residents really enjoyed the music session this afternoon.",
    "We still need volunteers for the summer fair, so please ask your families.",
    "Could the night team check the call bells are all working before handover?",
    "Just a reminder that annual leave requests should go through the rota system.",
    "The kitchen will be closed for a deep clean, sandwiches will be provided instead.",
    "If you have any concerns about a client’s wellbeing, speak to the duty manager.",
    "Please update the care plan after every review and note who attended.",
    "The inspection went well and the inspectors were pleased with the activities.",
    "Our GP liaison will visit as usual; please have the notes ready.",
    "Kind regards, Sarah (Deputy Manager)",
    "Many thanks, Tom",
    "Hope you all had a lovely weekend.",
    "Let’s keep up the good work on infection control and hand hygiene.",
    "The new laundry trolleys have arrived and are in the store room by the lift.",
    "Please read the updated safeguarding policy and confirm you have understood it.",
    "Family members can now book visits online instead of phoning reception.",
    "Supervision sessions will restart next month once the new starters settle in.",
    "Please don’t park in the ambulance bay, even for a few minutes.",
]
NUMERIC = [
    "The team meeting is on {date} at {time} in room {n1}.",
    "The invoice came to £{price} including VAT, order number {order}.",
    "Call me on {phone} if you have any questions about the rota for week {n1}.",
    "Our office is at {n1} High Street, Manchester {pc}; reception opens at {time}.",
    "We had {n1} staff on shift yesterday and {n2} visitors between {time} and {time}.",
    "The GP surgery confirmed the appointment for {date}, please arrange transport.",
    "Training compliance is at {pct}% this month, up from {pct}% in {month}.",
    "The delivery of {n2} boxes of gloves arrived on {date}; reference {order}.",
    "The boiler engineer is booked for {date} between {time} and {time}, job {order}.",
    "Budget for {year}/{yy} is £{price}, which is {pct}% higher than last year.",
    "Flu jabs are offered on {date} from {time}; {n2} people have signed up so far.",
    "See ticket #{order} for the printer fault on the first floor.",
    "On {weekday}, {day} {mon} {year} at {time}, Sarah Smith <sarah.smith@example.org> wrote:",
    "Sent: {day} {month} {year} {time}",
    "Tel {phone} | Mob 07700 {n6} | www.example.org",
]
MONTHS = [
    *("January", "February", "March", "April", "May", "June", "July", "August"),
    *("September", "October", "November", "December"),
]
FIRST = ["Margaret", "Doris", "Albert", "Edna", "Harold", "Joan", "Stanley", "Irene", "Wilfred"]
LAST = ["Hughes", "Kowalski", "Okafor", "Patel", "Whitworth", "O'Brien", "Lindqvist", "Singh"]


def _number_sentence(r: random.Random) -> str:
    return r.choice(NUMERIC).format(
        date=r.choice(
            [
                f"{r.randint(1, 28)}/{r.randint(1, 12):02d}/{r.randint(2020, 2026)}",
                f"{r.randint(1, 28)} {r.choice(MONTHS)}",
                f"{r.randint(1, 28)} {r.choice(MONTHS)} {r.randint(2020, 2026)}",
                f"Tuesday {r.randint(1, 28)}th {r.choice(MONTHS)}",
            ]
        ),
        time=f"{r.randint(7, 18)}:{r.choice(['00', '15', '30', '45'])}",
        n1=r.randint(1, 40),
        n2=r.randint(2, 250),
        n6=r.randint(900000, 900999),
        price=f"{r.randint(5, 9999)}.{r.randint(0, 99):02d}",
        order=r.choice(
            [
                str(r.randint(100000, 9999999)),
                f"PO-{r.randint(2020, 2026)}-{r.randint(0, 99999):05d}",
            ]
        ),
        phone=r.choice(
            [
                f"07700 {r.randint(900000, 900999)}",
                f"0161 496 {r.randint(0, 9999):04d}",
                f"020 7946 {r.randint(0, 9999):04d}",
                f"+44 161 496 {r.randint(0, 9999):04d}",
            ]
        ),
        pc=r.choice(["M1 1AE", "M14 5RB", "SK4 2QP"]),
        pct=r.randint(10, 99),
        month=r.choice(MONTHS),
        mon=r.choice(MONTHS)[:3],
        day=r.randint(1, 28),
        weekday=r.choice(["Mon", "Tue", "Wed", "Thu", "Fri"]),
        year=r.randint(2020, 2026),
        yy=r.randint(21, 27),
    )


# ---- valid identifiers, computed here rather than taken from the detector


def _nhs(r: random.Random) -> str:
    while True:
        d = [r.randint(0, 9) for _ in range(9)]
        check = 11 - sum(x * w for x, w in zip(d, range(10, 1, -1), strict=True)) % 11
        check = 0 if check == 11 else check
        if check != 10 and len(set(d)) > 1:
            return "".join(map(str, d)) + str(check)


def _luhn_complete(prefix: str, length: int, r: random.Random) -> str:
    body = prefix + "".join(str(r.randint(0, 9)) for _ in range(length - len(prefix) - 1))
    total = 0
    for i, ch in enumerate(reversed(body)):
        v = int(ch) * (2 if i % 2 == 0 else 1)
        total += v - 9 if v > 9 else v
    return body + str((10 - total % 10) % 10)


def _nino(r: random.Random) -> str:
    first = r.choice("ABCEGHJKLMNOPRSTWXYZ")
    second = r.choice("ABCEGHJKLMNPRSTWXYZ")
    if first + second in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}:
        first, second = "A", "B"
    digits = " ".join(str(r.randint(10, 99)) for _ in range(3))
    return f"{first}{second} {digits} {r.choice('ABCD')}"


REGISTER_SIZE = 200


def register_people(seed: int = 11) -> list[RegisterEntry]:
    r = random.Random(seed)
    names = [f"{f} {la}" for f in FIRST for la in LAST]
    r.shuffle(names)
    return [
        RegisterEntry(
            names[i % len(names)] + ("" if i < len(names) else f" {chr(65 + i // 72)}"),
            None,
            f"{r.randint(1, 28)}/{r.randint(1, 12)}/{r.randint(1925, 1960)}",
        )
        for i in range(REGISTER_SIZE)
    ]


KINDS = ("nhs_number", "nino", "date_of_birth", "bank_account", "payment_card", "client_register")


class Planter:
    """Plants identifiers with distinct values, so expected counts are exact."""

    def __init__(self, r: random.Random, people: list[RegisterEntry]) -> None:
        self.r = r
        self.people = people
        self.used: set[str] = set()
        self.planted = dict.fromkeys(KINDS, 0)

    def _unique(self, make: Callable[[], str]) -> str:
        while (value := make()) in self.used:
            pass
        self.used.add(value)
        return value

    def plant(self, kind: str) -> str:
        r = self.r
        if kind == "client_register":
            person = self.people[self.planted[kind] % len(self.people)]
            if self.planted[kind] >= len(self.people):
                kind = "none"  # everybody already planted once: nothing new to count
            self.planted[kind] = self.planted.get(kind, 0) + 1
            return f"{person.name} ({person.date_of_birth}) enjoyed the garden today."
        self.planted[kind] += 1
        if kind == "nhs_number":
            n = self._unique(lambda: _nhs(r))
            if r.random() < 0.5:
                return f"Her NHS number is {n[:3]} {n[3:6]} {n[6:]}."
            return f"The hospital discharge letter quotes {n} for the resident."
        if kind == "nino":
            return f"His National Insurance number is {self._unique(lambda: _nino(r))}."
        if kind == "date_of_birth":
            dob = self._unique(
                lambda: f"{r.randint(1, 28):02d}/{r.randint(1, 12):02d}/{r.randint(1925, 1960)}"
            )
            return f"DOB: {dob}."
        if kind == "bank_account":
            sort = self._unique(
                lambda: f"{r.randint(10, 99)}-{r.randint(10, 99)}-{r.randint(10, 99)}"
            )
            return f"Pay the refund to sort code {sort}, account {r.randint(10000000, 99999999)}."
        prefix, length = r.choice([("4", 16), ("51", 16), ("34", 15), ("6011", 16), ("3530", 16)])
        card = self._unique(lambda: _luhn_complete(prefix, length, r))
        grouped = " ".join(card[i : i + 4] for i in range(0, len(card), 4))
        return f"Card used for the booking: {grouped}."


def corpus(
    n_bytes: int, *, numeric_share: float, plant_every: int, seed: int = 7
) -> tuple[str, dict[str, int]]:
    r = random.Random(seed)
    planter = Planter(r, register_people())
    parts: list[str] = []
    size = 0
    next_plant = plant_every
    k = 0
    while size < n_bytes:
        sentences = [
            _number_sentence(r) if r.random() < numeric_share else r.choice(PLAIN)
            for _ in range(r.randint(2, 7))
        ]
        if size >= next_plant:
            sentences.insert(r.randint(0, len(sentences)), planter.plant(KINDS[k % len(KINDS)]))
            k += 1
            next_plant += plant_every
        para = " ".join(sentences)
        parts.append(para)
        size += len(para) + 2
    planted = {kind: n for kind, n in planter.planted.items() if kind in KINDS}
    return "\n\n".join(parts), planted


def naive_detect(text: str) -> dict[str, int]:
    """Presidio-style: one case-insensitive regex per type, context words by window."""
    counts: dict[str, int] = {}
    patterns = {
        "nhs_number": re.compile(r"\b\d{3}[- ]?\d{3}[- ]?\d{4}\b"),
        "nino": re.compile(
            r"\b[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z] ?\d{2} ?\d{2} ?\d{2} ?[A-D]\b", re.I
        ),
        "date_of_birth": re.compile(
            r"\b(?:dob|date of birth|born)\W{0,5}\d{1,2}[/.-]\d{1,2}[/.-]\d{2,4}\b", re.I
        ),
        "bank_account": re.compile(r"\b\d{2}-\d{2}-\d{2}\b"),
        "payment_card": re.compile(r"\b(?:\d[ -]?){12,18}\d\b"),
    }
    context = re.compile(r"\b(?:nhs|patient|gp|dob|hospital|resident|client|health)\b", re.I)
    for kind, pattern in patterns.items():
        for m in pattern.finditer(text):
            if kind in ("nhs_number", "bank_account"):
                window = text[max(0, m.start() - 300) : m.end() + 300]
                if not context.search(window) and kind == "nhs_number":
                    continue
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _median_seconds(fn: Callable[[], object], runs: int) -> float:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def _parts(text: str, size: int) -> list[str]:
    """The corpus cut at paragraph ends into parts of about `size` characters, as the
    gateway calls detect once per message part."""
    out = []
    i = 0
    while i < len(text):
        j = text.find("\n\n", i + size)
        j = len(text) if j < 0 else j
        out.append(text[i:j])
        i = j
    return out


def _bench(
    name: str, text: str, planted: dict[str, int], register: ClientRegister, runs: int, naive: bool
) -> bool:
    mb = len(text.encode("utf-8")) / 1e6
    digits = sum(ch.isdigit() for ch in text[:1_000_000]) / min(len(text), 1_000_000)
    print(f"\n{name}: {mb:.1f} MB, {digits:.1%} digits, {sum(planted.values())} planted")

    found = detect(text, register=register)
    wrong = {k: (found.get(k, 0), n) for k, n in planted.items() if found.get(k, 0) != n}
    print(f"  self-check: {'ok' if not wrong else f'MISMATCH found/planted {wrong}'}")
    figure(f"scanner: {name} self-check (found = planted)", "ok" if not wrong else "MISMATCH",
           "all found", not wrong)  # fmt: skip
    ok = not wrong

    parts = _parts(text, 8_000)
    timed = {
        "all types, client register on": lambda: detect(text, register=register),
        "all types but the client register": lambda: detect(text),
        f"per part ({len(parts)} parts of ~8 kB), register on": lambda: [
            detect(p, register=register) for p in parts
        ],
    }
    if naive:
        timed["naive per-type regexes (Presidio-style)"] = lambda: naive_detect(text)
    for label, fn in timed.items():
        mbps = mb / _median_seconds(fn, 1 if label.startswith("naive") else runs)
        contract = name == "prose" and label.startswith("all types, client")
        print(f"  {label:48s} {mbps:7.1f}{'  <- contract' if contract else ''}")
        if contract:
            figure("scanner: prose, every type on", f"{mbps:.0f} MB/s", ">= 50 MB/s",
                   mbps >= CONTRACT_MBPS)  # fmt: skip
        elif label.startswith("naive") and name == "prose":
            figure("scanner: naive per-type regexes, prose", f"{mbps:.0f} MB/s")
        if contract and mbps < CONTRACT_MBPS:
            ok = False
    return ok


# Texts of nothing but identifier-like tokens: a scan must stay linear on them (the
# gateway scans attachments of tens of MB). Four times the text may take about four
# times as long; a quadratic scan would take sixteen.
HOSTILE_UNITS = [
    "12 ",
    "1234 ",
    "12-34-56 12345678 ",
    "943 476 5919 ",
    "AB 12 34 56 ",
    "DOB ",
    "born 1/1/2001 ",
    "March 2024 ",
    "Ann Lee 01/01/2001 ",
    "patient 9434765919 ",
]


def hostile_repetition(runs: int) -> bool:
    register = ClientRegister.from_entries(
        b"bench-salt-0123456789abcdef", [RegisterEntry("Ann Lee", None, "01/01/2001")]
    )
    print("\nhostile repetition: time for 800 kB / time for 200 kB of one repeated unit")
    worst = 0.0
    for unit in HOSTILE_UNITS:
        texts = [unit * (n // len(unit)) for n in (200_000, 800_000)]
        small, large = (
            _median_seconds(lambda t=t: detect(t, register=register), runs) for t in texts
        )
        ratio = large / small
        worst = max(worst, ratio)
        print(f"  {unit!r:24s} {small * 1000:7.1f} ms  {large * 1000:7.1f} ms  {ratio:5.1f}x")
    figure("scanner: 4x hostile text costs (worst unit)", f"{worst:.1f}x time", "< 8x", worst < 8)
    return worst < 8


def main() -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--mb", type=float, default=50.0, help="corpus size in MB (default 50)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--no-naive", action="store_true", help="skip the naive comparison")
    args = ap.parse_args()
    n_bytes = int(args.mb * 1_000_000)

    register = ClientRegister.from_entries(b"bench-salt-0123456789abcdef", register_people())
    print(f"python {sys.version.split()[0]}, one core, median of {args.runs} runs, MB/s")
    ok = True
    for name, share, seed in (("prose", 0.3, 7), ("digit-heavy", 0.9, 8)):
        text, planted = corpus(n_bytes, numeric_share=share, plant_every=20_000, seed=seed)
        ok = _bench(name, text, planted, register, args.runs, not args.no_naive) and ok
    ok = hostile_repetition(args.runs) and ok
    print(f"\ncontract: >= {CONTRACT_MBPS:.0f} MB/s on prose: {'PASS' if ok else 'FAIL'}")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())

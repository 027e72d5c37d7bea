"""What the manager should look at first: short plain-English lines, most serious first."""

from __future__ import annotations

from reports.model import WeeklyReport


def _plural(n: int, one: str, many: str | None = None) -> str:
    return f"{n:,} {one if n == 1 else (many or one + 's')}"


def attention(report: WeeklyReport) -> list[str]:
    notes: list[str] = []
    trends = {t.measure: t.this_week for t in report.trends}
    if trends.get("circumvention"):
        people = len({c.person for c in report.circumvention})
        notes.append(
            f"{_plural(trends['circumvention'], 'attempt')} to get round the filter "
            f"(VPNs, proxies), by {_plural(people, 'person', 'people')}."
        )
    if trends.get("leaver_attempts"):
        notes.append(f"{_plural(trends['leaver_attempts'], 'attempt')} to use a leaver's account.")
    if trends.get("spoofing_attempts"):
        notes.append(
            f"{_plural(trends['spoofing_attempts'], 'attempt')} to send mail as somebody else."
        )
    if report.mail.rejected or report.mail.quarantined:
        notes.append(
            f"{_plural(report.mail.rejected, 'message')} rejected and "
            f"{_plural(report.mail.quarantined, 'message')} quarantined for personal "
            "information going outside unprotected."
        )
    if report.unblock.pending:
        notes.append(
            f"{_plural(report.unblock.pending, 'unblock request')} from this week still "
            "waiting for your decision."
        )
    if report.large_downloads:
        notes.append(
            f"{_plural(len(report.large_downloads), 'large download')} "
            f"(over {report.large_download_bytes / 1048576:,.0f} MB to one site in the week)."
        )
    for check in report.health.warnings:
        notes.append(f"{check.check[:1].upper()}{check.check[1:]}: {check.detail}.")
    return notes

"""The plain-text part of the report email: the headline, what needs attention, and the
week-on-week table, for mail clients that show no HTML (and for screen readers)."""

from __future__ import annotations

from reports import labels
from reports.highlights import attention
from reports.model import WeeklyReport


def render(report: WeeklyReport) -> str:
    lines = [
        f"{report.organisation}: weekly internet and email report",
        f"Week {report.week}, {report.period} ({report.timezone})",
        "",
    ]
    if report.empty:
        lines += [
            "Nothing to report this week: no web use, blocked sites, email or unblock "
            "requests were recorded. If people were at work, check the system health below.",
            "",
        ]
    else:
        notes = attention(report)
        lines.append("Worth your attention:" if notes else "Nothing needs your attention.")
        lines += [f"  - {note}" for note in notes]
        lines += ["", "Week on week (last week -> this week):"]
        width = max(len(labels.measure(t.measure)) for t in report.trends)
        for t in report.trends:
            lines.append(
                f"  {labels.measure(t.measure):<{width}}  {t.last_week:>9,} -> {t.this_week:>9,}"
            )
        if report.blocked_by_category:
            lines += ["", "Blocks by category:"]
            lines += [
                f"  {labels.category(c.category)}: {c.blocks:,}" for c in report.blocked_by_category
            ]
        lines.append("")
    lines.append("System health:")
    lines += [
        f"  [{'ok' if c.status == 'ok' else '!!'}] {c.check}: {c.detail}"
        for c in report.health.checks
    ]
    lines += [
        "",
        "The full report is in the HTML version of this message; every table is attached "
        "as a CSV file.",
    ]
    return "\n".join(lines) + "\n"

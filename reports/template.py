"""The weekly report's Jinja template and its inline styles.

Kept in a module rather than a package-data file so every install has it. Styles are
inline (``style="{{ s.td }}"``) because mail clients drop <style> blocks.
"""

from __future__ import annotations

_FONT = "font-family:Segoe UI,Arial,Helvetica,sans-serif;"

STYLES = {
    "body": "margin:0;padding:0;background-color:#eef1f5;",
    "card": "background-color:#ffffff;border:1px solid #dde3ea;",
    "header": _FONT + "background-color:#1d3557;color:#ffffff;padding:24px 20px;",
    "org": _FONT + "font-size:13px;color:#c9d6e8;letter-spacing:0.5px;text-transform:uppercase;",
    "title": _FONT + "font-size:24px;color:#ffffff;font-weight:600;padding:4px 0 2px 0;",
    "period": _FONT + "font-size:14px;color:#dfe7f1;",
    "section": "padding:0 20px;",
    "h2": _FONT
    + "font-size:19px;color:#1d3557;font-weight:600;padding:26px 0 6px 0;"
    + "border-bottom:2px solid #e3e8ef;",
    "h3": _FONT + "font-size:15px;color:#1d3557;font-weight:600;padding:16px 0 6px 0;",
    "p": _FONT + "font-size:14px;color:#3e4c59;line-height:1.5;padding:6px 0;",
    "muted": _FONT + "font-size:13px;color:#6b7785;line-height:1.5;padding:6px 0;",
    "th": _FONT + "font-size:12px;color:#5a6473;text-align:left;padding:6px 8px;"
    "border-bottom:1px solid #d5dbe3;background-color:#f5f7fa;font-weight:600;",
    "thn": _FONT + "font-size:12px;color:#5a6473;text-align:right;padding:6px 8px;"
    "border-bottom:1px solid #d5dbe3;background-color:#f5f7fa;font-weight:600;",
    # overflow-wrap: a long host name or path breaks rather than widening the page on a phone.
    "td": _FONT + "font-size:14px;color:#1f2933;padding:6px 8px;border-bottom:1px solid #edf0f3;"
    "overflow-wrap:anywhere;",
    "tdn": _FONT + "font-size:14px;color:#1f2933;padding:6px 8px;border-bottom:1px solid #edf0f3;"
    "text-align:right;white-space:nowrap;",
    "tds": _FONT + "font-size:12px;color:#6b7785;padding:6px 8px;border-bottom:1px solid #edf0f3;"
    "overflow-wrap:anywhere;",
    "bar": "padding:6px 8px;border-bottom:1px solid #edf0f3;",
    # A fixed height keeps a row of tiles even whatever their labels wrap to.
    "tile": _FONT + "padding:14px 12px;background-color:#f5f7fa;border:1px solid #e3e8ef;"
    "height:92px;vertical-align:top;",
    # 156px: four fit the 720px column of a desktop, two the ~330px of a phone.
    "tile_box": "display:inline-block;width:100%;max-width:156px;vertical-align:top;"
    "margin:3px;text-align:left;",
    "tile_value": _FONT + "font-size:24px;color:#1d3557;font-weight:600;",
    "tile_label": _FONT + "font-size:12px;color:#5a6473;padding-top:2px;",
    "tile_change": _FONT + "font-size:12px;padding-top:6px;",
    "attention": _FONT + "background-color:#fff6e6;border-left:4px solid #e8a33d;"
    "padding:12px 16px;font-size:14px;color:#3e3321;line-height:1.5;overflow-wrap:anywhere;",
    "calm": _FONT + "background-color:#eaf6ef;border-left:4px solid #2f855a;"
    "padding:12px 16px;font-size:14px;color:#1f3d2b;line-height:1.5;",
    "nothing": _FONT + "background-color:#f5f7fa;border:1px dashed #b8c2cc;padding:28px;"
    "text-align:center;font-size:20px;color:#1d3557;font-weight:600;",
    "ok": _FONT + "font-size:13px;color:#2f855a;font-weight:600;white-space:nowrap;"
    "padding:6px 8px;border-bottom:1px solid #edf0f3;",
    "warning": _FONT + "font-size:13px;color:#b7791f;font-weight:600;white-space:nowrap;"
    "padding:6px 8px;border-bottom:1px solid #edf0f3;",
    "footer": _FONT + "font-size:12px;color:#6b7785;line-height:1.5;padding:24px 28px;"
    "border-top:1px solid #e3e8ef;",
}

WEEKLY = """\
{%- macro bar(value, top, colour) -%}
{%- set w = share(value, top) -%}
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" \
style="border-collapse:collapse"><tr>
{%- if w > 0 %}<td width="{{ w }}%" height="12" bgcolor="{{ colour }}" \
style="background-color:{{ colour }};height:12px;font-size:1px;line-height:1px">&nbsp;</td>\
{% endif %}
{%- if w < 100 %}<td width="{{ 100 - w }}%" height="12" \
style="height:12px;font-size:1px;line-height:1px">&nbsp;</td>{% endif -%}
</tr></table>
{%- endmacro -%}
{%- macro table_open() -%}
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" \
style="border-collapse:collapse">
{%- endmacro -%}
{%- macro nothing(text="None this week.") -%}
<div style="{{ s.muted }}">{{ text }}</div>
{%- endmacro -%}
{%- macro more(rows) -%}
{% if rows | length > rows_shown %}
<div style="{{ s.muted }}">… and {{ (rows | length - rows_shown) | number }} more in the CSV \
file.</div>
{% endif %}
{%- endmacro -%}
<!DOCTYPE html>
<html lang="en-GB">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ r.organisation }}: weekly report {{ r.week }}</title>
</head>
<body style="{{ s.body }}">
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0" \
bgcolor="#eef1f5" style="background-color:#eef1f5">
<tr><td align="center" style="padding:20px 8px">
<table role="presentation" width="760" cellpadding="0" cellspacing="0" border="0" \
style="width:100%;max-width:760px;{{ s.card }}">

<tr><td style="{{ s.header }}">
<div style="{{ s.org }}">{{ r.organisation }}</div>
<div style="{{ s.title }}">Weekly internet and email report</div>
<div style="{{ s.period }}">Week {{ r.week }} · {{ r.period }} ({{ r.timezone }})\
{% if not r.complete %} · <strong>week not finished yet</strong>{% endif %}</div>
</td></tr>

{% if r.empty %}
<tr><td style="{{ s.section }};padding-top:28px">
<div style="{{ s.nothing }}">Nothing to report this week</div>
<div style="{{ s.p }};text-align:center">No web use, blocked sites, email or unblock requests were \
recorded between {{ r.start | local }} and {{ r.end | local }}. If people were at work, check the \
system health below: aupd may not have been running.</div>
</td></tr>
{% else %}

<tr><td align="center" style="{{ s.section }};padding-top:20px">
{#- Tiles are inline blocks: four to a row on a desktop, two on a phone. Outlook's Word
    engine ignores inline-block, so it gets the same tiles in a ghost table instead. #}
<!--[if mso]><table role="presentation" width="100%" cellpadding="0" cellspacing="0" \
border="0"><tr><![endif]-->
{% for t in tiles %}
{% set text, colour = change(t) %}
<!--[if mso]><td width="25%" valign="top"><![endif]-->\
<div style="{{ s.tile_box }}">\
<table role="presentation" width="100%" cellpadding="0" cellspacing="0" border="0"><tr>
<td style="{{ s.tile }}">
<div style="{{ s.tile_value }}">{{ t.this_week | number }}</div>
<div style="{{ s.tile_label }}">{{ t.measure | measure }}</div>
<div style="{{ s.tile_change }};color:{{ colour }}">{{ text }}</div>
</td></tr></table>\
</div>\
<!--[if mso]></td>{% if loop.index % 4 == 0 and not loop.last %}</tr><tr>{% endif %}\
<![endif]-->\
{% endfor %}
<!--[if mso]></tr></table><![endif]-->
</td></tr>

<tr><td style="{{ s.section }};padding-top:14px">
{% if notes %}
<div style="{{ s.attention }}"><strong>Worth your attention</strong>
<ul style="margin:6px 0 0 0;padding:0 0 0 20px">
{% for note in notes %}<li style="padding:2px 0">{{ note }}</li>
{% endfor %}
</ul></div>
{% else %}
<div style="{{ s.calm }}"><strong>Nothing needs your attention this week.</strong> No \
circumvention, leaver or spoofing attempts, no personal information stopped at the gateway, \
and the system is healthy.</div>
{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Blocked sites</div>
<div style="{{ s.p }}">{{ r.web.blocked | number }} of {{ r.web.requests | number }} web \
requests were blocked{% if r.web.requests %} \
({{ "%.1f" | format(r.web.blocked * 100 / r.web.requests) }}%)\
{% endif %}; {{ r.web.people | number }} people used the web.</div>

<div style="{{ s.h3 }}">By category</div>
{% if r.blocked_by_category %}
{% set top = r.blocked_by_category | map(attribute="blocks") | max %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Category</th><th style="{{ s.th }}" width="38%">&nbsp;</th>\
<th style="{{ s.thn }}">Blocks</th><th style="{{ s.thn }}">People</th>\
<th style="{{ s.thn }}">Last week</th></tr>
{% for c in r.blocked_by_category %}
<tr><td style="{{ s.td }}">{{ c.category | category }}</td>
<td style="{{ s.bar }}">{{ bar(c.blocks, top, category_colour(c.category)) }}</td>
<td style="{{ s.tdn }}">{{ c.blocks | number }}</td>
<td style="{{ s.tdn }}">{{ c.people | number }}</td>
<td style="{{ s.tdn }};color:#6b7785">{{ c.last_week | number }}</td></tr>
{% endfor %}
</table>
{% else %}{{ nothing("No site was blocked this week.") }}{% endif %}

<div style="{{ s.h3 }}">By person</div>
{% if r.blocked_by_person %}
{% set top = r.blocked_by_person[0].blocks %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Person</th><th style="{{ s.th }}" width="30%">&nbsp;</th>\
<th style="{{ s.thn }}">Blocks</th><th style="{{ s.th }}">Categories</th></tr>
{% for p in r.blocked_by_person[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ p.person }}</td>
<td style="{{ s.bar }}">{{ bar(p.blocks, top, default_colour) }}</td>
<td style="{{ s.tdn }}">{{ p.blocks | number }}</td>
<td style="{{ s.tds }}">{{ p.categories }}</td></tr>
{% endfor %}
</table>
{{ more(r.blocked_by_person) }}
{% else %}{{ nothing() }}{% endif %}

<div style="{{ s.h3 }}">Most blocked sites</div>
{% if r.top_blocked_sites %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Site</th><th style="{{ s.th }}">Category</th>\
<th style="{{ s.thn }}">Blocks</th><th style="{{ s.thn }}">People</th></tr>
{% for site in r.top_blocked_sites[:15] %}
<tr><td style="{{ s.td }}">{{ site.host }}</td>
<td style="{{ s.tds }}">{{ site.category | category }}</td>
<td style="{{ s.tdn }}">{{ site.blocks | number }}</td>
<td style="{{ s.tdn }}">{{ site.people | number }}</td></tr>
{% endfor %}
</table>
{% else %}{{ nothing() }}{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Outside allowed hours</div>
<div style="{{ s.muted }}">Sites in a category allowed only at some times (for example social \
media in breaks), tried outside those times.</div>
{% if r.outside_hours %}
{% set top = r.outside_hours[0].attempts %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Person</th><th style="{{ s.th }}">Category</th>\
<th style="{{ s.th }}" width="30%">&nbsp;</th><th style="{{ s.thn }}">Attempts</th></tr>
{% for o in r.outside_hours[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ o.person }}</td>
<td style="{{ s.tds }}">{{ o.category | category }}</td>
<td style="{{ s.bar }}">{{ bar(o.attempts, top, category_colour(o.category)) }}</td>
<td style="{{ s.tdn }}">{{ o.attempts | number }}</td></tr>
{% endfor %}
</table>
{{ more(r.outside_hours) }}
{% else %}{{ nothing() }}{% endif %}

<div style="{{ s.h2 }}">Circumvention attempts</div>
<div style="{{ s.muted }}">VPNs, anonymising proxies and DNS-over-HTTPS: ways round the \
filter.</div>
{% if r.circumvention %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Person</th><th style="{{ s.th }}">Site</th>\
<th style="{{ s.thn }}">Attempts</th></tr>
{% for c in r.circumvention[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ c.person }}</td><td style="{{ s.td }}">{{ c.host }}</td>
<td style="{{ s.tdn }}">{{ c.attempts | number }}</td></tr>
{% endfor %}
</table>
{{ more(r.circumvention) }}
{% else %}{{ nothing() }}{% endif %}

<div style="{{ s.h2 }}">Large downloads and streaming</div>
<div style="{{ s.h3 }}">More than {{ r.large_download_bytes | size }} from one site in the \
week</div>
{% if r.large_downloads %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Person</th><th style="{{ s.th }}">Site</th>\
<th style="{{ s.thn }}">Volume</th><th style="{{ s.thn }}">Busiest hour</th></tr>
{% for d in r.large_downloads[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ d.person }}</td>
<td style="{{ s.td }}">{{ d.host }}{% if d.category %} <span style="color:#6b7785;font-size:12px">\
({{ d.category | category }})</span>{% endif %}</td>
<td style="{{ s.tdn }}">{{ d.bytes | size }}</td>
<td style="{{ s.tdn }}">{{ d.peak_hour_bytes | size }}</td></tr>
{% endfor %}
</table>
{{ more(r.large_downloads) }}
{% else %}{{ nothing() }}{% endif %}
<div style="{{ s.h3 }}">Allowed use of listed categories</div>
{% if not r.categories_known %}
{{ nothing("Not known: no blocklists are compiled, so sites cannot be put in categories.") }}
{% elif r.category_volume %}
{% set top = r.category_volume[0].bytes %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Category</th><th style="{{ s.th }}" width="34%">&nbsp;</th>\
<th style="{{ s.thn }}">Volume</th>
<th style="{{ s.thn }}">Requests</th>
<th style="{{ s.thn }}">People</th></tr>
{% for v in r.category_volume %}
<tr><td style="{{ s.td }}">{{ v.category | category }}</td>
<td style="{{ s.bar }}">{{ bar(v.bytes, top, category_colour(v.category)) }}</td>
<td style="{{ s.tdn }}">{{ v.bytes | size }}</td>
<td style="{{ s.tdn }}">{{ v.requests | number }}</td>
<td style="{{ s.tdn }}">{{ v.people | number }}</td></tr>
{% endfor %}
</table>
<div style="{{ s.muted }}">Volume is counted where known: sites passed through encrypted show \
connections, not bytes.</div>
{% else %}{{ nothing() }}{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Unblock requests</div>
{% set u = r.unblock %}
<div style="{{ s.p }}">{{ u.requested | number }} requested: {{ u.approved | number }} approved, \
{{ u.denied | number }} denied, {{ u.pending | number }} waiting. \
{% if u.median_hours_to_decision is not none %}Decided in \
{{ u.median_hours_to_decision | duration }} \
on average (median); the longest took {{ u.max_hours_to_decision | duration }}.{% endif %}\
{% if u.reported_sites %} {{ u.reported_sites | number }} \
site{{ "s" if u.reported_sites != 1 else "" }} \
reported as should be blocked.{% endif %}</div>
{% if u.requests %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Asked</th>
<th style="{{ s.th }}">Person</th>
<th style="{{ s.th }}">Site</th>\
<th style="{{ s.th }}">Outcome</th><th style="{{ s.thn }}">Decided in</th></tr>
{% for q in u.requests[:rows_shown] %}
<tr><td style="{{ s.tds }}">{{ q.created_at | local }}</td>
<td style="{{ s.td }}">{{ q.person }}</td>
<td style="{{ s.td }}">{{ q.host }}{% if q.category %} <span style="color:#6b7785;font-size:12px">\
({{ q.category | category }})</span>{% endif %}</td>
<td style="{{ s.td }}">{% if q.kind == "report" %}Reported as should be blocked{% else %}\
{{ q.status | status }}{% endif %}</td>
<td style="{{ s.tdn }}">{{ q.hours_to_decision | duration }}</td></tr>
{% endfor %}
</table>
{{ more(u.requests) }}
{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Email</div>
{% set m = r.mail %}
<div style="{{ s.p }}">{{ m.messages | number }} messages sent, \
{{ m.external | number }} to outside addresses \
({{ m.external_recipients | number }} outside recipients). \
{{ m.pii | number }} contained personal information.\
{% if m.already_protected %} {{ m.already_protected | number }} were encrypted \
by the sender already.{% endif %}</div>
{% if r.mail_by_action %}
<div style="{{ s.h3 }}">What happened to each recipient's copy</div>
{% set top = r.mail_by_action | map(attribute="recipients") | max %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Outcome</th><th style="{{ s.th }}" width="36%">&nbsp;</th>\
<th style="{{ s.thn }}">Messages</th><th style="{{ s.thn }}">Recipients</th></tr>
{% for a in r.mail_by_action %}
<tr><td style="{{ s.td }}">{{ a.action | action }}</td>
<td style="{{ s.bar }}">{{ bar(a.recipients, top, action_colour(a.action)) }}</td>
<td style="{{ s.tdn }}">{{ a.messages | number }}</td>
<td style="{{ s.tdn }}">{{ a.recipients | number }}</td></tr>
{% endfor %}
</table>
{% endif %}

<div style="{{ s.h3 }}">Email to outside addresses, by person</div>
{% if r.external_senders %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Person</th><th style="{{ s.thn }}">Messages</th>\
<th style="{{ s.thn }}">Recipients</th><th style="{{ s.thn }}">With personal information</th></tr>
{% for e in r.external_senders[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ e.person }}</td><td style="{{ s.tdn }}">{{ e.messages | number }}</td>
<td style="{{ s.tdn }}">{{ e.recipients | number }}</td>
<td style="{{ s.tdn }}">{{ e.pii_messages | number }}</td></tr>
{% endfor %}
</table>
{{ more(r.external_senders) }}
{% else %}{{ nothing() }}{% endif %}

<div style="{{ s.h2 }}">Personal information found</div>
{% if r.pii_types %}
{% set top = r.pii_types[0].messages %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Kind of information</th><th style="{{ s.th }}" width="36%">&nbsp;</th>\
<th style="{{ s.thn }}">Messages</th></tr>
{% for t in r.pii_types %}
<tr><td style="{{ s.td }}">{{ t.type | pii_type }}</td>
<td style="{{ s.bar }}">{{ bar(t.messages, top, "#805ad5") }}</td>
<td style="{{ s.tdn }}">{{ t.messages | number }}</td></tr>
{% endfor %}
</table>
<div style="{{ s.h3 }}">How it was protected</div>
{% set top = r.protection | map(attribute="recipients") | max %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Outcome</th><th style="{{ s.th }}" width="36%">&nbsp;</th>\
<th style="{{ s.thn }}">Messages</th><th style="{{ s.thn }}">Recipients</th></tr>
{% for a in r.protection %}
<tr><td style="{{ s.td }}">{% if a.action == "relay" %}Sent as written to internal or secure \
(e.g. nhs.net) recipients{% else %}{{ a.action | action }}{% endif %}</td>
<td style="{{ s.bar }}">{{ bar(a.recipients, top, action_colour(a.action)) }}</td>
<td style="{{ s.tdn }}">{{ a.messages | number }}</td>
<td style="{{ s.tdn }}">{{ a.recipients | number }}</td></tr>
{% endfor %}
</table>
{% else %}{{ nothing("No personal information was found in outgoing mail.") }}{% endif %}

<div style="{{ s.h2 }}">Rejections and quarantines</div>
{% if r.rejections %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Outcome</th>
<th style="{{ s.th }}">Why</th>
<th style="{{ s.thn }}">Count</th></tr>
{% for x in r.rejections[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ x.action | action }}</td>
<td style="{{ s.tds }}">\
{% if x.action == "refused" %}{{ x.reason | refusal }}{% else %}{{ x.reason }}{% endif %}</td>
<td style="{{ s.tdn }}">{{ x.count | number }}</td></tr>
{% endfor %}
</table>
{{ more(r.rejections) }}
{% else %}{{ nothing() }}{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Leaver and spoofing attempts</div>
{% if r.misuse %}
{{ table_open() }}
<tr><th style="{{ s.th }}">Where</th>
<th style="{{ s.th }}">What</th>
<th style="{{ s.th }}">Who tried</th>\
<th style="{{ s.th }}">Whose account</th><th style="{{ s.thn }}">Attempts</th></tr>
{% for x in r.misuse[:rows_shown] %}
<tr><td style="{{ s.td }}">{{ "Web" if x.channel == "web" else "Email" }}</td>
<td style="{{ s.td }}">\
{{ "Leaver's account used" if x.kind == "leaver" else "Sent as somebody else" }}</td>
<td style="{{ s.td }}">{{ x.person }}</td><td style="{{ s.td }}">{{ x.account }}</td>
<td style="{{ s.tdn }}">{{ x.attempts | number }}</td></tr>
{% endfor %}
</table>
{{ more(r.misuse) }}
{% else %}{{ nothing() }}{% endif %}
</td></tr>

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">Week on week</div>
{{ table_open() }}
<tr><th style="{{ s.th }}">Measure</th><th style="{{ s.thn }}">Last week</th>\
<th style="{{ s.thn }}">This week</th><th style="{{ s.thn }}">Change</th></tr>
{% for t in trends %}
{% set text, colour = change(t) %}
<tr><td style="{{ s.td }}">{{ t.measure | measure }}</td><td style="{{ s.tdn }};color:#6b7785">\
{{ t.last_week | number }}</td><td style="{{ s.tdn }}">{{ t.this_week | number }}</td>
<td style="{{ s.tdn }};color:{{ colour }}">{% if t.change %}{{ "%+d" | format(t.change) }}\
{% else %}–{% endif %}</td></tr>
{% endfor %}
</table>
</td></tr>
{% endif %}

<tr><td style="{{ s.section }}">
<div style="{{ s.h2 }}">System health</div>
{{ table_open() }}
{% for c in r.health.checks %}
<tr><td style="{{ s.ok if c.status == 'ok' else s.warning }}" width="18">\
{{ "✔" if c.status == "ok" else "⚠" }}</td>
<td style="{{ s.td }};font-weight:600">\
{{ c.check[:1] | upper }}{{ c.check[1:] }}</td>
<td style="{{ s.td }}">{{ c.detail }}</td></tr>
{% endfor %}
</table>
</td></tr>

<tr><td style="{{ s.footer }}">
Made by aupd on {{ r.generated_at | local }} for the Registered Manager of {{ r.organisation }}. \
{% if r.pseudonymised %}People are shown as pseudonyms; \
<code>aupd report reveal "Person …"</code> \
names one when there is a reason to.{% else %}People are shown by name.{% endif %} \
This report is confidential: it describes staff's use of work systems. Events are kept for \
{{ r.retention_days }} days, then deleted.
</td></tr>

</table>
</td></tr>
</table>
</body>
</html>
"""

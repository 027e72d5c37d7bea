"""Pages staff reach without a login: what is blocked, the CA certificate, the PAC file,
and the two forms the block page leads to (ask for an unblock, report a site)."""

from __future__ import annotations

from flask import Blueprint, Response, abort, render_template, request
from flask.typing import ResponseReturnValue

from aupd import log
from aupd.tokens import TokenError, sign, verify
from aupd.unblock import UnblockError, report, submit
from console import certificate, pac, policy_view
from console.state import state

# A report form left open for a working day still works; after that, reload it.
REPORT_FORM_MAX_AGE = 12 * 3600
MAX_URL = 2000

logger = log.get("aupd.console")
bp = Blueprint("public", __name__)


def _client() -> str:
    return request.remote_addr or "-"


@bp.get("/healthz")
def healthz() -> Response:
    return Response("ok\n", mimetype="text/plain")


@bp.get("/categories")
def categories() -> str:
    console = state()
    index = console.index.current()
    counts = index.stats if index is not None else {}
    return render_template(
        "categories.html",
        rows=policy_view.categories(console.config, counts),
        lists=policy_view.lists_info(counts, index.built_at if index is not None else None),
        groups=bool(console.config.groups),
    )


@bp.get("/ca")
def ca() -> str:
    return render_template("ca.html", cert=certificate.load(state().config.proxy.confdir))


def _certificate() -> certificate.CaCertificate:
    cert = certificate.load(state().config.proxy.confdir)
    if cert is None:
        abort(404, "There is no CA certificate yet. IT: run 'aupd init' or start the proxy once.")
    return cert


@bp.get("/ca.pem")
def ca_pem() -> Response:
    return Response(
        _certificate().pem,
        mimetype="application/x-pem-file",
        headers={"Content-Disposition": 'attachment; filename="aupd-ca.pem"'},
    )


@bp.get("/ca.cer")
def ca_cer() -> Response:
    # DER: what Windows, Android and iOS expect from a .cer download.
    return Response(
        _certificate().der,
        mimetype="application/x-x509-ca-cert",
        headers={"Content-Disposition": 'attachment; filename="aupd-ca.cer"'},
    )


@bp.get("/wpad.dat")
@bp.get("/proxy.pac")
def proxy_pac() -> Response:
    return Response(pac.render(state().config), content_type=pac.CONTENT_TYPE)


@bp.post("/unblock")
def unblock() -> ResponseReturnValue:
    """The block page's form. It is posted from the blocked site's own address, so there is
    no session here: the signed token (user, site, category, time) is the proof."""
    console = state()
    try:
        asked, folded = submit(
            console.config,
            console.secret,
            request.form.get("token", ""),
            request.form.get("reason", ""),
        )
    except TokenError as e:
        logger.info("unblock request refused", client=_client(), why=str(e))
        return render_template("unblock_refused.html", problem=None), 400
    except UnblockError as e:
        return render_template("unblock_refused.html", problem=str(e)), 400
    user = console.config.user(asked.user)
    logger.info("unblock requested", id=asked.id, user=asked.user, host=asked.host, folded=folded)
    return render_template(
        "unblock_done.html", asked=asked, folded=folded, emailed=bool(user and user.email)
    )


def _report_form(url: str = "", reason: str = "", error: str | None = None) -> str:
    token = sign(state().report_key, {"form": "report", "client": _client()})
    return render_template("report.html", token=token, url=url, reason=reason, error=error)


@bp.get("/report")
def report_form() -> str:
    return _report_form(url=request.args.get("url", "")[:MAX_URL])


@bp.post("/report")
def report_post() -> ResponseReturnValue:
    console = state()
    url = request.form.get("url", "").strip()[:MAX_URL]
    reason = request.form.get("reason", "")
    try:
        token = request.form.get("token", "")
        fields = verify(console.report_key, token, max_age=REPORT_FORM_MAX_AGE)
    except TokenError:
        fields = {}
    # Bound to the address that loaded the form: a token fetched elsewhere is no use.
    if fields.get("form") != "report" or fields.get("client") != _client():
        error = "This form has expired or did not come from this page. Please send it again."
        return _report_form(url, reason, error), 400
    if not url:
        return _report_form(url, reason, "Please give the site's address."), 400
    who = console.directory.identify(None, _client()).name
    try:
        reported, folded = report(console.config, who, url, reason)
    except UnblockError as e:
        return _report_form(url, reason, f"{str(e).capitalize()}."), 400
    logger.info("site reported", id=reported.id, host=reported.host, folded=folded)
    return render_template("report_done.html", reported=reported, folded=folded)

"""The welcome promotion (POS guide, section 4): assign at sign-up, redeem at the first purchase.

The same two calls serve the pipeline (target-voyado assigns when it creates a contact and
redeems when a receipt used the promotion's code) and a POS checkout that cannot wait for a
pipeline run, as a library call or the ``voyado-promotion`` command:

    voyado-promotion --config voyado.json assign --email ann@example.com
    voyado-promotion --config voyado.json redeem --email ann@example.com --channel POS

Both print the assignment as JSON; a refusal is one line with Voyado's code
(``voyado-promotion: error: PromotionAlreadyRedeemed``) and exit code 1.
"""

from __future__ import annotations

import json
import sys
import typing as t
from pathlib import Path

import click

from singer_kit.http.errors import ApiError
from target_voyado.client import Refused, VoyadoClient


def assign(client: VoyadoClient, contact_id: str, promotion_id: str) -> dict[str, t.Any]:
    """Make the promotion personal to the contact at once; the assignment (``id``) back."""
    return client.assign_promotion(contact_id, promotion_id)


def redeem(
    client: VoyadoClient, contact_id: str, promotion_id: str, channel: str = "POS"
) -> dict[str, t.Any]:
    """Redeem the contact's assignment of the promotion (the open one, else the last one, so
    Voyado itself answers ``PromotionAlreadyRedeemed``)."""
    assignments = [
        p
        for p in client.overview(contact_id).get("promotions") or []
        if p.get("promotionId") == promotion_id
    ]
    if not assignments:
        raise Refused(404, "PromotionNotAssociatedWithContact", f"promotion {promotion_id}")
    open_ones = [p for p in assignments if not p.get("redeemed")]
    chosen = (open_ones or assignments)[0 if open_ones else -1]
    return client.redeem_assignment(str(chosen["id"]), channel)


def contact_id_for(client: VoyadoClient, key: str, value: str) -> str:
    """The contact id by a key (email, mobilePhone, memberNumber), or ``ContactNotFound``."""
    found = client.find_contact(key, value)
    if found is None:
        raise Refused(404, "ContactNotFound", f"no contact with {key} {value}")
    return found


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="target-voyado's JSON config (api_url, api_key, welcome_promotion_id).",
)
@click.pass_context
def main(ctx: click.Context, config_path: Path) -> None:
    """Assign or redeem a Voyado promotion for one contact, now (a POS checkout)."""
    ctx.obj = json.loads(config_path.read_text(encoding="utf-8"))


def _contact_options(fn: t.Callable[..., t.Any]) -> t.Callable[..., t.Any]:
    fn = click.option("--contact-id", help="Voyado's contact id (else look it up).")(fn)
    fn = click.option("--member-number", help="Find the contact by member number.")(fn)
    fn = click.option("--mobile", help="Find the contact by mobile phone.")(fn)
    fn = click.option("--email", help="Find the contact by e-mail.")(fn)
    return click.option(
        "--promotion-id", help="Engage promotion id (default: welcome_promotion_id)."
    )(fn)


@main.command("assign")
@_contact_options
@click.pass_obj
def assign_cmd(config: dict[str, t.Any], **given: str | None) -> None:
    """Assign the (welcome) promotion to a contact."""
    _run(config, given, lambda c, cid, pid: assign(c, cid, pid))


@main.command("redeem")
@_contact_options
@click.option("--channel", default="POS", show_default=True, help="ECOM, POS or OTHER.")
@click.pass_obj
def redeem_cmd(config: dict[str, t.Any], channel: str, **given: str | None) -> None:
    """Redeem a contact's assignment of the (welcome) promotion."""
    _run(config, given, lambda c, cid, pid: redeem(c, cid, pid, channel))


def _run(
    config: dict[str, t.Any],
    given: dict[str, str | None],
    action: t.Callable[[VoyadoClient, str, str], dict[str, t.Any]],
) -> None:
    promotion_id = given.get("promotion_id") or config.get("welcome_promotion_id")
    if not promotion_id:
        _fail("no --promotion-id and no welcome_promotion_id in the config")
    try:
        client = VoyadoClient.from_config(config)
        contact_id = given.get("contact_id")
        keys = {"email": "email", "mobile": "mobilePhone", "member_number": "memberNumber"}
        for option, key in keys.items():
            if contact_id is None and given.get(option):
                contact_id = contact_id_for(client, key, str(given[option]))
        if contact_id is None:
            _fail("give --contact-id, --email, --mobile or --member-number")
        result = action(client, str(contact_id), str(promotion_id))
    except (Refused, ApiError) as exc:
        _fail(str(exc))
    except KeyError as exc:
        _fail(f"the config has no {exc.args[0]}")
    click.echo(json.dumps(result))


def _fail(message: str) -> t.NoReturn:
    click.echo(f"voyado-promotion: error: {message}", err=True)
    sys.exit(1)

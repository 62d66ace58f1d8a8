"""`clarity-tui customers ...`: customer lookup for support over SSH (read-only)."""

from __future__ import annotations

import json
import sys
from typing import Any

import click


def register(cli: click.Group) -> None:
    from clarity_tui.cli import _open_db, _settings, friendly_errors

    @cli.group("customers")
    def customers() -> None:
        """Find and show customers."""

    @customers.command("search")
    @click.argument("query", nargs=-1, required=True)
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--limit", type=click.IntRange(1, 500), default=50, show_default=True)
    @click.option("--db", "db_url", help="Database URL (overrides the global --db).")
    @click.pass_context
    @friendly_errors
    def customers_search(ctx: click.Context, query: tuple[str, ...], as_json: bool, limit: int, db_url: str | None) -> None:
        """Search by name, phone (last 4-10 digits), email, customer number or plate."""
        from clarity_tui.services.customers import display_phone

        database = _open_db(_settings(ctx, database_url=db_url))
        try:
            result = run_search(database, " ".join(query), limit)
        finally:
            database.dispose()
        if as_json:
            click.echo(search_json(result))
            return
        for h in result.hits:
            click.echo(f"{h.customer_number:<9} {h.name[:28]:<28} {display_phone(h.phone_e164):<16} "
                       f"{(h.plates[0] if h.plates else ''):<10} {h.email or ''}")
        click.echo(f"{len(result.hits)} match{'es' if len(result.hits) != 1 else ''} in {result.elapsed_ms:.2f} ms")

    @customers.command("show")
    @click.argument("number")
    @click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
    @click.option("--db", "db_url", help="Database URL (overrides the global --db).")
    @click.pass_context
    @friendly_errors
    def customers_show(ctx: click.Context, number: str, as_json: bool, db_url: str | None) -> None:
        """Show one customer's record by customer number (e.g. C100000)."""
        from clarity_tui.services.customers import CustomerService

        database = _open_db(_settings(ctx, database_url=db_url))
        try:
            svc = CustomerService(database)
            customer = svc.find_by_number(number)
            if customer is None:
                click.echo(f"Error: no customer number '{number}': search with `clarity-tui customers search`.", err=True)
                sys.exit(1)
            assert customer.id is not None  # read from the database
            record = svc.record(customer.id)
        finally:
            database.dispose()
        data = _record_dict(record)
        if as_json:
            click.echo(json.dumps(data, indent=2, default=str))
            return
        c = data
        click.echo(f"{c['customer_number']}  {c['name']}")
        click.echo(f"  phone {c['phone'] or '-'}   email {c['email'] or '-'}")
        address = ", ".join(x for x in (c["address_line1"], c["city"], c["region"], c["postal_code"], c["country"]) if x)
        click.echo(f"  address {address or '-'}")
        for m in c["memberships"]:
            click.echo(f"  membership {m['plan']} ({m['status']}) next bill {m['next_billing_on'] or '-'} "
                       f"expires {m['expires_on'] or '-'}{' cancels at period end' if m['cancel_at_period_end'] else ''}")
            click.echo(f"    vehicles: {'; '.join(m['vehicles']) or '-'}")
        for r in c["related"]:
            click.echo(f"  related {r['kind']}: {r['customer_number']} {r['name']}")
        if c["web_login"]:
            click.echo(f"  web login {c['web_login']['username']}")
        for t in c["touchpoints"]:
            click.echo(f"  touchpoint [{'x' if t['done'] else ' '}] {t['title']} due {t['due_on'] or '-'} {t['assignee'] or ''}")
        for b in c["benefits"]:
            click.echo(f"  benefit {b['kind']} {b['remaining']}/{b['quantity']} expires {b['expires_on'] or '-'}")
        for n in c["notes"]:
            click.echo(f"  note{' [OPERATOR NOTICE]' if n['operator_notice'] else ''}: {n['body']}")


def run_search(database: Any, query: str, limit: int = 50) -> Any:
    """What `customers search` runs once its database is open (the search benchmark times this, then
    `search_json`)."""
    from clarity_tui.services.search import SearchService

    return SearchService(database).search(query, limit=limit)


def search_payload(result: Any) -> dict[str, Any]:
    """`customers search --json`'s document for a search result."""
    return {
        "query": result.term,
        "elapsed_ms": round(result.elapsed_ms, 3),
        "count": len(result.hits),
        "results": [{
            "customer_id": h.customer_id, "customer_number": h.customer_number, "first_name": h.first_name,
            "last_name": h.last_name, "phone": h.phone_e164, "email": h.email, "plates": list(h.plates),
            "score": h.score, "matched": h.matched,
        } for h in result.hits],
    }


def search_json(result: Any) -> str:
    """One line of JSON (json's C encoder: with `indent` json falls back to its pure-Python encoder, which
    took a third of a warm search at a million customers)."""
    return json.dumps(search_payload(result), ensure_ascii=False)


def _record_dict(record: Any) -> dict[str, Any]:
    c = record.customer
    return {
        "customer_id": c.id, "customer_number": c.customer_number, "name": record.name,
        "first_name": c.first_name, "last_name": c.last_name, "phone": c.phone_e164, "email": c.email,
        "address_line1": c.address_line1, "address_line2": c.address_line2, "city": c.city, "region": c.region,
        "postal_code": c.postal_code, "country": c.country, "question_answers": c.question_answers or {},
        "version": c.version,
        "memberships": [{
            "id": m.id, "plan": m.plan_code, "plan_name": m.plan_name, "status": m.status,
            "next_billing_on": m.next_billing_on, "expires_on": m.expires_on, "cancel_at_period_end": m.cancel_at_period_end,
            "vehicles": list(m.vehicles), "benefits": list(m.benefits),
        } for m in record.memberships],
        "related": [{"kind": r.kind, "customer_number": r.other_number, "name": r.other_name} for r in record.related],
        "web_login": {"username": record.web_login.username, "must_change_password": record.web_login.must_change_password}
        if record.web_login else None,
        "touchpoints": [{"title": t.title, "due_on": t.due_on, "assignee": t.assignee_name, "done": t.done} for t in record.touchpoints],
        "benefits": [{"kind": b.kind, "description": b.description, "quantity": b.quantity, "remaining": b.remaining,
                      "expires_on": b.expires_on} for b in record.benefits],
        "notes": [{"body": n.body, "operator_notice": n.operator_notice} for n in record.notes],
        # Cards: brand and last 4 only.
        "cards": [{"brand": p.brand, "last4": p.last4, "default": p.is_default} for p in record.cards],
    }

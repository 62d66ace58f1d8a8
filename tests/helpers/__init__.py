"""What the tests share, one module per job; test files import from here, never from each other.

- clock: the fixed test day and a clock a test moves
- ui: Pilot basics (build the app, wait for a predicate, bubbles, screens, what a widget shows)
- sale_ui, migration_ui, customer_record_ui, signin, signature: Pilot steps through one flow
- burst, db_state: type-ahead bursts and the database state they leave
- pg: the PostgreSQL admin connection the fixtures and twins use
- actors, customers, lanes, billing, orders, cards, sale, migration: rows and services a test starts from
- localstripe, stripe_recording, stripe_replay, stripe_bodies, sim_gateway, twilio_server: the outside world
- plate_webhook, cli, bench, db_faults, imports, processes: what several files check or drive the same way
- fixtures_lanes, fixtures_twin: pytest plugins (registered in tests/conftest.py) for fixtures several
  directories use
"""

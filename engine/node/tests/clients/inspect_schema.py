"""SQLAlchemy's PostgreSQL inspector (the one Alembic's autogenerate uses)
against a HoloFusion node: the keys, indexes and constraints it reflects are
the ones the test created. Usage: inspect_schema.py <database url>."""
import sys

from sqlalchemy import create_engine, inspect

engine = create_engine(sys.argv[1])
insp = inspect(engine)
failures = []


def expect(what, got, want):
    if got != want:
        failures.append(f"{what}: got {got!r}, want {want!r}")


expect("tables", sorted(insp.get_table_names()), ["customers", "orders"])
expect("customers pk", insp.get_pk_constraint("customers")["constrained_columns"], ["id"])
expect("orders pk name", insp.get_pk_constraint("orders")["name"], "orders_pkey")
expect(
    "customers unique",
    [(u["name"], u["column_names"]) for u in insp.get_unique_constraints("customers")],
    [("customers_email_key", ["email"])],
)
fks = insp.get_foreign_keys("orders")
expect(
    "orders fks",
    [
        (f["name"], f["constrained_columns"], f["referred_table"], f["referred_columns"], f["options"])
        for f in fks
    ],
    [("orders_customer_id_fkey", ["customer_id"], "customers", ["id"], {"ondelete": "CASCADE"})],
)
indexes = sorted(
    (i["name"], i["column_names"], i["unique"]) for i in insp.get_indexes("orders")
)
expect("orders indexes", indexes, [("orders_customer_amount_idx", ["customer_id", "amount"], False)])
expect(
    "customers indexes",
    sorted((i["name"], i["column_names"], i["unique"]) for i in insp.get_indexes("customers")),
    [("customers_email_key", ["email"], True)],
)
expect(
    "orders checks",
    [(c["name"], c["sqltext"]) for c in insp.get_check_constraints("orders")],
    [("orders_amount_check", "amount > 0")],
)
if failures:
    print("\n".join(failures))
    sys.exit(1)
print("ok")

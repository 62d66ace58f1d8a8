"""extra benefits belong to a membership: account_benefit.membership_id

Revision ID: 0011
Revises: 0010

An extra benefit a manager adds on the record's Membership tab (issue 14, seed 002) is the membership's,
not only the customer's: a later membership of the same customer does not inherit it, and it stops being
usable when its membership ends. Existing rows keep a NULL membership_id: they are account benefits
(and extras added before this revision), shown with any current membership as before.
"""
from alembic import op
import sqlalchemy as sa


revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("account_benefit") as batch:
        batch.add_column(sa.Column("membership_id", sa.Integer(), nullable=True))
        batch.create_foreign_key("fk_account_benefit_membership_id_membership", "membership", ["membership_id"], ["id"])
    op.create_index("ix_account_benefit_membership_id", "account_benefit", ["membership_id"])


def downgrade() -> None:
    op.drop_index("ix_account_benefit_membership_id", table_name="account_benefit")
    with op.batch_alter_table("account_benefit") as batch:
        batch.drop_constraint("fk_account_benefit_membership_id_membership", type_="foreignkey")
        batch.drop_column("membership_id")

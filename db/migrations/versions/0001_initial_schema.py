"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-22 05:25:44.606892
"""
from alembic import op
import sqlalchemy as sa
import sqlmodel


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('customer',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_number', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('phone_e164', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('address_line1', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('address_line2', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('city', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('postal_code', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True),
    sa.Column('question_answers', sa.JSON(), nullable=True),
    sa.Column('gateway_customer_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('search_last', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('search_first', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('email_lower', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('phone_rev', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_number')
    )
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_email_lower'), ['email_lower'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_phone_rev'), ['phone_rev'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_search_first'), ['search_first'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_search_last'), ['search_last'], unique=False)

    op.create_table('operator',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('role', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('pin_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('failed_attempts', sa.Integer(), nullable=False),
    sa.Column('locked_until', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('plan',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('tier', sa.Integer(), nullable=False),
    sa.Column('price_cents', sa.Integer(), nullable=False),
    sa.Column('interval', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('benefits', sa.JSON(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('max_vehicles', sa.Integer(), nullable=False),
    sa.Column('extra_vehicle_price_cents', sa.Integer(), nullable=False),
    sa.Column('gateway_product_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('gateway_price_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('question_prompt',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('choices', sa.JSON(), nullable=True),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    op.create_table('site',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('phone_region', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('terms_version',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('label', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('effective_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('sha256')
    )
    op.create_table('account_benefit',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('remaining', sa.Integer(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('account_benefit', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_account_benefit_customer_id'), ['customer_id'], unique=False)

    op.create_table('audit_log',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('terminal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('entity', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('entity_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('before', sa.JSON(), nullable=True),
    sa.Column('after', sa.JSON(), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_audit_log_action'), ['action'], unique=False)
        batch_op.create_index(batch_op.f('ix_audit_log_at'), ['at'], unique=False)

    op.create_table('customer_relationship',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('related_customer_id', sa.Integer(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['related_customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id', 'related_customer_id', 'kind')
    )
    with op.batch_alter_table('customer_relationship', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_customer_relationship_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_customer_relationship_related_customer_id'), ['related_customer_id'], unique=False)

    op.create_table('lane',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('site_id', sa.Integer(), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=60), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('position', sa.Integer(), nullable=False),
    sa.Column('camera_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.ForeignKeyConstraint(['site_id'], ['site.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('camera_id'),
    sa.UniqueConstraint('site_id', 'name')
    )
    with op.batch_alter_table('lane', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lane_site_id'), ['site_id'], unique=False)

    op.create_table('legacy_member',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('source_system', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('legacy_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('raw', sa.JSON(), nullable=True),
    sa.Column('first_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('last_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('phone_e164', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=True),
    sa.Column('vehicle_desc', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('plan_name', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=True),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('next_bill_on', sa.Date(), nullable=True),
    sa.Column('joined_on', sa.Date(), nullable=True),
    sa.Column('imported_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('migrated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('migrated_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('migrated_terminal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('migrated_customer_id', sa.Integer(), nullable=True),
    sa.ForeignKeyConstraint(['migrated_customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('source_system', 'legacy_id')
    )
    with op.batch_alter_table('legacy_member', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legacy_member_phone_e164'), ['phone_e164'], unique=False)

    op.create_table('note',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('operator_notice', sa.Boolean(), nullable=False),
    sa.Column('author_operator_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['author_operator_id'], ['operator.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('note', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_note_customer_id'), ['customer_id'], unique=False)

    op.create_table('operator_shift',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('operator_id', sa.Integer(), nullable=False),
    sa.Column('terminal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('signed_in_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_activity_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('signed_out_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('signout_reason', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('operator_shift', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_operator_shift_operator_id'), ['operator_id'], unique=False)

    op.create_table('payment_method',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('gateway', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('gateway_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('brand', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('last4', sqlmodel.sql.sqltypes.AutoString(length=4), nullable=False),
    sa.Column('exp_month', sa.Integer(), nullable=False),
    sa.Column('exp_year', sa.Integer(), nullable=False),
    sa.Column('is_default', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('detached_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('payment_method', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_payment_method_customer_id'), ['customer_id'], unique=False)

    op.create_table('promotion',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('value', sa.Integer(), nullable=False),
    sa.Column('description', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('referring_customer_id', sa.Integer(), nullable=True),
    sa.Column('plan_codes', sa.JSON(), nullable=True),
    sa.Column('max_redemptions', sa.Integer(), nullable=True),
    sa.Column('times_redeemed', sa.Integer(), nullable=False),
    sa.Column('expires_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('gateway_coupon_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.ForeignKeyConstraint(['referring_customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('code')
    )
    op.create_table('touchpoint',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=True),
    sa.Column('assignee_operator_id', sa.Integer(), nullable=True),
    sa.Column('done', sa.Boolean(), nullable=False),
    sa.Column('done_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['assignee_operator_id'], ['operator.id'], ),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('touchpoint', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_touchpoint_customer_id'), ['customer_id'], unique=False)

    op.create_table('vehicle',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('plate', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plate_region', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plate_normalized', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('colour', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('year', sa.Integer(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('plate_region', 'plate_normalized')
    )
    with op.batch_alter_table('vehicle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vehicle_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicle_plate_normalized'), ['plate_normalized'], unique=False)

    op.create_table('web_login',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('username', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('password_hash', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('must_change_password', sa.Boolean(), nullable=False),
    sa.Column('reset_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('customer_id'),
    sa.UniqueConstraint('username')
    )
    op.create_table('legacy_member_plate',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('legacy_member_id', sa.Integer(), nullable=False),
    sa.Column('plate_raw', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plate_normalized', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.ForeignKeyConstraint(['legacy_member_id'], ['legacy_member.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('legacy_member_plate', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_legacy_member_plate_legacy_member_id'), ['legacy_member_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_legacy_member_plate_plate_normalized'), ['plate_normalized'], unique=False)

    op.create_table('membership',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=False),
    sa.Column('plan_id', sa.Integer(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('started_on', sa.Date(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('next_billing_on', sa.Date(), nullable=True),
    sa.Column('legacy_member_id', sa.Integer(), nullable=True),
    sa.Column('legacy_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('gateway_subscription_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('cancel_at_period_end', sa.Boolean(), nullable=False),
    sa.Column('pending_sync', sa.Boolean(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['legacy_member_id'], ['legacy_member.id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_membership_plan_id'), ['plan_id'], unique=False)

    op.create_table('vehicle_session',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('lane_id', sa.Integer(), nullable=False),
    sa.Column('plate', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plate_region', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('plate_normalized', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('make', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('model', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=True),
    sa.Column('colour', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=True),
    sa.Column('confidence', sa.Float(), nullable=False),
    sa.Column('image_ref', sqlmodel.sql.sqltypes.AutoString(length=255), nullable=True),
    sa.Column('arrived_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('vehicle_id', sa.Integer(), nullable=True),
    sa.Column('legacy_member_id', sa.Integer(), nullable=True),
    sa.Column('held_by', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.Column('held_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('closed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('source', sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['lane_id'], ['lane.id'], ),
    sa.ForeignKeyConstraint(['legacy_member_id'], ['legacy_member.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('vehicle_session', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_vehicle_session_arrived_at'), ['arrived_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicle_session_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicle_session_lane_id'), ['lane_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_vehicle_session_plate_normalized'), ['plate_normalized'], unique=False)
        batch_op.create_index('ix_vehicle_session_status_lane', ['status', 'lane_id'], unique=False)

    op.create_table('membership_vehicle',
    sa.Column('membership_id', sa.Integer(), nullable=False),
    sa.Column('vehicle_id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], ),
    sa.ForeignKeyConstraint(['vehicle_id'], ['vehicle.id'], ),
    sa.PrimaryKeyConstraint('membership_id', 'vehicle_id')
    )
    with op.batch_alter_table('membership_vehicle', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_membership_vehicle_vehicle_id'), ['vehicle_id'], unique=False)

    op.create_table('sales_order',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('session_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('plan_id', sa.Integer(), nullable=True),
    sa.Column('promotion_id', sa.Integer(), nullable=True),
    sa.Column('payment_method_id', sa.Integer(), nullable=True),
    sa.Column('membership_id', sa.Integer(), nullable=True),
    sa.Column('legacy_member_id', sa.Integer(), nullable=True),
    sa.Column('vehicle_ids', sa.JSON(), nullable=True),
    sa.Column('subtotal_cents', sa.Integer(), nullable=False),
    sa.Column('discount_cents', sa.Integer(), nullable=False),
    sa.Column('due_today_cents', sa.Integer(), nullable=False),
    sa.Column('next_billing_on', sa.Date(), nullable=True),
    sa.Column('operator_id', sa.Integer(), nullable=True),
    sa.Column('terminal', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('lane_id', sa.Integer(), nullable=True),
    sa.Column('gateway_payment_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('gateway_subscription_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('completed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['lane_id'], ['lane.id'], ),
    sa.ForeignKeyConstraint(['legacy_member_id'], ['legacy_member.id'], ),
    sa.ForeignKeyConstraint(['membership_id'], ['membership.id'], ),
    sa.ForeignKeyConstraint(['operator_id'], ['operator.id'], ),
    sa.ForeignKeyConstraint(['payment_method_id'], ['payment_method.id'], ),
    sa.ForeignKeyConstraint(['plan_id'], ['plan.id'], ),
    sa.ForeignKeyConstraint(['promotion_id'], ['promotion.id'], ),
    sa.ForeignKeyConstraint(['session_id'], ['vehicle_session.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_sales_order_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_order_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_order_session_id'), ['session_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_sales_order_state'), ['state'], unique=False)

    op.create_table('outbox',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(length=48), nullable=False),
    sa.Column('payload', sa.JSON(), nullable=True),
    sa.Column('idempotency_key', sqlmodel.sql.sqltypes.AutoString(length=96), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.Column('result', sa.JSON(), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('done_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.ForeignKeyConstraint(['order_id'], ['sales_order.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('idempotency_key')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_order_id'), ['order_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_outbox_status'), ['status'], unique=False)

    op.create_table('signature',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('order_id', sa.Integer(), nullable=True),
    sa.Column('customer_id', sa.Integer(), nullable=True),
    sa.Column('terms_version_id', sa.Integer(), nullable=False),
    sa.Column('terms_sha256', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('strokes', sa.JSON(), nullable=True),
    sa.Column('svg', sa.Text(), nullable=False),
    sa.Column('signer_name', sqlmodel.sql.sqltypes.AutoString(length=160), nullable=True),
    sa.Column('signed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('lane_id', sa.Integer(), nullable=True),
    sa.Column('device', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=True),
    sa.ForeignKeyConstraint(['customer_id'], ['customer.id'], ),
    sa.ForeignKeyConstraint(['lane_id'], ['lane.id'], ),
    sa.ForeignKeyConstraint(['order_id'], ['sales_order.id'], ),
    sa.ForeignKeyConstraint(['terms_version_id'], ['terms_version.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_signature_customer_id'), ['customer_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_signature_order_id'), ['order_id'], unique=False)

    # ### end Alembic commands ###
    _create_change_feed_triggers()


def downgrade() -> None:
    _drop_change_feed_triggers()
    # ### commands auto generated by Alembic - please adjust! ###
    with op.batch_alter_table('signature', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_signature_order_id'))
        batch_op.drop_index(batch_op.f('ix_signature_customer_id'))

    op.drop_table('signature')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_status'))
        batch_op.drop_index(batch_op.f('ix_outbox_order_id'))

    op.drop_table('outbox')
    with op.batch_alter_table('sales_order', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_sales_order_state'))
        batch_op.drop_index(batch_op.f('ix_sales_order_session_id'))
        batch_op.drop_index(batch_op.f('ix_sales_order_customer_id'))
        batch_op.drop_index(batch_op.f('ix_sales_order_created_at'))

    op.drop_table('sales_order')
    with op.batch_alter_table('membership_vehicle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_vehicle_vehicle_id'))

    op.drop_table('membership_vehicle')
    with op.batch_alter_table('vehicle_session', schema=None) as batch_op:
        batch_op.drop_index('ix_vehicle_session_status_lane')
        batch_op.drop_index(batch_op.f('ix_vehicle_session_plate_normalized'))
        batch_op.drop_index(batch_op.f('ix_vehicle_session_lane_id'))
        batch_op.drop_index(batch_op.f('ix_vehicle_session_customer_id'))
        batch_op.drop_index(batch_op.f('ix_vehicle_session_arrived_at'))

    op.drop_table('vehicle_session')
    with op.batch_alter_table('membership', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_membership_plan_id'))
        batch_op.drop_index(batch_op.f('ix_membership_customer_id'))

    op.drop_table('membership')
    with op.batch_alter_table('legacy_member_plate', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legacy_member_plate_plate_normalized'))
        batch_op.drop_index(batch_op.f('ix_legacy_member_plate_legacy_member_id'))

    op.drop_table('legacy_member_plate')
    op.drop_table('web_login')
    with op.batch_alter_table('vehicle', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_vehicle_plate_normalized'))
        batch_op.drop_index(batch_op.f('ix_vehicle_customer_id'))

    op.drop_table('vehicle')
    with op.batch_alter_table('touchpoint', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_touchpoint_customer_id'))

    op.drop_table('touchpoint')
    op.drop_table('promotion')
    with op.batch_alter_table('payment_method', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_payment_method_customer_id'))

    op.drop_table('payment_method')
    with op.batch_alter_table('operator_shift', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_operator_shift_operator_id'))

    op.drop_table('operator_shift')
    with op.batch_alter_table('note', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_note_customer_id'))

    op.drop_table('note')
    with op.batch_alter_table('legacy_member', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_legacy_member_phone_e164'))

    op.drop_table('legacy_member')
    with op.batch_alter_table('lane', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lane_site_id'))

    op.drop_table('lane')
    with op.batch_alter_table('customer_relationship', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_relationship_related_customer_id'))
        batch_op.drop_index(batch_op.f('ix_customer_relationship_customer_id'))

    op.drop_table('customer_relationship')
    with op.batch_alter_table('audit_log', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_audit_log_at'))
        batch_op.drop_index(batch_op.f('ix_audit_log_action'))

    op.drop_table('audit_log')
    with op.batch_alter_table('account_benefit', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_account_benefit_customer_id'))

    op.drop_table('account_benefit')
    op.drop_table('terms_version')
    op.drop_table('site')
    op.drop_table('question_prompt')
    op.drop_table('plan')
    op.drop_table('operator')
    with op.batch_alter_table('customer', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_customer_search_last'))
        batch_op.drop_index(batch_op.f('ix_customer_search_first'))
        batch_op.drop_index(batch_op.f('ix_customer_phone_rev'))
        batch_op.drop_index(batch_op.f('ix_customer_email_lower'))

    op.drop_table('customer')
    # ### end Alembic commands ###


# PostgreSQL change feed: every write to a table that a board or record shows
# sends NOTIFY clarity_changes, whichever process (or psql) made it.
CHANGE_FEED_TABLES = (
    "vehicle_session", "customer", "vehicle", "membership", "membership_vehicle",
    "payment_method", "sales_order", "legacy_member", "note", "operator_shift", "lane",
)


def _create_change_feed_triggers() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        """
        CREATE OR REPLACE FUNCTION clarity_notify_change() RETURNS trigger AS $$
        BEGIN
            PERFORM pg_notify('clarity_changes', TG_TABLE_NAME);
            RETURN NULL;
        END;
        $$ LANGUAGE plpgsql;
        """
    )
    for table in CHANGE_FEED_TABLES:
        op.execute(
            f"CREATE TRIGGER clarity_notify_{table} AFTER INSERT OR UPDATE OR DELETE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION clarity_notify_change()"
        )


def _drop_change_feed_triggers() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in CHANGE_FEED_TABLES:
        op.execute(f"DROP TRIGGER IF EXISTS clarity_notify_{table} ON {table}")
    op.execute("DROP FUNCTION IF EXISTS clarity_notify_change()")

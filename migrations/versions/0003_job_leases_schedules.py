"""job tasks with leases, images know their last job, schedules

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-27 15:00:00
"""
import sqlalchemy as sa
from alembic import op

revision = '0003'
down_revision = '0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('job_tasks',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('job_id', sa.Integer(), nullable=False),
    sa.Column('image_ids', sa.LargeBinary(), nullable=False),
    sa.Column('size', sa.Integer(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('worker', sa.String(length=255), nullable=True),
    sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('queued_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['job_id'], ['jobs.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_job_tasks_job_id'), 'job_tasks', ['job_id'], unique=False)
    op.create_index('ix_job_tasks_state_lease', 'job_tasks', ['state', 'lease_until'], unique=False)
    op.create_table('schedules',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('paths', sa.JSON(), nullable=False),
    sa.Column('every_s', sa.Integer(), nullable=False),
    sa.Column('spec', sa.Text(), nullable=False),
    sa.Column('params', sa.JSON(), nullable=False),
    sa.Column('next_run_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('last_run_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('last_job_id', sa.Integer(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_index(op.f('ix_schedules_next_run_at'), 'schedules', ['next_run_at'], unique=False)
    with op.batch_alter_table('jobs') as batch:
        batch.add_column(sa.Column('runner', sa.String(length=16), nullable=True))
        batch.add_column(sa.Column('schedule_id', sa.Integer(), nullable=True))
        batch.add_column(sa.Column('worker', sa.String(length=255), nullable=True))
        batch.add_column(sa.Column('lease_until', sa.DateTime(timezone=True), nullable=True))
    with op.batch_alter_table('images') as batch:
        batch.add_column(sa.Column('job_id', sa.Integer(), nullable=True))
        batch.create_index('ix_images_job_id_status', ['job_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('images') as batch:
        batch.drop_index('ix_images_job_id_status')
        batch.drop_column('job_id')
    with op.batch_alter_table('jobs') as batch:
        batch.drop_column('lease_until')
        batch.drop_column('worker')
        batch.drop_column('schedule_id')
        batch.drop_column('runner')
    op.drop_index(op.f('ix_schedules_next_run_at'), table_name='schedules')
    op.drop_table('schedules')
    op.drop_index('ix_job_tasks_state_lease', table_name='job_tasks')
    op.drop_index(op.f('ix_job_tasks_job_id'), table_name='job_tasks')
    op.drop_table('job_tasks')

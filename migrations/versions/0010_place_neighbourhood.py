"""media.neighbourhood: the city people name, the section of it apart; places found again from GPS

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-07 12:00:00
"""
import logging

import sqlalchemy as sa
from alembic import op

revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade() -> None:
    op.add_column('media', sa.Column('neighbourhood', sa.String(length=120), nullable=True))
    relocate(op.get_bind())


def relocate(conn) -> int:
    """Every stored GPS position's place found again (before this revision the city was the
    nearest GeoNames place, often a section: el Raval for Barcelona); how many rows were updated.
    Without the places package the rows keep what they had."""
    from core.errors import TagscopeError
    from core.media.errors import ImageDecodeError
    from core.media.places import places

    rows = conn.execute(sa.text("SELECT image_id, gps_lat, gps_lon FROM media WHERE gps_lat IS NOT NULL "
                                "AND gps_lon IS NOT NULL ORDER BY image_id")).all()
    update = sa.text("UPDATE media SET country = :country, country_code = :country_code, region = :region, "
                     "city = :city, neighbourhood = :neighbourhood WHERE image_id = :image_id")
    for start in range(0, len(rows), BATCH):
        chunk = rows[start:start + BATCH]
        try:
            found = places([(lat, lon) for _, lat, lon in chunk])
        except (ImageDecodeError, TagscopeError) as exc:
            logging.getLogger(__name__).warning("places not found again from GPS: %s", exc)
            return start
        empty = dict.fromkeys(("country", "country_code", "region", "city", "neighbourhood"))
        conn.execute(update, [{"image_id": image_id, **(place.to_json() if place else empty)}
                              for (image_id, _, _), place in zip(chunk, found)])
    return len(rows)


def downgrade() -> None:
    with op.batch_alter_table('media') as batch:
        batch.drop_column('neighbourhood')

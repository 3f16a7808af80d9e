"""Storage: tables (SQLAlchemy Core), repositories, migrations, bulk paths."""

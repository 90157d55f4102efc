"""Everything that talks to PostgreSQL: the only package that imports the driver (asyncpg)."""

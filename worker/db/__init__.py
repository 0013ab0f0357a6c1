"""PostgreSQL: connections and the one psycopg error mapper, migrations, stored offsets."""

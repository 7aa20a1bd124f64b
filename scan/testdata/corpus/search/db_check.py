import psycopg2

DSN = "postgresql://reporter:r3p0rt-Zq81x@db.staging.internal:5432/search"  ⟦cred⟧


def count_rows():
    with psycopg2.connect(DSN) as conn:
        return conn.cursor().execute("select count(*) from docs")

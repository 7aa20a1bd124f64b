import psycopg
from locust import User, task


class DbUser(User):
    def on_start(self):
        self.conn = psycopg.connect(host="db.staging.internal", dbname="orders", user="loader", password="L0ad-Pg!x93Q")  ⟦cred⟧

    @task
    def select(self):
        self.conn.execute("select 1")

import os

from locust import HttpUser, task

API_TOKEN = os.environ["API_TOKEN"]
PASSWORD = os.getenv("LOAD_PASSWORD")


class CleanUser(HttpUser):
    @task
    def t(self):
        self.client.get("/", headers={"Authorization": f"Bearer {API_TOKEN}"})
        self.client.post("/login", json={"user": "u", "password": PASSWORD})

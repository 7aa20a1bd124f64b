import os

from locust import HttpUser, task

TOKEN = os.environ.get("SEARCH_API_TOKEN", "st_72hd8Jk2lPq9sX0vB3nM")  ⟦cred⟧
REGION = os.environ.get("SEARCH_REGION", "eu-west-1")


class SearchUser(HttpUser):
    @task
    def q(self):
        self.client.get("/q", headers={"Authorization": "Token " + TOKEN, "X-Region": REGION})

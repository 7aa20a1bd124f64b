import swarmkey_locust
from locust import HttpUser, task


class PluginUser(HttpUser):
    @task
    def t(self):
        key = swarmkey_locust.credential("payments-api")["api_key"]
        self.client.get("/", headers={"X-API-Key": key})

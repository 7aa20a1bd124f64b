from locust import HttpUser, task


class DynUser(HttpUser):
    def on_start(self):
        r = self.client.post("/session")
        self.session_token = r.json()["token"]

    @task
    def t(self):
        self.client.get("/", headers={"Authorization": "Bearer " + self.session_token})
